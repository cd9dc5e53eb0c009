"""Driving ``vsync.asgi.application`` in-process with Channels' communicators, on a hub of the test's own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async

from rooms.services import room_create
from rooms.state import Media
from transports import chat_poll, hub_stats, long_poll, short_poll, sse, streams, websocket
from transports import hub as hub_module
from transports.hub import Hub

HUB_USERS = (hub_module, hub_stats, chat_poll, long_poll, short_poll, sse, websocket)


@pytest.fixture
def fresh_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """A hub for this test's event loop (the process-wide one binds to the first loop it meets)."""
    fresh = Hub()
    streams.counts.clear()  # process-wide: other tests in this process (pytest-xdist) counted too
    for module in HUB_USERS:
        monkeypatch.setattr(module, "hub", fresh)
    yield fresh
    for job in list(fresh._background):
        job.cancel()


async def new_room(name: str) -> str:
    room = await database_sync_to_async(room_create)(name=name, media=Media(url="/m.webm"))
    return room.slug


def http_scope(path: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None,
               client: str = "127.0.0.1") -> dict[str, Any]:
    return {"type": "http", "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
            "raw_path": path.encode(), "query_string": query, "root_path": "", "headers": headers or [],
            "client": (client, 50000), "server": ("127.0.0.1", 8000)}


async def http_open(scope: dict[str, Any]) -> ApplicationCommunicator:
    from vsync.asgi import application

    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    return communicator


async def until(condition: Any, timeout: float = 3.0) -> None:
    """Wait until ``condition()`` holds (the application runs in its own task)."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    assert condition()
