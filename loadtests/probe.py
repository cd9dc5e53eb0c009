"""A lean fan-out probe: N viewers of one room on one transport, latency per version.

    python -m loadtests.probe --serve vsync --transport sse --viewers 1000 --commands 5 --repeat 3
    python -m loadtests.probe --serve floor ...          # the floor (loadtests.floor), same client
    python -m loadtests.probe --url http://127.0.0.1:8001 ...   # a server that is already running

Latency is the viewer's receipt time minus the version's ``changed_ms``; the receipt
time is taken first, parsing happens after the run (BENCHMARKING.md). Viewers are
asyncio protocols on uvloop, split over ``--procs`` client processes. Each repeat
starts a fresh server so that its memory per viewer (RSS after the viewers connect
minus RSS before, divided by their number) is measured in a fresh process.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import http.client
import json
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from loadtests import netem

ROOT = Path(__file__).resolve().parent.parent
_VERSION = re.compile(rb'"version": ?(\d+)')
_CHANGED = re.compile(rb'"changed_ms": ?([0-9.eE+-]+)')
_SSE_EVENT = re.compile(rb"id: \d+\nevent: state\ndata: [^\n]*\n\n")
_CONTENT_LENGTH = re.compile(rb"(?i)content-length: *(\d+)")
CONNECT_BATCH = 100


# -- viewers (in the client processes) -------------------------------------------------


class Viewer(asyncio.Protocol):
    """Records (receipt time, message bytes); the first message is the state on connect."""

    def __init__(self, host: str, slug: str, ready: asyncio.Future[None]) -> None:
        self.host, self.slug, self.ready = host, slug, ready
        self.messages: list[tuple[float, bytes]] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request())

    def got(self, t_ms: float, message: bytes) -> None:
        self.messages.append((t_ms, message))
        if not self.ready.done():
            self.ready.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the first state"))

    def request(self) -> bytes:
        raise NotImplementedError


class SseViewer(Viewer):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.chunks: list[bytes] = []
        self.times: list[float] = []
        self.ends: list[int] = []
        self.size = 0

    def request(self) -> bytes:
        return f"GET /api/rooms/{self.slug}/events HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()

    def data_received(self, data: bytes) -> None:
        t_ms = time.time() * 1000
        self.chunks.append(data)
        self.times.append(t_ms)
        self.size += len(data)
        self.ends.append(self.size)
        if not self.ready.done() and b"\ndata: " in data:
            self.ready.set_result(None)

    def finish(self) -> None:
        stream = b"".join(self.chunks)
        for match in _SSE_EVENT.finditer(stream):
            index = bisect.bisect_left(self.ends, match.end())
            self.messages.append((self.times[index], match.group()))


class WsViewer(Viewer):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.buffer = b""
        self.upgraded = False

    def request(self) -> bytes:
        return (f"GET /ws/rooms/{self.slug} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n").encode()

    def data_received(self, data: bytes) -> None:
        t_ms = time.time() * 1000
        buffer = self.buffer + data
        if not self.upgraded:
            head, sep, buffer = buffer.partition(b"\r\n\r\n")
            if not sep:
                self.buffer = head
                return
            self.upgraded = True
        while len(buffer) >= 2:
            opcode, size, start = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if size == 126:
                size, start = int.from_bytes(buffer[2:4], "big"), 4
            elif size == 127:
                size, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + size:
                break
            payload, buffer = buffer[start:start + size], buffer[start + size:]
            if opcode == 0x1:
                self.got(t_ms, payload)
            elif opcode == 0x9 and self.transport:  # ping: answer with a masked pong
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
        self.buffer = buffer


def _masked_text(payload: bytes) -> bytes:
    """A client's text frame (a client must mask; a zero mask leaves the payload as it is)."""
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


class SocketIoViewer(WsViewer):
    """Socket.IO v5 over Engine.IO v4's WebSocket transport (loadtests.socketio_app), spoken directly.

    The server opens with ``0{...}``, the client connects to the namespace with ``40``, states
    arrive as ``42["state",{...}]``, and the server's Engine.IO ping ``2`` is answered ``3``.
    """

    OPEN, CONNECT, PING, PONG, EVENT = b"0", _masked_text(b"40"), b"2", _masked_text(b"3"), b"42"

    def request(self) -> bytes:
        return (f"GET /socket.io/?EIO=4&transport=websocket&room={self.slug} HTTP/1.1\r\nHost: {self.host}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n").encode()

    def got(self, t_ms: float, message: bytes) -> None:
        # Engine.IO's packet type is the first byte, Socket.IO's the second: no parsing before the run ends.
        if message.startswith(self.EVENT):
            super().got(t_ms, message)
        elif message == self.PING and self.transport:
            self.transport.write(self.PONG)
        elif message.startswith(self.OPEN) and self.transport:
            self.transport.write(self.CONNECT)


# The socketio peer row (issue 14) is served by loadtests.socketio_app: vsync's application with
# python-socketio under /socket.io/, on the same servers; the product's application knows nothing of it.
SOCKETIO = "socketio"
SOCKETIO_APP = "loadtests.socketio_app:application"
SOCKETIO_SETTINGS = "loadtests.socketio_settings"


