"""Ending connections from the server's side, on real daphne and uvicorn: a kick, a password set
later, the per-address cap. What the servers do with the close, the end of an SSE response and
a refused long poll is theirs, so these run over the wire."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.support.clients import create_room
from tests.support.servers import LiveServer, free_port, migrate, server_env
from vsync import launcher

CAP = 4


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp(f"ending-{request.param}")
    env = server_env(data_dir, VSYNC_MAX_CONNECTIONS_PER_ADDRESS=str(CAP), VSYNC_ADDRESS_LIMITS="on")
    migrate(env)
    port = free_port()
    command = launcher.server_command("uvicorn", port) if request.param == "uvicorn" else None
    live = LiveServer(env=env, port=port, command=command).start()
    yield live
    live.stop()


def join(server: LiveServer, slug: str, client_id: str, **extra: str) -> str:
    response = httpx.post(f"{server.url}/api/rooms/{slug}/join", json={"client_id": client_id, **extra})
    assert response.status_code == 200, response.text
    return response.json()["member_token"]


async def ws_close_code(socket: websockets.ClientConnection, timeout: float = 5) -> int:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(socket.recv(), timeout)
    return closed.value.rcvd.code


async def sse_until_end(http: httpx.AsyncClient, url: str, opened: asyncio.Event) -> list[str]:
    async with http.stream("GET", url) as response:
        assert response.status_code == 200
        lines = []
        async for line in response.aiter_lines():
            lines.append(line)
            if line.startswith("id:"):
                opened.set()
        return lines  # the server ended the response


def test_a_kicked_member_loses_sse_long_poll_and_websocket_at_once(server: LiveServer) -> None:
    room = create_room(server.url, "kick live")
    slug, owner = room["room"], room["owner_token"]
    token = join(server, slug, "c-kicked")

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http, \
                websockets.connect(f"{server.ws_url}/ws/rooms/{slug}?token={token}") as socket:
            assert json.loads(await socket.recv())["type"] == "state"
            opened = asyncio.Event()
            events = asyncio.ensure_future(sse_until_end(http, f"/api/rooms/{slug}/events?token={token}", opened))
            poll = asyncio.ensure_future(http.get(f"/api/rooms/{slug}/poll", params={"since": 1, "timeout": 20},
                                                  headers={"Authorization": f"Bearer {token}"}))
            await asyncio.wait_for(opened.wait(), 5)
            await asyncio.sleep(0.2)  # the long poll is waiting
            kicked = await http.post(f"/api/rooms/{slug}/kick", json={"client_id": "c-kicked"},
                                     headers={"Authorization": f"Bearer {owner}"})
            assert kicked.status_code == 200, kicked.text
            assert await ws_close_code(socket) == 4403
            assert (await asyncio.wait_for(poll, 5)).status_code == 403
            await asyncio.wait_for(events, 5)  # the stream ended

    asyncio.run(scenario())


def test_a_password_set_later_closes_anonymous_websockets_4401(server: LiveServer) -> None:
    room = create_room(server.url, "password later")
    slug, owner = room["room"], room["owner_token"]

    async def scenario() -> None:
        async with websockets.connect(f"{server.ws_url}/ws/rooms/{slug}") as socket:
            assert json.loads(await socket.recv())["type"] == "state"
            changed = await asyncio.to_thread(httpx.post, f"{server.url}/api/rooms/{slug}/settings",
                                              json={"password": "sesame"},
                                              headers={"Authorization": f"Bearer {owner}"})
            assert changed.status_code == 200, changed.text
            assert await ws_close_code(socket) == 4401
        async with websockets.connect(f"{server.ws_url}/ws/rooms/{slug}") as socket:
            assert await ws_close_code(socket) == 4401  # and a new one right after the handshake

    asyncio.run(scenario())


def test_over_the_connection_cap_http_is_429_and_a_websocket_closes_4429(server: LiveServer) -> None:
    slug = create_room(server.url, "cap live")["room"]

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            held = [await http.send(http.build_request("GET", f"/api/rooms/{slug}/events"), stream=True)
                    for _ in range(CAP)]
            try:
                assert all(response.status_code == 200 for response in held)
                refused = await http.get(f"/api/rooms/{slug}/poll", params={"since": 1, "timeout": 1})
                assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
                assert refused.json()["error"]
                async with websockets.connect(f"{server.ws_url}/ws/rooms/{slug}") as socket:
                    assert await ws_close_code(socket) == 4429
            finally:
                for response in held:
                    await response.aclose()
            for _ in range(50):  # the slots free as the server sees the clients go
                response = await http.get(f"/api/rooms/{slug}/poll", params={"since": 0, "timeout": 1})
                if response.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert response.status_code == 200

    asyncio.run(scenario())
