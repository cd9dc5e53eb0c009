"""Several processes on a real redis-server: a command on one reaches viewers on every one.

These tests fail, never skip, when redis-server is missing.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clients import TRANSPORTS, create_room, now_ms, seek, viewer
from tests.support.servers import server_env
from vsync.launcher import Cluster, free_port

pytestmark = pytest.mark.redis


def consecutive_free_ports(count: int) -> int:
    for _ in range(50):
        base = free_port()
        if base + count >= 65000:
            continue
        try:
            sockets = [socket.create_server(("127.0.0.1", base + i)) for i in range(count)]
        except OSError:
            continue
        for sock in sockets:
            sock.close()
        return base
    raise RuntimeError("no run of free ports")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    base = consecutive_free_ports(3)
    env = server_env(tmp_path)
    with Cluster(processes=2, base_port=base, redis_port=base + 2, env=env, log_dir=tmp_path) as running:
        yield running


def test_a_command_on_one_process_reaches_every_transport_on_another(cluster: Cluster) -> None:
    a, b = cluster.urls
    slug = create_room(a, "cluster")["room"]

    async def scenario() -> None:
        watchers = [viewer(transport, b, slug) for transport in TRANSPORTS]
        for watcher in watchers:
            await watcher.open()
            await watcher.next_state()
        changed = await asyncio.to_thread(seek, a, slug, 5.0)
        for watcher in watchers:
            assert await watcher.next_state(timeout=5) == changed
        for watcher in watchers:
            await watcher.close()

    asyncio.run(scenario())


def test_a_websocket_command_on_one_process_reaches_sse_and_long_poll_on_the_other(cluster: Cluster) -> None:
    a, b = cluster.urls
    slug = create_room(a, "cluster ws")["room"]

    async def scenario() -> None:
        async with viewer("ws", b, slug) as author, viewer("sse", a, slug, since=1) as sse, \
                viewer("longpoll", a, slug, since=1) as longpoll:
            await author.next_state()
            ack = await author.request({"type": "command", "ref": 1, "command": {
                "type": "play", "client_id": "c-b", "client_ms": now_ms(), "position": 2.0}})
            assert ack["accepted"] is True
            assert await sse.next_state(timeout=5) == ack["state"]
            assert await longpoll.next_state(timeout=5) == ack["state"]

    asyncio.run(scenario())


def test_viewers_converge_after_redis_restarts(cluster: Cluster) -> None:
    a, b = cluster.urls
    slug = create_room(a, "restart")["room"]

    async def scenario() -> None:
        watchers = [viewer(transport, b, slug) for transport in ("longpoll", "sse", "ws")]
        for watcher in watchers:
            await watcher.open()
            await watcher.next_state()
        cluster.stop_redis()
        # A command while Redis is down: process A commits it, B's viewers miss the message.
        missed = await asyncio.to_thread(seek, a, slug, 1.0, "c-down")
        cluster.start_redis()
        for watcher in watchers:
            assert (await watcher.until(missed["version"], timeout=15))["version"] == missed["version"]
        # And the processes are subscribed again: the next command arrives too.
        started = time.monotonic()
        after = await asyncio.to_thread(seek, a, slug, 2.0, "c-up")
        for watcher in watchers:
            assert await watcher.until(after["version"], timeout=15) == after
        print(f"after the restart a command reached B's viewers in {time.monotonic() - started:.2f} s")
        for watcher in watchers:
            await watcher.close()

    asyncio.run(scenario())
