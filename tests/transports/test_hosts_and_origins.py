"""The raw-ASGI routes and the WebSocket hold Django's Host rule (ALLOWED_HOSTS) and the HTTP API's
full-origin rule, and every raw-ASGI answer says nosniff (in-process, a fresh hub)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from tests.transports.inprocess import http_open, http_scope, new_room
from transports.hub import Hub

pytestmark = pytest.mark.django_db(transaction=True)

PATHS = [("state", b""), ("poll", b"since=1&timeout=0"), ("events", b""), ("chat", b"after=0&timeout=0.1")]


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def http_head(scope: dict[str, Any]) -> tuple[int, dict[bytes, bytes]]:
    client = await http_open(scope)
    start = await client.receive_output(3)
    await client.send_input({"type": "http.disconnect"})
    return start["status"], dict(start["headers"])


@pytest.mark.parametrize(("kind", "query"), PATHS)
def test_a_raw_asgi_answer_says_nosniff(fresh_hub: Hub, kind: str, query: bytes) -> None:
    async def scenario() -> None:
        slug = await new_room(f"nosniff {kind}")
        status, headers = await http_head(http_scope(f"/api/rooms/{slug}/{kind}", query))
        assert status in (200, 204) and headers[b"x-content-type-options"] == b"nosniff"
        # The refusals too.
        status, headers = await http_head(http_scope(f"/api/rooms/no-such-room/{kind}", query))
        assert status == 404 and headers[b"x-content-type-options"] == b"nosniff"

    run(scenario())


@pytest.mark.parametrize(("kind", "query"), PATHS)
def test_a_raw_asgi_route_refuses_a_host_not_in_allowed_hosts(fresh_hub: Hub, kind: str, query: bytes) -> None:
    async def scenario() -> None:
        slug = await new_room(f"host {kind}")
        scope = http_scope(f"/api/rooms/{slug}/{kind}", query, [(b"host", b"evil.example")])
        status, _ = await http_head(scope)
        assert status == 400
        assert fresh_hub.viewer_count() == 0
        status, _ = await http_head(http_scope(f"/api/rooms/{slug}/{kind}", query, [(b"host", b"localhost:8000")]))
        assert status in (200, 204)

    run(scenario())


async def ws_handshake(path: str, headers: list[tuple[bytes, bytes]], scheme: str = "ws") -> bool:
    from vsync.asgi import application

    socket = WebsocketCommunicator(application, path, headers=headers)
    socket.scope.update(server=("127.0.0.1", 8000), client=("127.0.0.1", 50002), scheme=scheme)
    connected, _ = await socket.connect()
    if connected:
        await socket.disconnect()
    return connected


@pytest.mark.parametrize(("headers", "scheme", "accepted"), [
    ([(b"host", b"127.0.0.1:8000")], "ws", True),  # no Origin: not a browser page
    ([(b"host", b"127.0.0.1:8000"), (b"origin", b"http://127.0.0.1:8000")], "ws", True),
    ([(b"host", b"localhost"), (b"origin", b"https://localhost")], "wss", True),
    ([(b"host", b"evil.example")], "ws", False),
    ([(b"host", b"127.0.0.1:8000"), (b"origin", b"http://127.0.0.1:9999")], "ws", False),  # another program
    ([(b"host", b"localhost"), (b"origin", b"http://localhost")], "wss", False),  # http page, https site
    ([(b"host", b"127.0.0.1:8000"), (b"origin", b"https://evil.example")], "ws", False),
    ([(b"host", b"127.0.0.1:8000"), (b"origin", b"null")], "ws", False),
])
def test_a_websocket_needs_an_allowed_host_and_its_own_full_origin(
        fresh_hub: Hub, headers: list[tuple[bytes, bytes]], scheme: str, accepted: bool) -> None:
    async def scenario() -> None:
        slug = await new_room("ws origin")
        assert await ws_handshake(f"/ws/rooms/{slug}", headers, scheme) is accepted

    run(scenario())
