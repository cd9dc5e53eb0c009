"""The hub forgets a connection the moment it closes (vsync.asgi.application in-process, a fresh hub)."""

from __future__ import annotations

import asyncio

import pytest
from channels.testing import WebsocketCommunicator

from tests.transports.inprocess import http_open, http_scope, new_room, until
from transports.hub import Hub

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("kind", ["events", "poll"])
def test_a_closed_http_stream_is_forgotten_at_once(fresh_hub: Hub, kind: str) -> None:
    async def scenario() -> None:
        slug = await new_room(f"cleanup {kind}")
        client = await http_open(http_scope(f"/api/rooms/{slug}/{kind}", b"since=1&timeout=30"))
        await until(lambda: fresh_hub.viewer_count() == 1)
        await client.send_input({"type": "http.disconnect"})
        await client.wait(2)
        assert fresh_hub.viewer_count() == 0

    asyncio.run(scenario())


def test_a_closed_websocket_is_forgotten_at_once(fresh_hub: Hub) -> None:
    async def scenario() -> None:
        from vsync.asgi import application

        slug = await new_room("cleanup ws")
        socket = WebsocketCommunicator(application, f"/ws/rooms/{slug}")
        socket.scope["server"] = ("127.0.0.1", 8000)  # as a real server says (the Host rule)
        connected, _ = await socket.connect()
        assert connected
        assert (await socket.receive_json_from())["state"]["version"] == 1
        assert fresh_hub.viewer_count() == 1
        await socket.disconnect()
        assert fresh_hub.viewer_count() == 0

    asyncio.run(scenario())


def test_a_closed_connection_leaves_nothing_behind_and_the_room_still_delivers(fresh_hub: Hub) -> None:
    async def scenario() -> None:
        from vsync.asgi import application

        slug = await new_room("cleanup all")
        for round_ in range(3):
            socket = WebsocketCommunicator(application, f"/ws/rooms/{slug}")
            socket.scope["server"] = ("127.0.0.1", 8000)  # as a real server says (the Host rule)
            await socket.connect()
            events = await http_open(http_scope(f"/api/rooms/{slug}/events", b"last_event_id=1"))
            poll = await http_open(http_scope(f"/api/rooms/{slug}/poll", b"since=1&timeout=30"))
            await until(lambda: fresh_hub.viewer_count() == 3)
            await socket.disconnect()
            for client in (events, poll):
                await client.send_input({"type": "http.disconnect"})
                await client.wait(2)
            assert fresh_hub.viewer_count() == 0, round_
        assert fresh_hub.stats()["counts"].get("send_errors", 0) == 0

    asyncio.run(scenario())
