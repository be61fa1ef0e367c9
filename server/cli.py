"""`helpline` — serve, migrate, user add|set|list|show, audit, token, purge, places import, grids import."""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from infra import agency_types, db, logs
from infra import config as config_mod
from infra.errors import BadRequest, HelplineError, NotFound
from infra.formats import instant
from server import embedded, gcwatch

T = TypeVar("T")

log = logging.getLogger("helpline")


def _setup_logging(cfg: Any) -> None:
    """log.format and log.level (HELPLINE_LOG_FORMAT, HELPLINE_LOG_LEVEL): infra/logs.py."""
    logs.setup(cfg.log.format, cfg.log.level)


def _loop_policy() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve(cfg: Any, database_url: str, redis_url: str, max_open: int) -> None:
    from aiohttp import web

    from handlers.context import HUB, METRICS
    from handlers.transport import ConnectionCaps, socket_cap
    from server.app import create_app

    app = create_app(cfg, database_url, redis_url)
    # keepalive_timeout is aiohttp's deadline for a connection with no request in progress: it runs from
    # accept() and from the end of each response, so it also bounds how long request headers may take
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5,
                           keepalive_timeout=cfg.server.keepalive_timeout_s)
    await runner.setup()
    assert runner.server is not None
    if cfg.server.max_open_connections > 0:
        max_open = min(max_open, cfg.server.max_open_connections) if max_open else cfg.server.max_open_connections
    metrics = app[METRICS]
    caps = ConnectionCaps(cfg.server.max_connections_per_address, max_open, config_mod.exempt_networks(cfg),
                          evicted=metrics.tcp_evicted, refused=metrics.tcp_refused)
    metrics.tcp_open.set_function(lambda: caps.open)
    hub = app[HUB]
    hub.max_sockets = socket_cap(cfg.server.max_connections_per_node, max_open)
    if hub.max_sockets < cfg.server.max_connections_per_node:
        log.warning("taking at most %d WebSockets (server.max_connections_per_node=%d), to keep %d of the %d"
                    " open connections for plain HTTP", hub.max_sockets, cfg.server.max_connections_per_node,
                    max_open - hub.max_sockets, max_open)
    loop = asyncio.get_running_loop()
    # not a web.TCPSite: the connection caps wrap aiohttp's protocol factory (handlers/transport.py)
    listener = await loop.create_server(caps.wrap(runner.server), cfg.server.host, cfg.server.port,
                                        backlog=1024, reuse_address=True)
    gcwatch.freeze_startup()
    log.info("helpline serving on http://%s:%s", cfg.server.host, cfg.server.port)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    listener.close()
    await runner.cleanup()


# descriptors a node needs besides its clients' connections: the PostgreSQL pool, the Redis pool
# (server/app.py, 64), pub/sub, log and data files, embedded servers' pipes
FD_RESERVE = 256 + 64


