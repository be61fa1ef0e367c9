"""The node's Redis connections send in the caller's own task (infra/redisclient.py `_SendInPlace`: redis-py
would wrap every send in asyncio.wait_for, a task per command) and keep redis-py's behaviour: commands,
pipelines and pub/sub work; a send that cannot finish within the socket timeout is a Redis TimeoutError and
the connection is dropped."""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest
import redis.asyncio as aioredis
from redis.exceptions import TimeoutError as RedisTimeoutError

from infra import redisclient


async def test_the_node_client_sends_in_place_and_works(stack):
    client = redisclient.connect(stack.redis_url)
    try:
        cls = client.connection_pool.connection_class
        assert issubclass(cls, redisclient._SendInPlace)
        key = f"{stack.prefix}inplace:{uuid.uuid4().hex[:8]}"
        await client.set(key, "1", ex=60)
        assert await client.get(key) == b"1"
        async with client.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.incr(key)
            assert await pipe.execute() == [2, 3]
        sub = client.pubsub()
        await sub.subscribe(key + ":ch")
        assert (await sub.get_message(timeout=1))["type"] == "subscribe"
        await client.publish(key + ":ch", "hello")
        msg = await sub.get_message(timeout=1)
        assert msg is not None and msg["data"] == b"hello"
        await sub.aclose()  # type: ignore[no-untyped-call]
        await client.delete(key)
    finally:
        await client.aclose()


async def test_a_send_that_cannot_finish_times_out_and_drops_the_connection():
    """A server that answers the connection's handshake, then reads nothing more: a large value fills the
    socket's buffers and the send waits; past the socket timeout it is a Redis TimeoutError, as redis-py's own."""
    stalled = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while not stalled.is_set():         # +OK to each command of the handshake
                line = await asyncio.wait_for(reader.readline(), 0.3)
                if line.startswith(b"*"):
                    writer.write(b"+OK\r\n")
                    await writer.drain()
        await asyncio.sleep(30)                 # then read nothing

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = aioredis.ConnectionPool(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=1)
    redisclient._send_in_place(pool)
    client = aioredis.Redis(connection_pool=pool)
    try:
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        assert isinstance(conn, redisclient._SendInPlace)
        await conn.connect()  # type: ignore[no-untyped-call]
        stalled.set()
        await asyncio.sleep(0.4)                # the server has stopped reading
        t0 = time.monotonic()
        with pytest.raises(RedisTimeoutError, match="Timeout writing to socket"):
            await conn.send_command("SET", "k", b"x" * (64 << 20))
        assert 0.4 < time.monotonic() - t0 < 5
        assert not conn.is_connected
        await pool.release(conn)
    finally:
        await client.aclose()
        server.close()
