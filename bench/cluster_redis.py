"""What a Redis Cluster costs the node (issue 17): client CPU per operation on one Redis and on a Redis
Cluster (testkit/rediscluster.py: three primaries, three replicas on loopback), measured in the same run.

    .venv/bin/python -m bench.cluster_redis [--publishes 20000] [--commands 3000]

Per operation, the process's CPU (time.process_time: this benchmark is the only work of its process):
- a publish through the node's pipeliner (infra/redisbatch.py: one MULTI per batch; SPUBLISH on the cluster),
  200 callers at a time, as a node under load;
- a rate-limit attempt over two counters (one MULTI: infra/ratelimit.py take);
- a single GET.
On the cluster, twice: with the node's client (infra/redisclient.py ClusterRedis, whose transactions find a
command's slot at once) and with redis-py's plain RedisCluster, whose transactions find each queued command's
slot in a thread of its own, joined while the event loop waits.
"""
from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster

from infra import ratelimit, redisclient, redisurl
from infra.bus import Bus
from infra.keys import Keys
from testkit.rediscluster import RedisClusterSet, unavailable


async def cpu_per(n: int, op: Callable[[int], Awaitable[Any]], concurrent: int = 1) -> float:
    """Microseconds of this process's CPU per call of `op`, `concurrent` at a time."""
    for i in range(min(n, 200)):                       # warm: connections, scripts, the map of slots
        await op(i)
    t0 = time.process_time()
    for k in range(0, n, concurrent):
        await asyncio.gather(*(op(i) for i in range(k, min(n, k + concurrent))))
    return (time.process_time() - t0) / n * 1e6


async def measure(client: Any, keys: Keys, args: argparse.Namespace) -> dict[str, float]:
    bus = Bus(client, keepalive=keys.keepalive_channel)
    await bus.start()
    try:
        ch = keys.account_channel("bench")

        async def publish(i: int) -> None:
            await bus.publish(ch, f"payload-{i}")

        async def attempt(i: int) -> None:
            await ratelimit.take(client, [(keys.rate("a", str(i % 50)), (10**9, 60)),
                                          (keys.rate("b", str(i % 50)), (10**9, 60))])

        async def get(i: int) -> None:
            await client.get(keys.online(str(i)))
        return {"publish (pipelined)": await cpu_per(args.publishes, publish, concurrent=200),
                "rate-limit MULTI of 2": await cpu_per(args.commands, attempt),
                "GET": await cpu_per(args.commands, get)}
    finally:
        await bus.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="the one Redis to compare with")
    ap.add_argument("--publishes", type=int, default=20000)
    ap.add_argument("--commands", type=int, default=3000)
    args = ap.parse_args()
    why = unavailable()
    if why:
        raise SystemExit(f"bench.cluster_redis: {why}")
    prefix = f"bench-rc-{uuid.uuid4().hex[:6]}:"
    rows: dict[str, dict[str, float]] = {}
    plain = redisclient.connect(args.redis_url)
    try:
        rows["one Redis"] = await measure(plain, Keys(prefix), args)
        async for key in plain.scan_iter(match=prefix + "*", count=1000):
            await plain.delete(key)
    finally:
        await plain.aclose()
    with RedisClusterSet() as rc:
        node_client = redisclient.connect(rc.url)
        try:
            rows["Redis Cluster, the node's client"] = await measure(node_client, Keys.for_redis(prefix, rc.url), args)
        finally:
            await node_client.aclose()
        target = redisurl.parse(rc.url)
        assert isinstance(target, redisurl.ClusterTarget)
        stock = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in target.seeds])
        try:
            rows["Redis Cluster, redis-py's RedisCluster"] = await measure(stock, Keys.for_redis(prefix, rc.url), args)
        finally:
            await stock.aclose()
    ops = list(next(iter(rows.values())))
    print(f"\nclient CPU per operation, us ({args.publishes} publishes, {args.commands} of the others)")
    print(f"{'':42}" + "".join(f"{op:>24}" for op in ops))
    base = rows["one Redis"]
    for name, row in rows.items():
        cells = "".join(f"{row[op]:>16.1f} ({row[op] / base[op]:4.1f}x)" for op in ops)
        print(f"{name:42}{cells}")


if __name__ == "__main__":
    asyncio.run(main())