def _raise_fd_limit() -> int:
    """Each connection is a file descriptor: allow as many as the hard limit permits; the limit now
    (0: unknown or unlimited)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return 0 if soft == resource.RLIM_INFINITY else soft
    except (ImportError, ValueError, OSError) as e:
        log.warning("could not raise the open-file limit: %s", e)
        return 0


def fd_budget(cfg: Any, limit: int) -> tuple[int, str | None]:
    """(open connections the node may hold, a complaint if the configured caps do not fit in `limit`)."""
    if limit <= 0:
        return 0, None          # unknown or unlimited
    from handlers.transport import http_headroom

    per_node = cfg.server.max_connections_per_node
    reserve = FD_RESERVE + cfg.database.pool_max
    max_open = max(limit - reserve, 1)
    need = per_node + http_headroom(per_node, per_node) + reserve
    if need <= limit:
        return max_open, None
    return max_open, (f"the open-file limit is {limit}, but server.max_connections_per_node="
                      f"{per_node} needs at least {need} ({reserve} for the node itself,"
                      f" {need - per_node - reserve} for plain HTTP):"
                      f" raise the limit (ulimit -n, systemd LimitNOFILE) or lower server.max_connections_per_node;"
                      f" this node will hold at most {max_open} connections")


def cmd_serve(cfg: Any, args: argparse.Namespace) -> int:
    max_open, problem = fd_budget(cfg, _raise_fd_limit())
    if problem:
        if cfg.server.production:
            print(f"helpline: {problem}", file=sys.stderr)
            return 2
        log.warning(problem)
    gcwatch.tune(cfg.server.gc_thresholds)
    database_url, redis_url, emb = embedded.resolve(cfg)
    try:
        _loop_policy()
        asyncio.run(_serve(cfg, database_url, redis_url, max_open))
    finally:
        if emb is not None:
            emb.stop()
    return 0


def _with_db(cfg: Any, fn: Any) -> Any:
    database_url, _, emb = embedded.resolve(cfg, need_redis=False)

    async def run() -> Any:
        conn = await db.connect(database_url)
        try:
            await db.migrate(conn)
            return await fn(conn)
        finally:
            await conn.close()
    try:
        return asyncio.run(run())
    finally:
        if emb is not None:
            emb.stop()


def cmd_migrate(cfg: Any, args: argparse.Namespace) -> int:
    async def go(conn: Any) -> None:
        pass  # _with_db migrates
    _with_db(cfg, go)
    print("schema up to date")
    return 0


def _codes(raw: str | None) -> list[str] | None:
    """`--grids A,B` as a list; `--grids ''` is the empty list (clears); no option is None (unchanged)."""
    return None if raw is None else list(dict.fromkeys(c.strip() for c in raw.split(",") if c.strip()))


async def _set_grids(conn: Any, account_id: str, codes: list[str] | None, area_limited: bool | None) -> None:
    """The account's grids (inside the caller's transaction: an unknown code undoes the whole command);
    a warning when a dispatcher limited to an area has none (they would see no incident)."""
    from grids import store as grids_store
    from infra import accounts

    row = await accounts.by_id(conn, account_id)
    assert row is not None
    if codes is None and row["role"] == "resident" and row["grids"]:
        codes = []          # made a resident: no grids any more
    if codes is not None:
        await grids_store.set_account_grids(conn, account_id, row["role"], codes)
    if row["area_limited"] and (area_limited or codes is not None) and not await grids_store.account_grids(
            conn, account_id):
        print(f"helpline: {row['username']} is limited to an area but has no grids (--grids CODE,...):"
              " they see no incidents", file=sys.stderr)


def cmd_user_add(cfg: Any, args: argparse.Namespace) -> int:
    from infra import accounts

    skills = [s.strip() for s in args.skills.split(",") if s.strip()] if args.skills else None

    async def go(conn: Any) -> str:
        async with conn.transaction():
            account_id: str = await accounts.create(
                conn, username=args.username, role=args.role, password=args.password, name=args.name, skills=skills,
                phone=args.phone, supervisor=args.supervisor, area_limited=bool(args.area_limited),
                agency_type=args.agency_type)
            await _set_grids(conn, account_id, _codes(args.grids), args.area_limited)
        return account_id
    print(_with_db(cfg, go))
    return 0


def cmd_user_set(cfg: Any, args: argparse.Namespace) -> int:
    """Change an account; a role change, suspension or new password ends its sessions."""
    from infra import accounts

    async def go(conn: Any) -> Any:
        async with conn.transaction():
            account_id, ended = await accounts.update(
                conn, args.username, role=args.role, name=args.name, password=args.password,
                disabled=True if args.disable else False if args.enable else None,
                supervisor=args.supervisor, phone=args.phone, area_limited=args.area_limited,
                agency_type=args.agency_type)
            await _set_grids(conn, account_id, _codes(args.grids), args.area_limited)
        return account_id, ended
    account_id, ended = _with_db(cfg, go)
    if ended:
        _announce_session_end(cfg, account_id)
    print(account_id)
    return 0


def _account_row(r: Any) -> dict[str, Any]:
    """An account as `user list --json` / `user show` print it (never its password hash)."""
    return {"id": str(r["id"]), "username": r["username"], "role": r["role"], "name": r["name"],
            "phone": r["phone"], "skills": list(r["skills"] or []) if "skills" in r else [],
            "grids": list(r["grids"] or []), "supervisor": bool(r["supervisor"]),
            "area_limited": bool(r["area_limited"]), "disabled": bool(r["disabled"]),
            "verified": bool(r["verified"]), "created_at": r["created_at"].isoformat()}


def cmd_user_list(cfg: Any, args: argparse.Namespace) -> int:
    """Accounts as a table (or JSON), staff by default; an unknown grid is refused by name."""
    from grids import store as grids_store
    from infra import accounts

    async def go(conn: Any) -> Any:
        if args.grid and await grids_store.unknown(conn, [args.grid]):
            raise BadRequest(f"grid: no grid {args.grid!r}")
        return [_account_row(r) for r in await accounts.listing(conn, role=args.role, grid=args.grid)]
    rows = _with_db(cfg, go)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    cols = ["username", "role", "name", "phone", "grids", "state"]
    table = [[r["username"] or r["id"], r["role"], r["name"], r["phone"] or "", ",".join(r["grids"]),
              ",".join(f for f in ("disabled", "supervisor", "area_limited") if r[f]) or "active"] for r in rows]
    widths = [max([len(c), *(len(t[i]) for t in table)]) for i, c in enumerate(cols)]
    for line in [cols, *table]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())
    print(f"({len(rows)} accounts)", file=sys.stderr)
    return 0


def cmd_user_show(cfg: Any, args: argparse.Namespace) -> int:
    """One account, every field but its password, and what the audit log says it did last."""
    from infra import accounts

    async def go(conn: Any) -> Any:
        row = await accounts.by_username(conn, args.username)
        if row is None:
            raise NotFound(f"no account {args.username!r}")
        skills = await conn.fetchval("SELECT skills FROM responders WHERE account_id = $1", row["id"])
        out = {**_account_row(row), "skills": list(skills or [])}
        recent = await conn.fetch("SELECT at, action, subject_type, subject_id FROM audit_log WHERE actor_id = $1"
                                  " ORDER BY id DESC LIMIT 10", row["id"])
        return out, list(reversed(recent))
    out, recent = _with_db(cfg, go)
    for k, v in out.items():
        print(f"{k:13s} {','.join(v) if isinstance(v, list) else v}")
    if recent:
        print("recent actions (audit log):")
        for r in recent:
            print(f"  {r['at'].isoformat()}  {r['action']}  {r['subject_type']} {r['subject_id'] or ''}".rstrip())
    return 0


def cmd_audit(cfg: Any, args: argparse.Namespace) -> int:
    """The audit log from --since (and before --until), by actor and subject; text, CSV or JSON lines."""
    from infra import accounts, audit

    since = instant(args.since, "--since")
    until = instant(args.until, "--until") if args.until else None
    if until is not None and until <= since:
        raise BadRequest("--until: must be after --since")
    subject_type, _, subject_id = (args.subject or "").partition(":")

    async def go(conn: Any) -> Any:
        actor_id = None
        if args.actor:
            row = await accounts.by_username(conn, args.actor)
            if row is None:
                raise NotFound(f"--actor: no account {args.actor!r}")
            actor_id = row["id"]
        out, after = [], None
        while True:
            page = await audit.read(conn, since, until, actor_id, subject_type or None, subject_id or None, after)
            out += page
            if len(page) < 1000:
                return out
            after = page[-1]["id"]
    rows = [{"at": r["at"].isoformat(), "actor": r["actor"] or (str(r["actor_id"]) if r["actor_id"] else ""),
             "role": r["actor_role"] or "", "action": r["action"], "subject_type": r["subject_type"],
             "subject_id": r["subject_id"] or "", "detail": r["detail"], "address": r["address"] or ""}
            for r in _with_db(cfg, go)]
    if args.format == "json":
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
    elif args.format == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(["at", "actor", "role", "action", "subject_type", "subject_id", "detail", "address"])
        for r in rows:
            w.writerow([*(r[k] for k in ("at", "actor", "role", "action", "subject_type", "subject_id")),
                        json.dumps(r["detail"], ensure_ascii=False), r["address"]])
    else:
        for r in rows:
            detail = " ".join(f"{k}={v}" for k, v in r["detail"].items())
            where = f"  from {r['address']}" if r["address"] else ""
            print(f"{r['at']}  {r['actor'] or '-'} ({r['role'] or '-'})  {r['action']}  "
                  f"{r['subject_type']} {r['subject_id']}  {detail}".rstrip() + where)
    return 0


def _announce_session_end(cfg: Any, account_id: str) -> None:
    """Close the account's open connections now; when the nodes cannot be told, say so (on stderr):
    they find out by themselves within server.session_recheck_s."""
    later = (f"its open sessions close within {cfg.server.session_recheck_s:g} s, when each node re-checks"
             " (server.session_recheck_s)")
    if not cfg.redis.url:
        print(f"helpline: could not tell the nodes at once (embedded Redis); {later}", file=sys.stderr)
        return
    import redis

    from infra import redisclient
    from infra.auth import session_ended
    from infra.keys import Keys

    r = None
    try:
        r = redisclient.connect_sync(cfg.redis.url, timeout_s=2)     # a cluster's client connects at once
        redisclient.publish_sync(r, Keys.for_redis(cfg.redis.key_prefix, cfg.redis.url).account_channel(account_id),
                                 session_ended())
    except redis.RedisError as e:
        print(f"helpline: could not tell the nodes at once (Redis unreachable: {e}); {later}", file=sys.stderr)
    finally:
        if r is not None:
            r.close()


def cmd_purge(cfg: Any, args: argparse.Namespace) -> int:
    from server import purge

    days = args.days if args.days is not None else cfg.privacy.retention_days
    if days < 1:
        print("helpline: --days must be at least 1", file=sys.stderr)
        return 2

    async def go(conn: Any) -> Any:
        return await purge.purge(conn, days)
    done = _with_db(cfg, go)
    print(" ".join(f"{k}={v}" for k, v in done.items()))
    return 0


def cmd_token(cfg: Any, args: argparse.Namespace) -> int:
    from infra import accounts

    async def go(conn: Any) -> Any:
        return await accounts.by_username(conn, args.username)
    row = _with_db(cfg, go)
    if row is None:
        print(f"helpline: no account {args.username!r}", file=sys.stderr)
        return 1
    if row["disabled"]:
        print(f"helpline: account {args.username!r} is disabled", file=sys.stderr)
        return 1
    print(config_mod.token_service(cfg).issue(str(row["id"]), row["role"], row["session_epoch"]))
    return 0


def _read_input(path: Any, parse: Callable[[bytes], T], file_error: type[Exception]) -> T | None:
    """A file the CLI imports, parsed; None once the reason it cannot be (unreadable, or not the right kind of
    file) is on stderr."""
    try:
        return parse(path.read_bytes())
    except OSError as e:
        print(f"helpline: cannot read {path}: {e.strerror or e}", file=sys.stderr)
    except file_error as e:
        print(f"helpline: {path}: {e}", file=sys.stderr)
    return None


def cmd_places_import(cfg: Any, args: argparse.Namespace) -> int:
    """Load a gazetteer file (CSV or GeoJSON); bad rows are reported and skipped, the rest go in."""
    from pathlib import Path

    from dispatch import places, places_store

    path = Path(args.file)
    parsed = _read_input(path, lambda data: places.parse(path.name, data), places.FileError)
    if parsed is None:
        return 2
    for err in parsed.errors:
        print(f"{path.name}: {parsed.unit} {err.where}: {err.message}", file=sys.stderr)

    async def go(conn: Any) -> Any:
        summary = await places_store.upsert(conn, [p for _, p in parsed.places])
        await places_store.after_import(conn)
        return summary
    summary = _with_db(cfg, go)
    summary.bad = len(parsed.errors)
    print(summary.line())
    return 1 if parsed.errors else 0


def cmd_grids_import(cfg: Any, args: argparse.Namespace) -> int:
    """Load a city's grids (GeoJSON); bad features are reported by index and skipped, the rest go in."""
    from pathlib import Path

    from grids import importing
    from grids import store as grids_store

    path = Path(args.file)
    features = _read_input(path, importing.read, importing.FileError)
    if features is None:
        return 2

    async def go(conn: Any) -> Any:
        return await grids_store.import_features(conn, features)
    summary, plan = _with_db(cfg, go)
    for err in plan.errors:
        print(f"{path.name}: feature {err.index}: {err.message}", file=sys.stderr)
    print(summary.line())
    if summary.repathed:
        print(f"paths recomputed for {summary.repathed} loaded grid(s) under moved ones")
    return 1 if plan.errors else 0


