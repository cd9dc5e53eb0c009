"""The floor: a minimal server that speaks vsync's wire and does nothing else.

Every transport of the contract (short poll, long poll, SSE, WebSocket), and the
lab's socketio row (Engine.IO's WebSocket framing), on one asyncio (uvloop) process.
A command makes a new version whose frames are encoded once and written to every
viewer's socket in one tight loop, so the latency that viewers measure against it is
what the machine and the load generator cost, the reference that BENCHMARKING.md asks
for beside every figure.

    python -m loadtests.floor --port 8300
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import re
import resource
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_ROUTE = re.compile(r"^/api/rooms/(?P<slug>[a-z0-9-]{1,64})/(?P<kind>state|poll|events|commands)$")
_WS_ROUTE = re.compile(r"^/ws/rooms/(?P<slug>[a-z0-9-]{1,64})$")
# The lab's socketio row (loadtests.socketio_app): Engine.IO's open packet and Socket.IO's connect,
# then each version as python-socketio frames it (compact JSON in ``42["state",...]``); no pings.
_SIO_OPEN = b'0{"sid":"floor","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
_SIO_CONNECTED = b'40{"sid":"floor"}'
LONG_POLL_TIMEOUT_S = 25.0


def _http(status: str, body: bytes = b"", content_type: bytes = b"application/json", extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: " + content_type + b"\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\ncache-control: no-cache\r\n" + extra + b"\r\n" + body)


def _ws_frame(payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        return bytes([0x81, size]) + payload
    if size < 65536:
        return bytes([0x81, 126]) + size.to_bytes(2, "big") + payload
    return bytes([0x81, 127]) + size.to_bytes(8, "big") + payload


class Room:
    """One room's newest version and its pre-encoded frames, and the viewers waiting for the next."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.sse: set[asyncio.Transport] = set()
        self.ws: set[asyncio.Transport] = set()
        self.sio: set[asyncio.Transport] = set()
        self.pollers: dict[asyncio.Transport, int] = {}
        now = time.time() * 1000
        self.state: dict[str, Any] = {
            "room": slug, "version": 0, "playing": False, "position": 0.0, "anchor_ms": now, "rate": 1.0,
            "media": {"url": "/media/demo.webm", "title": "Demo", "duration": 60.0, "source": "demo"},
            "changed_by": None, "changed_ms": now, "client_ms": 0.0}
        self.advance(None, 0.0, 0.0)

    def advance(self, client_id: str | None, client_ms: float, position: float) -> None:
        now = time.time() * 1000
        self.state = {**self.state, "version": self.state["version"] + 1, "position": position, "anchor_ms": now,
                      "changed_by": client_id, "changed_ms": now, "client_ms": client_ms}
        body = json.dumps(self.state).encode()
        version = self.state["version"]
        self.body = body
        self.sse_frame = b"id: %d\nevent: state\ndata: %s\n\n" % (version, body)
        self.ws_frame = _ws_frame(b'{"type":"state","state":' + body + b"}")
        self.sio_frame = _ws_frame(b'42["state",' + json.dumps(self.state, separators=(",", ":")).encode() + b"]")
        self.poll_response = _http("200 OK", body, extra=b'etag: "%d"\r\n' % version)

    def publish(self) -> None:
        for transport in self.sse:
            transport.write(self.sse_frame)
        for transport in self.ws:
            transport.write(self.ws_frame)
        for transport in self.sio:
            transport.write(self.sio_frame)
        version = self.state["version"]
        waiting = [transport for transport, since in self.pollers.items() if version > since]
        for transport in waiting:
            del self.pollers[transport]
            transport.write(self.poll_response)


class Floor:
    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}

    def room(self, slug: str) -> Room:
        if slug not in self.rooms:
            self.rooms[slug] = Room(slug)
        return self.rooms[slug]


