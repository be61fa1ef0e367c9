"""A real Redis Cluster on loopback for failover tests: six `redis-server --cluster-enabled yes`
processes (three primaries, three replicas: `redis-cli --cluster create ... --cluster-replicas 1`),
each on a free port with its cluster bus on another free port (`cluster-port`), under a temporary
directory (the servers' logs beside their data).

The node timeout is short (1 s) so that a kill -9 of a primary is noticed and its replica promoted
within a few seconds. Needs the system's redis-server and redis-cli, version 7 or later (sharded
pub/sub); `unavailable()` says why not when they are missing or too old.

    with RedisClusterSet() as c:             # started: every slot covered, every replica in sync
        url = c.url                          # redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...
        port = c.kill_owner(slot)            # kill -9 the primary holding `slot`
        c.wait_failover(slot, port)          # another node holds the slot and the cluster says ok
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

SERVER = "/usr/bin/redis-server"
CLI = "/usr/bin/redis-cli"


def server_version(binary: str = SERVER) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return None
    m = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else None


def unavailable() -> str | None:
    """Why a Redis Cluster cannot be started here (None when it can)."""
    if not os.path.exists(SERVER):
        return f"no {SERVER} (a Redis Cluster needs the system's redis-server 7+)"
    if not os.path.exists(CLI):
        return f"no {CLI} (the cluster is created with redis-cli --cluster create)"
    v = server_version()
    if v is None or v < (7,):
        return (f"{SERVER} is version {'.'.join(map(str, v)) if v else 'unknown'}: sharded pub/sub "
                "(SSUBSCRIBE/SPUBLISH) needs Redis 7")
    return None


class ServerExited(RuntimeError):
    """A redis-server of the set exited while it was being started."""


class RedisClusterSet:
    def __init__(self, primaries: int = 3, node_timeout_ms: int = 1000) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hl-rcluster-"))
        self.node_timeout_ms = node_timeout_ms
        self.n = primaries * 2
        self.ports: list[int] = []
        self.bus_ports: list[int] = []
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._pick_ports()

    def _pick_ports(self) -> None:
        """Twelve distinct free ports (a node's and its cluster bus's), held open together while picked so
        that none is handed out twice."""
        socks = []
        try:
            for _ in range(self.n * 2):
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                socks.append(s)
            ports = [s.getsockname()[1] for s in socks]
        finally:
            for s in socks:
                s.close()
        self.ports, self.bus_ports = ports[:self.n], ports[self.n:]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def _server(self, port: int, bus_port: int) -> None:
        d = self.dir / str(port)
        d.mkdir()
        log = open(self.dir / f"{port}.log", "wb")
        self.procs[port] = subprocess.Popen(
            [SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(d), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-port", str(bus_port), "--cluster-node-timeout", str(self.node_timeout_ms),
             # a replica may always take over, however long it was cut off (the test kills, it does not partition)
             "--cluster-replica-validity-factor", "0"],
            stdout=log, stderr=subprocess.STDOUT, cwd=d, start_new_session=True)
        log.close()

    def start(self, timeout: float = 60, attempts: int = 3) -> RedisClusterSet:
        """Start the servers and create the cluster; a server that exits at once (its port taken meanwhile
        by another process on this busy machine) makes a new attempt on new ports."""
        why = unavailable()
        if why:
            raise RuntimeError(why)
        for attempt in range(1, attempts + 1):
            for port, bus_port in zip(self.ports, self.bus_ports, strict=True):
                self._server(port, bus_port)
            try:
                for port in self.ports:
                    self._wait(lambda port=port: _cmd(port, "PING"), timeout, f"redis-server on :{port}")
                break
            except ServerExited:
                if attempt == attempts:
                    raise
                self._kill_all()
                self._pick_ports()
        out = subprocess.run([CLI, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                              "--cluster-replicas", "1", "--cluster-yes"],
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout[-2000:]}{out.stderr[-2000:]}")

        def settled() -> bool:
            for port in self.ports:
                if _cluster_info(port).get("cluster_state") != "ok":
                    return False
                if _cluster_info(port).get("cluster_known_nodes") != str(len(self.ports)):
                    return False
                rep = _info(port, "replication")
                if rep.get("role") == "slave" and rep.get("master_link_status") != "up":
                    return False
            ranges = self.slots()
            return len({p for _, _, p, _ in ranges}) == len(self.ports) // 2 and all(len(r) == 1 for *_, r in ranges)
        self._wait(settled, timeout, "cluster_state:ok on every node, every replica in sync")
        return self

    # ------------------------------------------------------------------ topology
    def slots(self, via: int | None = None) -> list[tuple[int, int, int, list[int]]]:
        """(first slot, last slot, primary's port, replicas' ports) as a live node answers CLUSTER SLOTS."""
        for port in [via] if via else list(self.procs):
            with contextlib.suppress(redis.RedisError):
                rows = _cmd(port, "CLUSTER", "SLOTS")
                return [(int(r[0]), int(r[1]), int(r[2][1]), [int(x[1]) for x in r[3:]]) for r in rows]
        return []

    def primaries(self) -> set[int]:
        return {p for _, _, p, _ in self.slots()}

    def owner(self, slot: int, via: int | None = None) -> int | None:
        for lo, hi, port, _ in self.slots(via):
            if lo <= slot <= hi:
                return port
        return None

    def kill(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def kill_owner(self, slot: int) -> int:
        """kill -9 the primary that holds `slot`; its port."""
        port = self.owner(slot)
        assert port is not None, f"no node holds slot {slot}"
        self.kill(port)
        return port

    def wait_failover(self, slot: int, old: int, timeout: float = 30) -> int:
        """Wait until every live node says a node other than `old` holds `slot` and the cluster is ok;
        the new holder's port."""
        def moved() -> bool:
            owners = {self.owner(slot, via=p) for p in self.procs}
            if len(owners) != 1 or None in owners or old in owners:
                return False
            return all(_cluster_info(p).get("cluster_state") == "ok" for p in self.procs)
        self._wait(moved, timeout, f"another primary for slot {slot} (was :{old})")
        new = self.owner(slot)
        assert new is not None
        return new

    def _wait(self, check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(redis.RedisError, KeyError, ValueError, IndexError):
                if check():
                    return
            for port, proc in self.procs.items():
                if proc.poll() is not None:
                    tail = (self.dir / f"{port}.log").read_text(errors="replace")[-600:]
                    raise ServerExited(f"Redis Cluster: redis-server on :{port} exited ({proc.returncode}) while "
                                       f"waiting for {what}: {tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis Cluster: waited {timeout}s for {what}; logs in {self.dir}")
            time.sleep(0.05)

    def _kill_all(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self.procs.clear()
        for d in self.dir.iterdir():
            if d.is_dir():
                shutil.rmtree(d, ignore_errors=True)

    def stop(self, keep_logs: bool = False) -> None:
        self._kill_all()
        if not keep_logs:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisClusterSet:
        try:
            return self.start()
        except BaseException:
            self.stop(keep_logs=True)        # the error names the directory of the servers' logs
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cmd(port: int, *args: str) -> Any:
    r = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=1)
    try:
        return r.execute_command(*args)  # type: ignore[no-untyped-call]
    finally:
        r.close()


def _info(port: int, section: str) -> dict[str, Any]:
    r = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=1)
    try:
        info: dict[str, Any] = r.info(section)
        return info
    finally:
        r.close()


def _cluster_info(port: int) -> dict[str, str]:
    raw = _cmd(port, "CLUSTER", "INFO")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