def cmd_apikey(cfg: Any, args: argparse.Namespace) -> int:
    """API keys for other departments: add (prints the key, once), list, revoke."""
    from infra import apikeys

    async def go(conn: Any) -> Any:
        if args.apikey_command == "add":
            return await apikeys.add(conn, args.name, args.scope)
        if args.apikey_command == "revoke":
            return await apikeys.revoke(conn, args.name)
        return await apikeys.listing(conn)
    got = _with_db(cfg, go)
    if args.apikey_command == "add":
        print(got)
        print("(keep it: only its hash is stored)", file=sys.stderr)
    elif args.apikey_command == "revoke":
        print(f"revoked {args.name} at {got.isoformat()}")
    else:
        for k in got:
            state = f"revoked {k['revoked_at'].isoformat()}" if k["revoked_at"] else "active"
            used = k["last_used_at"].isoformat() if k["last_used_at"] else "never used"
            print(f"{k['name']}\t{k['scope']}\thlk_{k['key_id']}.…\t{state}\t{used}")
    return 0


def cmd_export(cfg: Any, args: argparse.Namespace) -> int:
    """Closed incidents since --since, as JSON lines or CSV (the export of GET /api/export/incidents)."""
    from zoneinfo import ZoneInfo

    from reports import export, rules

    tz = ZoneInfo(cfg.reports.time_zone)
    since = rules.parse_when(args.since, "--since", tz)

    async def go(conn: Any) -> Any:
        out: list[dict[str, Any]] = []
        q = rules.ExportQuery(since=since, after=None, limit=rules.EXPORT_MAX_PAGE)
        while True:
            page = await export.page(conn, q)
            out += page
            if len(page) < q.limit:
                return out
            q = rules.ExportQuery(since=since, after=(page[-1]["closed_at"], page[-1]["id"]), limit=q.limit)
    items = [export.wire(i) for i in _with_db(cfg, go)]
    if args.format == "json":
        for i in items:
            print(json.dumps(i, ensure_ascii=False))
    else:
        cols = list(export.COLUMNS)
        w = csv.writer(sys.stdout)
        w.writerow(cols)
        for i in items:
            w.writerow(["" if i[c] is None else i[c] for c in cols])
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="helpline", description="One-click help and online mediation for a city.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run a node (starts the embedded PostgreSQL/Redis when no URL is set)")
    sub.add_parser("migrate", help="apply pending database migrations")
    user = sub.add_parser("user", help="manage accounts").add_subparsers(dest="user_command", required=True)
    add = user.add_parser("add", help="create an account; prints its id")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=["resident", "responder", "dispatcher", "mediator",
                                                        "agency", "admin", "clerk"])
    add.add_argument("--password", required=True)
    add.add_argument("--name")
    add.add_argument("--skills", help="comma-separated, responders only (e.g. medical,general)")
    add.add_argument("--phone", help="+E164")
    add.add_argument("--supervisor", action="store_true",
                     help="dispatchers and admins: texted about escalated incidents nobody took")
    add.add_argument("--agency-type", help=f"agencies only: {agency_types.ALLOWED} (default other)")
    add.add_argument("--grids", help="comma-separated grid codes the account works in (any level)")
    add.add_argument("--area-limited", action=argparse.BooleanOptionalAction, default=None,
                     help="dispatchers: see and act on only their grids (descendants included)")
    upd = user.add_parser("set", help="change an account (ends its sessions on role, password or suspension)")
    upd.add_argument("username")
    upd.add_argument("--role", choices=["resident", "responder", "dispatcher", "mediator", "agency", "admin",
                                         "clerk"])
    upd.add_argument("--name")
    upd.add_argument("--password")
    state = upd.add_mutually_exclusive_group()
    state.add_argument("--disable", action="store_true", help="suspend the account")
    state.add_argument("--enable", action="store_true", help="lift a suspension")
    upd.add_argument("--phone", help='+E164 (staff; "" removes it)')
    upd.add_argument("--supervisor", action=argparse.BooleanOptionalAction, default=None,
                     help="mark (or with --no-supervisor unmark) a dispatcher or admin as a supervisor")
    upd.add_argument("--agency-type", help=f"agencies only: {agency_types.ALLOWED}")
    upd.add_argument("--grids", help="comma-separated grid codes, replacing the account's (\"\" clears them)")
    upd.add_argument("--area-limited", action=argparse.BooleanOptionalAction, default=None,
                     help="limit a dispatcher to their grids (or with --no-area-limited lift it)")
    lst = user.add_parser("list", help="accounts as a table: staff by default, or one role; by grid")
    lst.add_argument("--role", choices=["resident", "responder", "dispatcher", "mediator", "agency", "admin",
                                         "clerk"])
    lst.add_argument("--grid", help="only accounts working in this grid or anywhere under it")
    lst.add_argument("--json", action="store_true", help="JSON instead of a table")
    shw = user.add_parser("show", help="one account in full (never its password) and its recent actions")
    shw.add_argument("username")
    aud = sub.add_parser("audit", help="print the audit log (who read or changed what, when)")
    aud.add_argument("--since", required=True, help="YYYY-MM-DD (UTC) or an ISO 8601 time")
    aud.add_argument("--until", help="YYYY-MM-DD (UTC) or an ISO 8601 time (exclusive)")
    aud.add_argument("--actor", help="only this account's entries (username)")
    aud.add_argument("--subject", help="only entries about this subject: TYPE or TYPE:ID (e.g. incident:<id>)")
    aud.add_argument("--format", choices=["text", "csv", "json"], default="text")
    tok = sub.add_parser("token", help="print a signed JWT for an account")
    tok.add_argument("username")
    pur = sub.add_parser("purge", help="anonymise closed incidents and cases past privacy.retention_days")
    pur.add_argument("--days", type=int, help="override privacy.retention_days")
    plc = sub.add_parser("places", help="the gazetteer").add_subparsers(dest="places_command", required=True)
    imp = plc.add_parser("import", help="load places from CSV (name,address,lat,lon[,aliases][,id]) or GeoJSON"
                                        " points; re-import updates by stable id; prints a summary")
    imp.add_argument("file")
    grd = sub.add_parser("grids", help="the city's grids").add_subparsers(dest="grids_command", required=True)
    gim = grd.add_parser("import", help="load grids from a GeoJSON FeatureCollection (code, name, level, parent);"
                                        " re-import updates by code; prints a summary")
    gim.add_argument("file")
    key = sub.add_parser("apikey", help="API keys for other departments").add_subparsers(dest="apikey_command",
                                                                                        required=True)
    kad = key.add_parser("add", help="create a key and print it (only its hash is kept)")
    kad.add_argument("name")
    kad.add_argument("--scope", required=True, choices=["export"])
    key.add_parser("list", help="the keys: name, scope, id, active or revoked, last use")
    krv = key.add_parser("revoke", help="refuse the key from now on")
    krv.add_argument("name")
    exp = sub.add_parser("export", help="closed incidents without personal data, as JSON lines or CSV")
    exp.add_argument("--since", required=True, help="closed at or after: YYYY-MM-DD (the city's day) or ISO 8601")
    exp.add_argument("--format", choices=["json", "csv"], default="json")
    return p


COMMANDS = {"serve": cmd_serve, "migrate": cmd_migrate, "token": cmd_token, "purge": cmd_purge, "audit": cmd_audit,
            "apikey": cmd_apikey, "export": cmd_export}
USER_COMMANDS = {"add": cmd_user_add, "set": cmd_user_set, "list": cmd_user_list, "show": cmd_user_show}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = config_mod.load()
        _setup_logging(cfg)
        if args.command == "user":
            return USER_COMMANDS[args.user_command](cfg, args)
        if args.command == "places":
            return cmd_places_import(cfg, args)
        if args.command == "grids":
            return cmd_grids_import(cfg, args)
        return COMMANDS[args.command](cfg, args)
    except config_mod.ConfigError as e:
        print(f"helpline: configuration error: {e}", file=sys.stderr)
        return 2
    except HelplineError as e:
        print(f"helpline: {e.message}", file=sys.stderr)
        return 1
    except db.DatabaseUnavailable as e:
        print(f"helpline: database unavailable: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