class Connection(asyncio.Protocol):
    def __init__(self, floor: Floor) -> None:
        self.floor = floor
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.streaming: Room | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        for room in self.floor.rooms.values():
            room.sse.discard(self.transport)
            room.ws.discard(self.transport)
            room.sio.discard(self.transport)
            room.pollers.pop(self.transport, None)
        if self.timer:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        if self.streaming is not None:
            return  # WebSocket and SSE viewers: whatever they send is ignored
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            length = int(headers.get("content-length", "0"))
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.request(method, target, headers, rest[:length])

    def request(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        url = urlsplit(target)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        transport = self.transport
        assert transport is not None
        if url.path == "/api/time":
            transport.write(_http("200 OK", json.dumps({"server_ms": time.time() * 1000}).encode()))
            return
        if url.path == "/api/rooms" and method == "POST":
            name = json.loads(body or b"{}").get("name", "room")
            slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:64] or "room"
            transport.write(_http("201 Created", self.floor.room(slug).body))
            return
        ws = _WS_ROUTE.match(url.path)
        sio = url.path == "/socket.io/" and query.get("transport") == "websocket"
        if (ws or sio) and headers.get("upgrade", "").lower() == "websocket":
            accept = base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode() + WS_GUID).digest())
            transport.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
                            b"sec-websocket-accept: " + accept + b"\r\n\r\n")
            if ws:
                room = self.streaming = self.floor.room(ws["slug"])
                transport.write(room.ws_frame)
                room.ws.add(transport)
            else:  # what the client sends (its connect, its pongs) is ignored, as on every stream here
                room = self.streaming = self.floor.room(query.get("room", "room"))
                transport.write(_ws_frame(_SIO_OPEN) + _ws_frame(_SIO_CONNECTED) + room.sio_frame)
                room.sio.add(transport)
            return
        match = _ROUTE.match(url.path)
        if not match:
            transport.write(_http("404 Not Found", b'{"error": "not here"}'))
            return
        room = self.floor.room(match["slug"])
        kind = match["kind"]
        if kind == "commands":
            command = json.loads(body)
            room.advance(command.get("client_id"), command.get("client_ms", 0.0), command.get("position", 0.0))
            room.publish()
            transport.write(_http("200 OK", b'{"accepted": true, "state": ' + room.body + b"}"))
        elif kind == "state":
            transport.write(room.poll_response)
        elif kind == "events":
            self.streaming = room
            transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                            b"x-accel-buffering: no\r\n\r\nretry: 2000\n\n")
            if str(room.state["version"]) != headers.get("last-event-id", query.get("last_event_id")):
                transport.write(room.sse_frame)
            room.sse.add(transport)
        elif kind == "poll":
            since = int(query.get("since", "-1"))
            if room.state["version"] > since:
                transport.write(room.poll_response)
            else:
                room.pollers[transport] = since
                if self.timer:
                    self.timer.cancel()
                timeout = min(float(query.get("timeout", LONG_POLL_TIMEOUT_S)), 60.0)
                self.timer = asyncio.get_running_loop().call_later(timeout, self.poll_timeout, room)

    def poll_timeout(self, room: Room) -> None:
        if room.pollers.pop(self.transport, None) is not None and self.transport:
            self.transport.write(_http("204 No Content"))


async def serve(port: int, host: str = "127.0.0.1") -> None:
    floor = Floor()
    server = await asyncio.get_running_loop().create_server(lambda: Connection(floor), host, port, backlog=4096)
    async with server:
        await server.serve_forever()


# One process holds every viewer of the run (20,000 in the scale-out sweep): more descriptors than
# the usual 20,000 hard limit. Root may raise the hard limit; anyone may raise the soft one to it.
OPEN_FILES = 65536


def raise_open_files_limit(wanted: int = OPEN_FILES) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in ((wanted, max(hard, wanted)), (min(wanted, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            return limit[0]
        except (ValueError, OSError):
            continue
    return soft


def main(argv: list[str] | None = None) -> None:
    raise_open_files_limit()
    parser = argparse.ArgumentParser(description="The floor: vsync's wire, nothing else.")
    parser.add_argument("--port", type=int, default=8300)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(serve(args.port, args.host))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
