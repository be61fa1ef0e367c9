"""The admin console's routes (issue 21): accounts, their sessions, reset codes, the audit log.

Everything under /api/admin/ is for admins (Bearer token, role admin; everyone else 403), and every
call, reads included, writes an audit entry with the admin's account and the client's address. The
rules (the last active admin, reset codes) are infra/admin_rules.py; the SQL infra/admin_store.py;
live sessions infra/sessions.py. Edges only: decode, authorise, call, answer, announce after commit.

POST /api/auth/reset is the other end of a reset code: the person sets a new password with it.
"""
from __future__ import annotations

import csv
import io
import json
import secrets
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from grids import store as grids_store
from handlers import admin_messages as am
from handlers import messages as m
from handlers.apidoc import BEARER, Param, route_doc
from handlers.context import BUS, CONFIG, HUB, KEYS, POOL, REDIS
from handlers.http import bearer, read_json, who_of
from infra import accounts, admin_store, audit, ratelimit
from infra import admin_rules as rules
from infra.auth import ROLES, session_ended
from infra.db import Conn
from infra.errors import BadRequest, Forbidden, NotFound, RateLimited, Unauthorized
from infra.formats import instant, iso
from infra.identity import Account, Role

STAFF_ROLES = tuple(r for r in ROLES if r != "resident")    # what an admin may make or make an account into
PAGE = 100            # audit entries per page (at most AUDIT_PAGE_MAX with ?limit=)
AUDIT_PAGE_MAX = 500
CSV_MAX = 100_000     # entries in one CSV export: narrow the period for more
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


async def _admin(request: web.Request) -> Account:
    account = await bearer(request)
    if account["role"] != Role.ADMIN:
        raise Forbidden("the admin console is for admins")
    return who_of(account)


def _is_id(raw: str) -> bool:
    try:
        msgspec.convert(raw, m.Id)
    except msgspec.ValidationError:
        return False
    return True


def _account_id(request: web.Request) -> str:
    raw = request.match_info["id"]
    if not _is_id(raw):
        raise NotFound("account: no such account")
    return raw


async def _staff(conn: Conn, account_id: str) -> Any:
    """The account (a staff account: residents' device accounts are not changed here), or NotFound."""
    row = await admin_store.account(conn, account_id)
    if row is None:
        raise NotFound("account: no such account")
    if row["username"] is None:
        raise BadRequest("account: a resident's device account is not managed here")
    return row


def _role(role: str) -> str:
    if role not in STAFF_ROLES:
        raise BadRequest(f"role: one of {', '.join(STAFF_ROLES)}, not {role!r}")
    return role


def _phone(raw: str | None) -> str | None:
    """The phone as typed, checked (a message naming the field); "" (remove) and None (unchanged) pass."""
    if raw:
        try:
            accounts.normalise_phone(raw)
        except BadRequest as e:
            raise BadRequest(f"phone: {e.message}") from None
    return raw


async def _announce_end(request: web.Request, account_id: str, token_id: str | None = None) -> None:
    """After commit: close the account's connections (or one token's) on every node now."""
    app = request.app
    await app[BUS].publish(app[KEYS].account_channel(account_id), session_ended(token_id))


# ---------------------------------------------------------------- accounts
@route_doc(auth=BEARER, query=(
    Param("role", "only this role (default: every staff role)"),
    Param("grid", "only accounts working in this grid or under it"),
    Param("q", "a piece of the username, the name or the phone"),
    Param("suspended", "true: only suspended accounts; false: only active ones", type="boolean"),
    Param("limit", "at most this many (default and maximum 500)", type="integer")))