def socketio_command(command: list[str]) -> list[str]:
    """A vsync server's command line (vsync.launcher.server_command) serving loadtests.socketio_app instead."""
    if "vsync.asgi:application" in command:  # uvicorn
        return [SOCKETIO_APP if part == "vsync.asgi:application" else part for part in command]
    return [*command, "--settings", SOCKETIO_SETTINGS]  # daphne: manage.py runserver


def split_responses(buffer: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The complete HTTP/1.1 responses (head, body) at the front of ``buffer``, and what is left of it."""
    responses = []
    while True:
        head, sep, rest = buffer.partition(b"\r\n\r\n")
        if not sep:
            return responses, buffer
        found = _CONTENT_LENGTH.search(head)
        length = int(found.group(1)) if found else 0
        if len(rest) < length:
            return responses, buffer
        responses.append((head, rest[:length]))
        buffer = rest[length:]


class LongPollViewer(Viewer):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.buffer = b""
        self.since: int | None = None

    def request(self) -> bytes:
        since = "" if self.since is None else f"&since={self.since}"
        return f"GET /api/rooms/{self.slug}/poll?timeout=55{since} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()

    def data_received(self, data: bytes) -> None:
        t_ms = time.time() * 1000
        responses, self.buffer = split_responses(self.buffer + data)
        for head, body in responses:
            if head.startswith(b"HTTP/1.1 200"):
                self.got(t_ms, body)
                self.since = int(_VERSION.search(body).group(1))
            if self.transport:
                self.transport.write(self.request())


VIEWERS = {"sse": SseViewer, "ws": WsViewer, "longpoll": LongPollViewer, "socketio": SocketIoViewer}


async def _viewers(port: int, slug: str, transport: str, count: int, stop: Any) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    viewers: list[Viewer] = []
    failed = 0
    for offset in range(0, count, CONNECT_BATCH):
        batch = []
        for _ in range(min(CONNECT_BATCH, count - offset)):
            viewer = VIEWERS[transport](f"127.0.0.1:{port}", slug, loop.create_future())
            batch.append(loop.create_connection(lambda v=viewer: v, "127.0.0.1", port))
            viewers.append(viewer)
        for result in await asyncio.gather(*batch, return_exceptions=True):
            failed += isinstance(result, Exception)
    results = await asyncio.gather(*(asyncio.wait_for(v.ready, 60) for v in viewers), return_exceptions=True)
    failed = sum(isinstance(result, Exception) for result in results)
    stop.send(("ready", len(viewers) - failed))
    await loop.run_in_executor(None, stop.recv)
    latencies: dict[int, list[float]] = {}
    for viewer in viewers:
        if isinstance(viewer, SseViewer):
            viewer.finish()
        for t_ms, message in viewer.messages:
            version = int(_VERSION.search(message).group(1))
            latencies.setdefault(version, []).append(t_ms - float(_CHANGED.search(message).group(1)))
        if viewer.transport:
            viewer.transport.close()
    return latencies


def _client_main(port: int, slug: str, transport: str, count: int, pipe: Any) -> None:
    import uvloop

    pipe.send(("results", uvloop.run(_viewers(port, slug, transport, count, pipe))))


# -- servers and the run (in the parent) ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(port: int, process: subprocess.Popen | None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            _request(port, "GET", "/api/time")
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("the server did not start")


def _request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None,
                           # Behind make serve a worker trusts loopback's proxy headers and
                           # redirects plain HTTP; elsewhere the header is ignored.
                           headers={"Content-Type": "application/json", "X-Forwarded-Proto": "https"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def start_server(serve: str, port: int, data_dir: Path, transport: str = "") -> subprocess.Popen:
    # Address limits off: every viewer comes from 127.0.0.1, far over the per-address caps.
    env = {**os.environ, "VSYNC_DATA_DIR": str(data_dir), "DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}",
           "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "vsync.settings", "VSYNC_ADDRESS_LIMITS": "off"}
    env.pop("REDIS_URL", None)
    if serve == "floor":
        command = [sys.executable, "-m", "loadtests.floor", "--port", str(port)]
    else:
        from vsync.launcher import server_command

        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                       check=True)
        command = server_command("uvicorn" if serve == "vsync-uvicorn" else "daphne", port)
        if transport == SOCKETIO:
            command = socketio_command(command)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    _wait(port, process)
    return process


@dataclass
class Round:
    viewers: int
    connected: int
    p50: float
    p99: float
    max: float
    received: int
    expected: int
    kib_per_viewer: float | None
    client_cpu: float
    server_cpu: float | None


def cpu_seconds(processes: Sequence[psutil.Process], *, children: bool = False) -> float:
    """User and system CPU seconds of these processes so far (with ``children``, their descendants' too;
    those that have gone count nothing)."""
    total = 0.0
    for process in processes:
        try:
            for each in (process, *process.children(recursive=True)) if children else (process,):
                times = each.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            pass
    return total


def one_round(args: argparse.Namespace) -> Round:
    server = None
    with tempfile.TemporaryDirectory(prefix="probe-") as data_dir:
        port = args.port or _free_port()
        if args.url is None:
            server = start_server(args.serve, port, Path(data_dir), args.transport)
        proxy = None
        try:
            shape = netem.Shape(args.rtt_ms, args.jitter_ms, args.bandwidth_kbps)
            if shape.shaped:  # viewers behind loadtests.netem; commands and memory readings go direct
                proxy, args.view_port = netem.start_process(port, shape)
            return _measure(args, port, psutil.Process(server.pid) if server else None)
        finally:
            if proxy is not None:
                proxy.kill()
                proxy.wait()
                args.view_port = None
            if server is not None:
                server.terminate()
                server.wait(timeout=20)


def _measure(args: argparse.Namespace, port: int, server: psutil.Process | None) -> Round:
    status, state = _request(port, "POST", "/api/rooms", {"name": f"probe {uuid.uuid4().hex[:8]}"})
    assert status == 201, state
    slug = state["room"]
    time.sleep(0.5)
    rss_before = server.memory_info().rss if server else None
    context = multiprocessing.get_context("spawn")
    pipes, clients = [], []
    for index in range(args.procs):
        count = args.viewers // args.procs + (index < args.viewers % args.procs)
        parent, child = context.Pipe()
        process = context.Process(target=_client_main,
                                  args=(getattr(args, "view_port", None) or port, slug, args.transport, count, child))
        process.start()
        pipes.append(parent)
        clients.append(process)
    connected = sum(pipe.recv()[1] for pipe in pipes)
    time.sleep(1.0)  # idle: let the server settle before its memory is read
    kib = (server.memory_info().rss - rss_before) / 1024 / args.viewers if server else None
    watched = [psutil.Process(process.pid) for process in clients]
    client_cpu, server_cpu, started = cpu_seconds(watched), cpu_seconds([server]) if server else 0.0, time.monotonic()
    versions = []
    for index in range(args.commands):
        status, body = _request(port, "POST", f"/api/rooms/{slug}/commands", {
            "type": "seek", "client_id": f"probe-{index}", "client_ms": time.time() * 1000, "position": index})
        assert status == 200, body
        versions.append(body["state"]["version"])
        time.sleep(args.interval)
    elapsed = time.monotonic() - started
    client_cpu = (cpu_seconds(watched) - client_cpu) / elapsed * 100
    server_cpu_pct = (cpu_seconds([server]) - server_cpu) / elapsed * 100 if server else None
    for pipe in pipes:
        pipe.send("stop")
    latencies: list[float] = []
    for pipe in pipes:
        _, per_version = pipe.recv()
        for version in versions:
            latencies += per_version.get(version, [])
    for process in clients:
        process.join(timeout=30)
    latencies.sort()
    return Round(viewers=args.viewers, connected=connected, p50=statistics.median(latencies) if latencies else -1,
                 p99=latencies[int(len(latencies) * 0.99) - 1] if latencies else -1,
                 max=latencies[-1] if latencies else -1, received=len(latencies),
                 expected=connected * len(versions), kib_per_viewer=kib, client_cpu=client_cpu,
                 server_cpu=server_cpu_pct)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f} to {max(values):.1f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fan-out latency of one command to N viewers of one room.")
    parser.add_argument("--serve", choices=["vsync", "vsync-uvicorn", "floor"], default="vsync")
    parser.add_argument("--url", help="measure a running server instead (no memory figure)")
    parser.add_argument("--transport", choices=sorted(VIEWERS), default="sse")
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--commands", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between commands")
    parser.add_argument("--procs", type=int, default=1, help="client processes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="round trip added by loadtests.netem")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="± on that round trip")
    parser.add_argument("--bandwidth-kbps", type=float, default=0.0, help="per viewer and direction (0: none)")
    args = parser.parse_args(argv)
    args.port = int(args.url.rsplit(":", 1)[1]) if args.url else None
    rounds = []
    for index in range(args.repeat):
        result = one_round(args)
        rounds.append(result)
        print(f"round {index + 1}: {result}", flush=True)
    label = args.serve if args.url is None else args.url
    kib = [r.kib_per_viewer for r in rounds if r.kib_per_viewer is not None]
    print(f"\n| server | transport | viewers | p50 ms | p99 ms | max ms | received | KiB/viewer | client CPU % "
          f"| server CPU % |\n|---|---|---|---|---|---|---|---|---|---|\n"
          f"| {label} | {args.transport} | {args.viewers} | {_spread([r.p50 for r in rounds])} "
          f"| {_spread([r.p99 for r in rounds])} | {_spread([r.max for r in rounds])} "
          f"| {sum(r.received for r in rounds)}/{sum(r.expected for r in rounds)} "
          f"| {_spread(kib) if kib else '-'} | {_spread([r.client_cpu for r in rounds])} "
          f"| {_spread([r.server_cpu or 0.0 for r in rounds])} |")


if __name__ == "__main__":
    main()
