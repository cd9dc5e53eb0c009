"""The hub holds nothing for a connection once it has closed (in-process, with a fresh hub)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async

from rooms.services import room_create
from rooms.state import Media
from transports import hub as hub_module
from transports import long_poll, sse, websocket
from transports.hub import Hub
from transports.routing import WebSocketRouter


@pytest.fixture
def fresh_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """A hub for this test's event loop (the process-wide one belongs to the server's loop)."""
    fresh = Hub()
    for module in (hub_module, long_poll, sse, websocket):
        monkeypatch.setattr(module, "hub", fresh)
    yield fresh


def _connection(kind: str, slug: str) -> tuple[Callable[[], Any], asyncio.Queue, list]:
    inbox: asyncio.Queue = asyncio.Queue()
    sent: list = []

    async def send(message: dict) -> None:
        sent.append(message)

    if kind == "ws":
        scope = {"type": "websocket", "path": f"/ws/rooms/{slug}", "query_string": b"", "headers": []}
        inbox.put_nowait({"type": "websocket.connect"})
        return (lambda: WebSocketRouter()(scope, inbox.get, send)), inbox, sent
    scope = {"type": "http", "method": "GET", "query_string": b"since=1&timeout=30", "headers": []}
    inbox.put_nowait({"type": "http.request", "body": b"", "more_body": False})
    app = sse.app if kind == "sse" else long_poll.app
    return (lambda: app(scope, inbox.get, send, slug)), inbox, sent


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["sse", "longpoll", "ws"])
def test_a_closed_connection_is_forgotten_at_once(fresh_hub: Hub, kind: str) -> None:
    async def scenario() -> None:
        room = await database_sync_to_async(room_create)(name=f"cleanup {kind}", media=Media(url="/m.webm"))
        run, inbox, sent = _connection(kind, room.slug)
        task = asyncio.ensure_future(run())
        for _ in range(100):
            await asyncio.sleep(0.01)
            if fresh_hub.viewer_count() == 1:
                break
        assert fresh_hub.viewer_count() == 1
        await inbox.put({"type": "websocket.disconnect" if kind == "ws" else "http.disconnect"})
        await asyncio.wait_for(task, 2)
        assert fresh_hub.viewer_count() == 0
        if kind != "longpoll":
            assert sent  # headers, or the accept and the state
        for job in list(fresh_hub._background):
            job.cancel()

    asyncio.run(scenario())