async def list_accounts(request: web.Request) -> web.Response:
    """Find accounts (admins)."""
    who = await _admin(request)
    qs = request.query
    role = qs.get("role") or None
    if role is not None and role not in ROLES:
        raise BadRequest(f"role: one of {', '.join(ROLES)}, not {role!r}")
    raw = qs.get("suspended", "")
    if raw not in ("true", "false", ""):
        raise BadRequest("suspended: true or false")
    suspended = None if raw == "" else raw == "true"
    limit = _int(qs.get("limit"), "limit", 500, 1, 500)
    q = (qs.get("q") or "").strip()[:100] or None
    grid = qs.get("grid") or None
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if grid and await grids_store.unknown(conn, [grid]):
            raise BadRequest(f"grid: no grid {grid!r}")
        rows = await admin_store.search(conn, role=role, grid=grid, q=q, suspended=suspended, limit=limit)
        await audit.record(conn, who.id, who.role, "accounts.list", "accounts", None,
                           **{k: v for k, v in (("role", role), ("grid", grid), ("q", q),
                                                ("suspended", suspended)) if v is not None})
    return web.json_response({"accounts": [admin_store.view(r) for r in rows]})


@route_doc(auth=BEARER)
async def get_account(request: web.Request) -> web.Response:
    """One account, every field but its password (admins)."""
    who = await _admin(request)
    account_id = _account_id(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await admin_store.account(conn, account_id)
        if row is None:
            raise NotFound("account: no such account")
        await audit.record(conn, who.id, who.role, "account.read", "account", account_id)
    return web.json_response({"account": admin_store.view(row)})


@route_doc(auth=BEARER, body=am.AccountCreate, statuses={201: "created"})
async def create_account(request: web.Request) -> web.Response:
    """Make a staff account (admins). Without a password the answer has a one-time `reset` code to hand over."""
    who = await _admin(request)
    body = await read_json(request, am.AccountCreate)
    role = _role(body.role)
    phone = _phone(body.phone) or None
    if body.skills and role != "responder":
        raise BadRequest("skills: only responders have skills")
    code = None if body.password is not None else rules.new_code()
    password = body.password if body.password is not None else secrets.token_urlsafe(32)
    ttl = request.app[CONFIG].auth.reset_code_ttl_s
    async with request.app[POOL].acquire() as conn, conn.transaction():
        account_id = await accounts.create(
            conn, username=body.username, role=role, password=password, name=body.name, skills=body.skills,
            phone=phone, supervisor=body.supervisor, area_limited=body.area_limited, agency_type=body.agency_type)
        if body.grids:
            await grids_store.set_account_grids(conn, account_id, role, body.grids)
        expires = await admin_store.issue_reset(conn, account_id, rules.code_hash(code), who.id, ttl) if code else None
        await audit.record(conn, who.id, who.role, "account.create", "account", account_id,
                           username=body.username, role=role, reset_code=code is not None)
        row = await admin_store.account(conn, account_id)
    out: dict[str, Any] = {"account": admin_store.view(row)}
    if code is not None:
        out["reset"] = {"code": code, "expires_at": iso(expires)}
    return web.json_response(out, status=201)


@route_doc(auth=BEARER, body=am.AccountEdit)
async def edit_account(request: web.Request) -> web.Response:
    """Change an account's fields (admins); a role change ends its sessions. Not the last active admin's role."""
    who = await _admin(request)
    account_id = _account_id(request)
    body = await read_json(request, am.AccountEdit)
    changed = [f for f in body.__struct_fields__ if getattr(body, f) is not None]
    if not changed:
        raise BadRequest("nothing to change: give at least one field")
    role = _role(body.role) if body.role is not None else None
    _phone(body.phone)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _staff(conn, account_id)
        if rules.admin_changes(row["role"], row["disabled"], role, suspend=False):
            rules.check_admin_change(rules.Change.DEMOTE, True, await admin_store.lock_active_admins(conn))
        new_role = role or row["role"]
        if body.skills is not None and new_role != "responder":
            raise BadRequest("skills: only responders have skills")
        username = row["username"]
        if body.username is not None and body.username != username:
            await admin_store.rename(conn, account_id, body.username)
            username = body.username
        _, ended = await accounts.update(conn, username, role=role, name=body.name, phone=body.phone,
                                         supervisor=body.supervisor, area_limited=body.area_limited,
                                         agency_type=body.agency_type)
        if body.skills is not None:
            await admin_store.set_skills(conn, account_id, body.skills)
        if body.grids is not None:
            await grids_store.set_account_grids(conn, account_id, new_role, body.grids)
        detail: dict[str, Any] = {"fields": changed}
        if role is not None and role != row["role"]:
            detail["role"] = {"from": row["role"], "to": role}
        await audit.record(conn, who.id, who.role, "account.edit", "account", account_id, **detail)
        after = await admin_store.account(conn, account_id)
    if ended:
        await _announce_end(request, account_id)
    return web.json_response({"account": admin_store.view(after), "sessions_ended": ended})


async def _suspension(request: web.Request, suspend: bool) -> web.Response:
    who = await _admin(request)
    account_id = _account_id(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _staff(conn, account_id)
        if rules.admin_changes(row["role"], row["disabled"], None, suspend=suspend):
            rules.check_admin_change(rules.Change.SUSPEND, True, await admin_store.lock_active_admins(conn))
        _, ended = await accounts.update(conn, row["username"], disabled=suspend)
        await audit.record(conn, who.id, who.role, "account.suspend" if suspend else "account.reinstate",
                           "account", account_id)
        after = await admin_store.account(conn, account_id)
    if ended:
        await _announce_end(request, account_id)
    return web.json_response({"account": admin_store.view(after)})


@route_doc(auth=BEARER)
async def suspend_account(request: web.Request) -> web.Response:
    """Suspend an account (admins): it cannot sign in, and its open sessions end at once. Not the last admin."""
    return await _suspension(request, True)


@route_doc(auth=BEARER)
async def reinstate_account(request: web.Request) -> web.Response:
    """Let a suspended account sign in again (admins)."""
    return await _suspension(request, False)


@route_doc(auth=BEARER)
async def reset_password(request: web.Request) -> web.Response:
    """A one-time code for the account to set a new password with (admins); shown in this answer only."""
    who = await _admin(request)
    account_id = _account_id(request)
    code = rules.new_code()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await _staff(conn, account_id)
        expires = await admin_store.issue_reset(conn, account_id, rules.code_hash(code), who.id,
                                                request.app[CONFIG].auth.reset_code_ttl_s)
        await audit.record(conn, who.id, who.role, "account.reset_code", "account", account_id,
                           expires_at=iso(expires))
    return web.json_response({"code": code, "expires_at": iso(expires)})


# ---------------------------------------------------------------- sessions
def _session_view(s: dict[str, Any]) -> dict[str, Any]:
    return {k: s.get(k) for k in ("id", "node", "since", "address", "user_agent")}


@route_doc(auth=BEARER)
async def list_sessions(request: web.Request) -> web.Response:
    """The account's open WebSocket sessions across the cluster: node, since, address, user agent (admins)."""
    who = await _admin(request)
    account_id = _account_id(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if await admin_store.account(conn, account_id) is None:
            raise NotFound("account: no such account")
        await audit.record(conn, who.id, who.role, "sessions.read", "account", account_id)
    live = await request.app[HUB].sessions.of(account_id)
    return web.json_response({"sessions": [_session_view(s) for s in live]})


@route_doc(auth=BEARER, body=am.SessionsEnd)
async def end_sessions(request: web.Request) -> web.Response:
    """End one session of the account (its token is revoked) or all of them (admins); they close at once."""
    who = await _admin(request)
    account_id = _account_id(request)
    body = await read_json(request, am.SessionsEnd)
    live = await request.app[HUB].sessions.of(account_id)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if await admin_store.account(conn, account_id) is None:
            raise NotFound("account: no such account")
        if body.session is not None:
            target = next((s for s in live if s["id"] == body.session), None)
            if target is None:
                raise NotFound("session: no such open session of this account")
            await admin_store.revoke_token(conn, target["token_id"], float(target["token_expires"]))
            token_id: str | None = target["token_id"]
            ended = [s for s in live if s["token_id"] == token_id]
        else:
            await admin_store.end_all_sessions(conn, account_id)
            token_id, ended = None, live
        await audit.record(conn, who.id, who.role, "sessions.end", "account", account_id,
                           sessions=[s["id"] for s in ended], all=body.session is None)
    await _announce_end(request, account_id, token_id)
    return web.json_response({"ended": [s["id"] for s in ended]})


# ---------------------------------------------------------------- the audit log
def _int(raw: str | None, field: str, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise BadRequest(f"{field}: a whole number") from None
    if not low <= v <= high:
        raise BadRequest(f"{field}: between {low} and {high}")
    return v


class AuditQuery(msgspec.Struct, frozen=True):
    since: datetime
    until: datetime | None
    actor: str | None
    subject_type: str | None
    subject_id: str | None


async def _audit_query(request: web.Request, conn: Conn) -> tuple[AuditQuery, str | None]:
    """The filters of ?actor=USERNAME&subject=TYPE[:ID]&since=&until= (the same as `helpline audit`)."""
    qs = request.query
    since = instant(qs["since"], "since") if qs.get("since") else BEGINNING
    until = instant(qs["until"], "until") if qs.get("until") else None
    if until is not None and until <= since:
        raise BadRequest("until: must be after since")
    actor_id = None
    actor = (qs.get("actor") or "").strip() or None
    if actor is not None:
        row = await accounts.by_username(conn, actor) if accounts.USERNAME.match(actor) else None
        if row is None:
            raise NotFound(f"actor: no account {actor!r}")
        actor_id = str(row["id"])
    subject_type, _, subject_id = (qs.get("subject") or "").strip().partition(":")
    if subject_type == "account" and subject_id and not _is_id(subject_id):     # account:USERNAME
        row = await accounts.by_username(conn, subject_id) if accounts.USERNAME.match(subject_id) else None
        if row is None:
            raise NotFound(f"subject: no account {subject_id!r}")
        subject_id = str(row["id"])
    return AuditQuery(since, until, actor_id, subject_type or None, subject_id or None), actor


def _entry(r: Any) -> dict[str, Any]:
    return {"id": r["id"], "at": iso(r["at"]), "actor": r["actor"],
            "actor_id": str(r["actor_id"]) if r["actor_id"] else None, "role": r["actor_role"],
            "action": r["action"], "subject_type": r["subject_type"], "subject_id": r["subject_id"],
            "subject_name": r["subject_name"], "address": r["address"], "detail": r["detail"]}


def _filters(q: AuditQuery, actor: str | None) -> dict[str, Any]:
    return {k: v for k, v in (("since", iso(q.since) if q.since != BEGINNING else None), ("until", iso(q.until)),
                              ("actor", actor), ("subject_type", q.subject_type), ("subject_id", q.subject_id))
            if v is not None}


AUDIT_QUERY = (Param("actor", "the username of who did it"),
               Param("subject", "what it was done to: a type (incident, case, …), type:id or account:USERNAME"),
               Param("since", "from this date or ISO 8601 time (default: the beginning)"),
               Param("until", "before this date or time"))


@route_doc(auth=BEARER, query=(*AUDIT_QUERY, Param("after", "the page after this entry id", type="integer"),
                               Param("limit", f"entries per page (default {PAGE}, at most {AUDIT_PAGE_MAX})",
                                     type="integer")))
async def read_audit(request: web.Request) -> web.Response:
    """The audit log, oldest first, filtered by actor, subject and period, a page at a time (admins)."""
    who = await _admin(request)
    after = _int(request.query.get("after"), "after", 0, 0, 2**62) or None
    limit = _int(request.query.get("limit"), "limit", PAGE, 1, AUDIT_PAGE_MAX)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        q, actor = await _audit_query(request, conn)
        rows = await audit.read(conn, q.since, q.until, q.actor, q.subject_type, q.subject_id, after, limit + 1)
        await audit.record(conn, who.id, who.role, "audit.read", "audit_log", None, filters=_filters(q, actor))
    more = len(rows) > limit
    rows = rows[:limit]
    return web.json_response({"entries": [_entry(r) for r in rows],
                              "next_after": rows[-1]["id"] if more else None})


CSV_COLUMNS = ["at", "actor", "role", "action", "subject_type", "subject_id", "subject_name", "address", "detail"]
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(v: Any) -> str:
    """A CSV cell a spreadsheet shows as text: one that would start a formula gets a leading apostrophe."""
    s = "" if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    return "'" + s if s.startswith(_FORMULA) else s


@route_doc(auth=BEARER, answers="text/csv", query=AUDIT_QUERY)
async def audit_csv(request: web.Request) -> web.Response:
    """The audit log with the same filters, as CSV (UTF-8 with a BOM, for spreadsheets) (admins)."""
    who = await _admin(request)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_COLUMNS)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        q, actor = await _audit_query(request, conn)
        after, n = None, 0
        while n < CSV_MAX:
            page = await audit.read(conn, q.since, q.until, q.actor, q.subject_type, q.subject_id, after,
                                    min(1000, CSV_MAX - n))
            for r in page:
                e = _entry(r)
                w.writerow([_cell(e["at"]), _cell(e["actor"] or e["actor_id"]), _cell(e["role"]), _cell(e["action"]),
                            _cell(e["subject_type"]), _cell(e["subject_id"]), _cell(e["subject_name"]),
                            _cell(e["address"]), _cell(e["detail"])])
            n += len(page)
            if len(page) < 1000:
                break
            after = page[-1]["id"]
        await audit.record(conn, who.id, who.role, "audit.export", "audit_log", None, rows=n,
                           filters=_filters(q, actor))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return web.Response(body=("\ufeff" + out.getvalue()).encode(), headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="helpline-audit-{stamp}.csv"'})


# ---------------------------------------------------------------- the person's side of a reset code
@route_doc(body=am.PasswordReset, statuses={204: "the new password is set; the account's sessions ended"})
async def use_reset_code(request: web.Request) -> web.Response:
    """Set a new password with the one-time code an admin gave (no token needed)."""
    body = await read_json(request, am.PasswordReset)
    app = request.app
    code_hash = rules.code_hash(body.code)
    if len(body.password) < 8:
        raise BadRequest("password: at least 8 characters")
    username, address = body.username.lower(), request.remote or "-"
    limits = ((app[KEYS].rate("login-fail-pair", f"{username}|{address}"),
               ratelimit.LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS),
              (app[KEYS].rate("login-fail", username), ratelimit.LOGIN_FAILURES_PER_ACCOUNT),
              (app[KEYS].rate("login-fail-addr", address), ratelimit.LOGIN_FAILURES_PER_ADDRESS))
    for key, (limit, _) in limits:      # a wrong code counts as a failed login: one budget for guessing both
        if await ratelimit.peek(app[REDIS], key) >= limit:
            raise RateLimited("too many failed attempts; try again in 15 minutes")
    async with app[POOL].acquire() as conn, conn.transaction():
        row = await accounts.by_username(conn, body.username) if accounts.USERNAME.match(body.username) else None
        ok = (row is not None and not row["disabled"]
              and await admin_store.use_reset(conn, str(row["id"]), code_hash))
        if ok:
            assert row is not None
            await accounts.update(conn, row["username"], password=body.password)
            await audit.record(conn, str(row["id"]), row["role"], "password.reset", "account", str(row["id"]))
    if not ok:
        for key, (_, window) in limits:
            await ratelimit.count(app[REDIS], key, window)
        raise Unauthorized("wrong, used or expired code")
    assert row is not None
    await _announce_end(request, str(row["id"]))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/admin/accounts", list_accounts)
    r.add_post("/api/admin/accounts", create_account)
    r.add_get("/api/admin/accounts/{id}", get_account)
    r.add_post("/api/admin/accounts/{id}", edit_account)
    r.add_post("/api/admin/accounts/{id}/suspend", suspend_account)
    r.add_post("/api/admin/accounts/{id}/reinstate", reinstate_account)
    r.add_post("/api/admin/accounts/{id}/reset", reset_password)
    r.add_get("/api/admin/accounts/{id}/sessions", list_sessions)
    r.add_post("/api/admin/accounts/{id}/sessions/end", end_sessions)
    r.add_get("/api/admin/audit", read_audit)
    r.add_get("/api/admin/audit.csv", audit_csv)
    r.add_post("/api/auth/reset", use_reset_code)
