"""A viewer that stops reading costs the server at most one pending snapshot."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.servers import LiveServer, free_port, migrate, server_env
from tests.transports.clients import create_room
from transports import cluster
from transports.encoding import Snapshot
from transports.mailbox import WS, Stream

VERSIONS = 1000
MAX_GROWTH_BYTES = 4 * 1024 * 1024


def test_a_stream_never_writes_an_older_version_after_a_newer() -> None:
    async def scenario() -> list[int]:
        written: list[int] = []

        async def send(message: dict) -> None:
            written.append(json.loads(message["text"])["state"]["version"])

        stream = Stream("demo", send, mode=WS, known_version=1, newest=lambda: None)
        for version in (1, 3, 2, 5, 4, 5, 6):
            stream.push(Snapshot(room="demo", version=version, json_text=f'{{"version": {version}}}'))
        return written

    assert asyncio.run(scenario()) == [3, 5, 6]


@pytest.fixture(params=["daphne", "uvicorn"])
def fresh_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    env = server_env(tmp_path)
    migrate(env)
    port = free_port()
    command = cluster.server_command("uvicorn", port) if request.param == "uvicorn" else None
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
        stream = Stream("demo", send, mode=WS, known_version=None, newest=lambda: newest[-1])
        for version in range(1, VERSIONS + 1):
            newest.append(Snapshot(room="demo", version=version, json_text=f'{{"version": {version}}}'))
            stream.push(newest[-1])
        assert written == [1] and stream.busy
        drained.set()
        await asyncio.sleep(0.01)
        return written

    assert asyncio.run(scenario()) == [1, VERSIONS]
