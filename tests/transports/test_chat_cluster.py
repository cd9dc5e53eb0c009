"""Chat across two processes on a real redis-server: a message posted on one reaches the viewers
of every transport on the other, in order. Fails, never skips, when redis-server is missing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.clients import create_room
from tests.support.servers import server_env
from tests.transports.test_chat_delivery import SseChat, WsChat, say
from tests.transports.test_cluster_redis import consecutive_free_ports
from vsync.launcher import Cluster

pytestmark = pytest.mark.redis


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    base = consecutive_free_ports(3)
    env = server_env(tmp_path, VSYNC_ADDRESS_LIMITS="off")
    with Cluster(processes=2, base_port=base, redis_port=base + 2, env=env, log_dir=tmp_path) as running:
        yield running


def test_messages_posted_on_one_process_reach_every_transport_on_the_other(cluster: Cluster) -> None:
    a, b = cluster.urls
    slug = create_room(a, "chat cluster")["room"]

    async def scenario() -> None:
        async with WsChat(b, slug) as ws, SseChat(b, slug) as sse, httpx.AsyncClient(base_url=b, timeout=30) as http:
            await ws.next("state")
            await sse.next("state")
            waiting = asyncio.ensure_future(http.get(f"/api/rooms/{slug}/chat", params={"after": 0, "timeout": 10}))
            await asyncio.sleep(0.3)
            sent = [await asyncio.to_thread(say, a, slug, f"from a {i}") for i in range(5)]
            assert [(await ws.next("chat"))["message"] for _ in sent] == sent
            assert [(await sse.next("chat"))[1] for _ in sent] == sent
            assert (await waiting).json()["messages"][0] == sent[0]
            polled = await http.get(f"/api/rooms/{slug}/chat", params={"after": sent[0]["id"], "timeout": 5})
            assert polled.json()["messages"] == sent[1:]
            assert (await http.get(f"/api/rooms/{slug}/chat", params={"after": 0})).json()["messages"] == sent

    asyncio.run(scenario())
