"""A viewer that stops reading costs the server at most one pending snapshot."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.clients import create_room
from tests.support.servers import LiveServer, free_port, migrate, server_env
from tests.support.twisted_tcp import TwistedTcp
from transports.encoding import Snapshot
from transports.streams import SocketStream
from vsync import launcher

VERSIONS = 1000
MAX_GROWTH_BYTES = 4 * 1024 * 1024


def test_a_stream_never_writes_an_older_version_after_a_newer() -> None:
    async def scenario() -> list[int]:
        written: list[int] = []

        async def send(message: dict) -> None:
            written.append(json.loads(message["text"])["state"]["version"])

        stream = SocketStream("demo", send, known_version=1, newest=lambda: None)
        for version in (1, 3, 2, 5, 4, 5, 6):
            stream.push(Snapshot(room="demo", version=version, json_text=f'{{"version": {version}}}'))
            await asyncio.sleep(0)  # the writer task sends
        return written

    assert asyncio.run(scenario()) == [3, 5, 6]


@pytest.fixture(params=["daphne", "uvicorn"])
def fresh_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    env = server_env(tmp_path)
    migrate(env)
    port = free_port()
    command = launcher.server_command("uvicorn", port) if request.param == "uvicorn" else None
    server = LiveServer(env=env, port=port, command=command).start()
    yield server
    server.stop()


def _stalled_sse_viewer(port: int, slug: str) -> socket.socket:
    """A raw SSE client with a tiny receive buffer that reads the response head, then stops."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /api/rooms/{slug}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    received = b""
    while b"id: 1\n" not in received:
        received += sock.recv(4096)
    return sock


def _read_versions(sock: socket.socket, until: int) -> list[int]:
    sock.settimeout(10)
    buffer, versions = b"", []
    while not versions or versions[-1] < until:
        buffer += sock.recv(65536)
        *lines, buffer = buffer.split(b"\n")
        versions += [int(line[4:]) for line in lines if line.startswith(b"id: ")]
    return versions


def test_a_stalled_viewer_keeps_memory_flat_and_then_gets_the_newest(fresh_server: LiveServer) -> None:
    slug = create_room(fresh_server.url, "slow")["room"]
    process = psutil.Process(fresh_server.process.pid)
    sock = _stalled_sse_viewer(fresh_server.port, slug)
    with httpx.Client(base_url=fresh_server.url, timeout=10) as http:

        def publish(count: int, offset: int) -> None:
            for i in range(offset, offset + count):
                command = {"type": "seek", "client_id": f"c-{i}", "client_ms": time.time() * 1000, "position": i}
                assert http.post(f"/api/rooms/{slug}/commands", json=command).status_code == 200

        publish(100, 0)  # warm up: code paths, caches and the database settle first
        before = process.memory_info().rss
        publish(VERSIONS, 100)
        growth = process.memory_info().rss - before
    newest = VERSIONS + 100 + 1
    versions = _read_versions(sock, newest)
    sock.close()
    print(f"RSS growth {growth / 1024:.0f} KiB; the stalled viewer then read {len(versions) - 1} of "
          f"{newest - 1} versions")
    assert growth < MAX_GROWTH_BYTES
    assert versions == sorted(set(versions))
    assert versions[-1] == newest


def test_a_backed_up_stream_skips_to_the_newest_version() -> None:
    async def scenario() -> list[int]:
        drained = asyncio.Event()
        written: list[int] = []

        async def send(message: dict) -> None:  # a server whose socket is full until drained
            written.append(json.loads(message["text"])["state"]["version"])
            await drained.wait()

        newest: list[Snapshot] = []
        stream = SocketStream("demo", send, known_version=None, newest=lambda: newest[-1])
        for version in range(1, VERSIONS + 1):
            newest.append(Snapshot(room="demo", version=version, json_text=f'{{"version": {version}}}'))
            stream.push(newest[-1])
            await asyncio.sleep(0)
        assert written == [1] and stream.busy
        drained.set()
        await asyncio.sleep(0.01)
        return written

    assert asyncio.run(scenario()) == [1, VERSIONS]


def _ws_text_frames(data: bytes) -> list[bytes]:
    frames = []
    while data:
        size, start = data[1] & 0x7F, 2
        if size == 126:
            size, start = int.from_bytes(data[2:4], "big"), 4
        elif size == 127:
            size, start = int.from_bytes(data[2:10], "big"), 10
        frames.append(data[start:start + size])
        data = data[start + size:]
    return frames


def test_under_daphne_a_viewer_that_stops_reading_skips_to_the_newest_version() -> None:
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol

    server_side, client_side = socket.socketpair()
    server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client_side.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server_side.setblocking(False)
    server = object.__new__(Server)
    protocol = object.__new__(WebSocketProtocol)
    protocol.state, protocol.send_state = WebSocketProtocol.STATE_OPEN, WebSocketProtocol.SEND_STATE_GROUND
    protocol.transport = tcp = TwistedTcp(server_side)
    server.connections = {protocol: {}}
    padding = "x" * 2000

    async def scenario() -> list[int]:
        newest: list[Snapshot] = []
        stream = SocketStream("demo", partial(server.handle_reply, protocol), known_version=None,
                              newest=lambda: newest[-1])
        assert stream._direct is not None  # daphne's send: the hub writes the frames itself
        for version in range(1, VERSIONS + 1):
            newest.append(Snapshot(room="demo", version=version, json_text=json.dumps(
                {"version": version, "padding": padding})))
            stream.push(newest[-1])
            await asyncio.sleep(0)
        # The socket filled up; Twisted holds the rest of one frame at most, and nothing more.
        assert stream.busy
        assert sum(map(len, tcp._tempDataBuffer)) < len(newest[-1].ws_frame)
        received = b""
        client_side.setblocking(False)
        while True:  # the viewer reads again, and Twisted sends what it held
            try:
                received += client_side.recv(1 << 20)
            except BlockingIOError:
                break
        tcp.flush()
        await asyncio.sleep(0.2)
        client_side.settimeout(0.5)
        try:
            while chunk := client_side.recv(1 << 20):
                received += chunk
        except TimeoutError:
            pass
        return [json.loads(frame)["state"]["version"] for frame in _ws_text_frames(received)]

    try:
        versions = asyncio.run(scenario())
    finally:
        server_side.close()
        client_side.close()
    print(f"the stalled viewer was sent versions {versions[:3]} ... {versions[-3:]} ({len(versions)} of {VERSIONS})")
    assert versions == sorted(set(versions))
    assert versions[-1] == VERSIONS
    assert len(versions) < VERSIONS / 2, f"the stalled viewer was sent {len(versions)} of {VERSIONS} versions"
