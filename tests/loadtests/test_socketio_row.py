"""The lab's socketio peer row: python-socketio beside vsync on a real server, the floor's framing, the plan."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.__main__ import Block, plan, with_clients
from loadtests.probe import SOCKETIO_APP, SOCKETIO_SETTINGS, SocketIoViewer, socketio_command
from loadtests.runner import RunSpec, Servers, Settings, http_json
from tests.support.servers import LiveServer, free_port, migrate, server_env
from vsync.launcher import server_command

# Generous bounds for a loaded shared machine: they end a broken test, they measure nothing.
WAIT_S = 20.0
_STATE = re.compile(rb'^42\["state",(.*)\]$', re.S)


def states(viewer: SocketIoViewer) -> list[dict]:
    found = []
    for _, message in viewer.messages:
        match = _STATE.match(message)
        assert match, message
        found.append(json.loads(match.group(1)))
    return found


async def connect(port: int, slug: str) -> SocketIoViewer:
    loop = asyncio.get_running_loop()
    viewer = SocketIoViewer(f"127.0.0.1:{port}", slug, loop.create_future())
    await loop.create_connection(lambda: viewer, "127.0.0.1", port)
    await asyncio.wait_for(viewer.ready, WAIT_S)
    return viewer


async def until_version(viewer: SocketIoViewer, version: int) -> list[dict]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        received = states(viewer)
        if received and received[-1]["version"] >= version:
            return received
        await asyncio.sleep(0.05)
    raise AssertionError(f"version {version} never arrived: {[s['version'] for s in states(viewer)]}")


async def seek(base: str, slug: str, position: float) -> dict:
    body = {"type": "seek", "client_id": "test-socketio", "client_ms": time.time() * 1000, "position": position}
    status, answer = await asyncio.to_thread(http_json, "POST", f"{base}/api/rooms/{slug}/commands", body)
    assert status == 200, answer
    return answer["state"]


@pytest.fixture(scope="module", params=["uvicorn", "daphne"])
def socketio_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = server_env(tmp_path_factory.mktemp(f"socketio-{request.param}"), VSYNC_ADDRESS_LIMITS="off")
    migrate(env)
    port = free_port()
    server = LiveServer(env=env, port=port, command=socketio_command(server_command(request.param, port))).start()
    yield server
    server.stop()


def new_room(base: str) -> str:
    status, state = http_json("POST", f"{base}/api/rooms", {"name": f"socketio {time.time_ns()}"})
    assert status == 201, state
    return str(state["room"])


def test_a_viewer_gets_the_state_on_connect_and_every_new_version(socketio_server):
    slug = new_room(socketio_server.url)

    async def scenario() -> tuple[list[dict], dict]:
        viewer = await connect(socketio_server.port, slug)
        first = states(viewer)[0]
        accepted = await seek(socketio_server.url, slug, 12.5)
        assert accepted["version"] > first["version"]
        received = await until_version(viewer, accepted["version"])
        viewer.transport.close()
        return received, accepted

    received, accepted = asyncio.run(scenario())
    assert received[-1] == accepted  # the contract's fields, changed_ms among them
    assert {"room", "version", "position", "anchor_ms", "changed_ms"} <= received[-1].keys()
    versions = [state["version"] for state in received]
    assert versions == sorted(set(versions))  # none twice, never an older one


def test_a_viewer_joining_later_gets_the_newest_state_once(socketio_server):
    slug = new_room(socketio_server.url)

    async def scenario() -> tuple[list[dict], list[dict], int]:
        early = await connect(socketio_server.port, slug)
        accepted = await seek(socketio_server.url, slug, 30.0)
        await until_version(early, accepted["version"])
        late = await connect(socketio_server.port, slug)
        newer = await seek(socketio_server.url, slug, 40.0)
        late_states = await until_version(late, newer["version"])
        early_states = await until_version(early, newer["version"])
        for viewer in (early, late):
            viewer.transport.close()
        return early_states, late_states, accepted["version"]

    early_states, late_states, joined_at = asyncio.run(scenario())
    assert [s["version"] for s in late_states] == [joined_at, joined_at + 1]
    assert [s["version"] for s in early_states][-2:] == [joined_at, joined_at + 1]


def test_a_room_that_does_not_exist_sends_no_state(socketio_server):
    async def scenario() -> list[bytes]:
        loop = asyncio.get_running_loop()
        viewer = SocketIoViewer(f"127.0.0.1:{socketio_server.port}", "no-such-room", loop.create_future())
        frames: list[bytes] = []
        original = viewer.got

        def got(t_ms: float, message: bytes) -> None:
            frames.append(message)
            original(t_ms, message)

        viewer.got = got  # type: ignore[method-assign]
        await loop.create_connection(lambda: viewer, "127.0.0.1", socketio_server.port)
        deadline = time.monotonic() + WAIT_S
        while not any(frame.startswith((b"41", b"44")) for frame in frames) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        viewer.ready.cancel()  # it never becomes ready: no state comes
        viewer.transport.close()
        return frames

    frames = asyncio.run(scenario())
    assert any(frame.startswith((b"41", b"44")) for frame in frames), frames  # refused: disconnect or error
    assert not any(frame.startswith(b"42") for frame in frames)


def test_the_floor_speaks_the_socketio_row_s_framing(tmp_path: Path):
    port = free_port()
    floor = LiveServer(env=server_env(tmp_path), port=port,
                       command=[sys.executable, "-m", "loadtests.floor", "--port", str(port)]).start()
    try:
        async def scenario() -> tuple[list[dict], dict]:
            viewer = await connect(port, "bench")
            accepted = await seek(floor.url, "bench", 5.0)
            received = await until_version(viewer, accepted["version"])
            viewer.transport.close()
            return received, accepted

        received, accepted = asyncio.run(scenario())
    finally:
        floor.stop()
    assert received[-1]["version"] == accepted["version"]
    assert received[-1]["changed_ms"] == accepted["changed_ms"]


def test_the_plan_has_socketio_rows_served_by_the_socketio_app_beside_their_floor():
    specs = with_clients(plan([Block(("ws", "socketio"), (200, 1000), (("uvicorn", "memory"), ("daphne", "memory")))],
                              floor=True), "auto")
    socketio = [spec for spec in specs if spec.transport == "socketio"]
    assert {(s.server, s.viewers) for s in socketio} == {
        ("uvicorn", 200), ("daphne", 200), ("floor", 200), ("uvicorn", 1000), ("daphne", 1000), ("floor", 1000)}
    assert {s.client for s in socketio if s.viewers == 200} == {"locust"}
    assert {s.client for s in socketio if s.viewers == 1000} == {"probe"}

    def command(transport: str, server: str) -> list[str]:
        return Servers(RunSpec(transport, 200, server, "memory"), Path("/nonexistent"), Settings()).command(8000)

    assert SOCKETIO_APP in command("socketio", "uvicorn")
    assert SOCKETIO_APP not in command("ws", "uvicorn")
    assert command("socketio", "daphne")[-2:] == ["--settings", SOCKETIO_SETTINGS]
    assert "--settings" not in command("ws", "daphne")
