"""The chat probe's viewers (in its client processes): one ``Seat`` per viewer, on any of the four transports.

A seat is one viewer of the room across its connections: it records every chat message and
state version it receives, (receipt ms, raw bytes, wire bytes), the receipt time taken
first and the parsing left for later where the transport allows it (BENCHMARKING.md), and
it can be dropped and reconnected the way the page does (CONTRACT v2 "chat"): SSE with
``Last-Event-ID`` (the last ``id:`` the stream carried), WebSocket with ``since`` and
``chat_after``, the polls with ``since`` / ``after``. Polling seats hold two keep-alive
connections, state and chat, as the page's two loops do; short polls wait POLL_INTERVAL_S
after each answer, as templates/static/vsync/transports.js does.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from typing import Any

from loadtests import probe

# templates/static/vsync/transports.js: POLL_INTERVAL_MS, the short poll's pause after each answer.
POLL_INTERVAL_S = 0.25
# Long polls (state and chat) ask for the longest wait the server allows, minus a margin.
WAIT_S = 55
_SSE_EVENT = re.compile(rb"(?:id: ([0-9.]+)\n)?event: (state|chat)\ndata: ([^\n]*)\n\n")
_VERSION = re.compile(rb'"version": ?(\d+)')
TRANSPORTS = ("poll", "longpoll", "sse", "ws")

Record = tuple[float, bytes, float]  # receipt ms, b"chat:" / b"state:" + JSON, wire bytes that carried it


class Seat:
    """One viewer across its connections: what it received, where it would resume."""

    def __init__(self, transport: str, port: int, slug: str, loop: asyncio.AbstractEventLoop) -> None:
        self.transport, self.port, self.slug, self.loop = transport, port, slug, loop
        self.host = f"127.0.0.1:{port}"
        self.records: list[Record] = []
        self.bytes_by_second: dict[int, int] = {}
        self.connections: list[Connection] = []
        self.drops: list[tuple[float, float]] = []  # (dropped ms, reconnected ms)
        self.ready: asyncio.Future[None] = loop.create_future()
        self.version: int | None = None  # the newest version seen (polls: tracked on receipt)
        self.chat_after = 0  # the newest chat id seen (polls: tracked on receipt)
        self.last_event_id: bytes | None = None  # SSE: the last id: the stream carried
        self._parsed = 0  # records already folded into version / chat_after (SSE, WS)

    def received(self, t_ms: float, size: int) -> None:
        second = int(t_ms // 1000)
        self.bytes_by_second[second] = self.bytes_by_second.get(second, 0) + size

    def record(self, t_ms: float, raw: bytes, wire: float) -> None:
        self.records.append((t_ms, raw, wire))
        if raw.startswith(b"state:") and not self.ready.done():
            self.ready.set_result(None)

    async def connect(self) -> None:
        """Open this seat's connections, resuming from what it has (nothing on the first connect)."""
        self.catch_up()
        kinds: dict[str, tuple[type[Connection], ...]] = {
            "poll": (ShortPollState, ShortPollChat), "longpoll": (LongPollState, LongPollChat),
            "sse": (SseStream,), "ws": (WsStream,)}
        for kind in kinds[self.transport]:
            connection = kind(self)
            self.connections.append(connection)
            await self.loop.create_connection(lambda c=connection: c, "127.0.0.1", self.port)  # type: ignore[misc]

    def close(self) -> None:
        self.catch_up()  # first: an SSE stream's chunks are parsed into records here
        for connection in self.connections:
            connection.close()
        self.connections = []

    async def drop(self, gap_s: float) -> None:
        """Cut every connection at once (no goodbye), wait ``gap_s``, reconnect and resume."""
        dropped = time.time() * 1000
        self.close()
        await asyncio.sleep(gap_s)
        self.drops.append((dropped, time.time() * 1000))
        await self.connect()

    def catch_up(self) -> None:
        """Fold the records parsed so far into the resume position (SSE and WebSocket parse late)."""
        for connection in self.connections:
            if isinstance(connection, SseStream):
                connection.flush()
        for _, raw, _ in self.records[self._parsed:]:
            if raw.startswith(b"chat:"):
                self.chat_after = max(self.chat_after, json.loads(raw[5:])["id"])
            elif raw.startswith(b"state:"):
                version = int(_VERSION.search(raw).group(1))  # type: ignore[union-attr]
                self.version = max(self.version or 0, version)
        self._parsed = len(self.records)

    def results(self) -> dict[str, Any]:
        """(id, receipt ms, sent ms, wire bytes) per chat message and per state version, in receipt order."""
        self.close()
        chat, state = [], []
        for t_ms, raw, wire in self.records:
            if raw.startswith(b"chat:"):
                message = json.loads(raw[5:])
                chat.append((message["id"], t_ms, message["ms"], wire))
            else:
                snapshot = json.loads(raw[6:])
                state.append((snapshot["version"], t_ms, snapshot["changed_ms"], wire))
        ready = self.ready.done() and not self.ready.cancelled()
        return {"chat": chat, "state": state, "drops": self.drops, "bytes_by_second": self.bytes_by_second,
                "ready": ready}


class Connection(asyncio.Protocol):
    def __init__(self, seat: Seat) -> None:
        self.seat = seat
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request())  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def request(self) -> bytes:
        raise NotImplementedError


class SseStream(Connection):
    def __init__(self, seat: Seat) -> None:
        super().__init__(seat)
        self.buffer = b""
        self.chunks: list[tuple[float, bytes]] = []

    def request(self) -> bytes:
        resume = b"" if self.seat.last_event_id is None else b"Last-Event-ID: " + self.seat.last_event_id + b"\r\n"
        return (f"GET /api/rooms/{self.seat.slug}/events HTTP/1.1\r\nHost: {self.seat.host}\r\n".encode() + resume
                + b"\r\n")

    def data_received(self, data: bytes) -> None:
        t_ms = time.time() * 1000
        self.chunks.append((t_ms, data))
        self.seat.received(t_ms, len(data))
        if not self.seat.ready.done() and b"\ndata: " in data:
            self.flush()

    def flush(self) -> None:
        """Parse what came so far: each complete event at the time of the chunk that completed it."""
        for t_ms, data in self.chunks:
            self.buffer += data
            end = 0
            for match in _SSE_EVENT.finditer(self.buffer):
                kind = b"chat:" if match.group(2) == b"chat" else b"state:"
                self.seat.record(t_ms, kind + match.group(3), match.end() - match.start())
                if match.group(1):
                    self.seat.last_event_id = match.group(1)
                end = match.end()
            self.buffer = self.buffer[end:]
        self.chunks = []


class WsStream(probe.WsViewer, Connection):
    def __init__(self, seat: Seat) -> None:
        Connection.__init__(self, seat)
        self.buffer, self.upgraded = b"", False

    def request(self) -> bytes:
        # A reconnect always says where its log is (chat_after=0 too): without it, chat from now on.
        params = [f"since={self.seat.version}" if self.seat.version else "",
                  f"chat_after={self.seat.chat_after}" if self.seat.chat_after or self.seat.drops else ""]
        query = "&".join(p for p in params if p)
        return (f"GET /ws/rooms/{self.seat.slug}{'?' + query if query else ''} HTTP/1.1\r\nHost: {self.seat.host}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n").encode()

    def data_received(self, data: bytes) -> None:
        self.seat.received(time.time() * 1000, len(data))
        super().data_received(data)

    def got(self, t_ms: float, message: bytes) -> None:
        wire = len(message) + (2 if len(message) < 126 else 4 if len(message) < 1 << 16 else 10)
        if message.startswith(b'{"type":"chat"'):
            # '{"type":"chat","message":' ... '}' (transports.encoding.ChatFrame)
            self.seat.record(t_ms, b"chat:" + message[25:-1], wire)
        elif message.startswith(b'{"type":"state","state":'):
            self.seat.record(t_ms, b"state:" + message[24:-1], wire)

    def connection_lost(self, exc: Exception | None) -> None:
        Connection.connection_lost(self, exc)


class Poll(Connection):
    """One keep-alive connection that asks again after each answer (after ``pause_s``)."""

    pause_s = 0.0

    def __init__(self, seat: Seat) -> None:
        super().__init__(seat)
        self.buffer = b""
        self.timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        t_ms = time.time() * 1000
        self.seat.received(t_ms, len(data))
        responses, self.buffer = probe.split_responses(self.buffer + data)
        for head, body in responses:
            if head.startswith(b"HTTP/1.1 200"):
                self.answer(t_ms, body, len(head) + 4 + len(body))
            if self.pause_s:
                self.timer = self.seat.loop.call_later(self.pause_s, self.again)
            else:
                self.again()

    def again(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(self.request())

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        super().close()

    def answer(self, t_ms: float, body: bytes, wire: int) -> None:
        raise NotImplementedError


class LongPollState(Poll):
    def request(self) -> bytes:
        since = "" if self.seat.version is None else f"&since={self.seat.version}"
        return (f"GET /api/rooms/{self.seat.slug}/poll?timeout={WAIT_S}{since} HTTP/1.1\r\n"
                f"Host: {self.seat.host}\r\n\r\n").encode()

    def answer(self, t_ms: float, body: bytes, wire: int) -> None:
        self.seat.record(t_ms, b"state:" + body, wire)
        self.seat.version = int(_VERSION.search(body).group(1))  # type: ignore[union-attr]


class ShortPollState(LongPollState):
    pause_s = POLL_INTERVAL_S

    def request(self) -> bytes:
        match = "" if self.seat.version is None else f'If-None-Match: "{self.seat.version}"\r\n'
        return f"GET /api/rooms/{self.seat.slug}/state HTTP/1.1\r\nHost: {self.seat.host}\r\n{match}\r\n".encode()


class LongPollChat(Poll):
    timeout_s = WAIT_S

    def request(self) -> bytes:
        return (f"GET /api/rooms/{self.seat.slug}/chat?after={self.seat.chat_after}&timeout={self.timeout_s} "
                f"HTTP/1.1\r\nHost: {self.seat.host}\r\n\r\n").encode()

    def answer(self, t_ms: float, body: bytes, wire: int) -> None:
        messages = json.loads(body)["messages"]
        for message in messages:
            self.seat.record(t_ms, b"chat:" + json.dumps(message).encode(), wire / len(messages))
            self.seat.chat_after = max(self.seat.chat_after, message["id"])


class ShortPollChat(LongPollChat):
    """``GET .../chat?after=<id>&timeout=0`` (Django's, a database read) every POLL_INTERVAL_S."""

    pause_s, timeout_s = POLL_INTERVAL_S, 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The page's two loops are not in step: start the chat loop at a random point of the interval.
        self.transport = transport  # type: ignore[assignment]
        self.timer = self.seat.loop.call_later(random.uniform(0, POLL_INTERVAL_S), self.again)


async def _seats(port: int, slug: str, transport: str, count: int, pipe: Any) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    seats = [Seat(transport, port, slug, loop) for _ in range(count)]
    for offset in range(0, count, probe.CONNECT_BATCH):
        await asyncio.gather(*(seat.connect() for seat in seats[offset:offset + probe.CONNECT_BATCH]),
                             return_exceptions=True)
    results = await asyncio.gather(*(asyncio.wait_for(seat.ready, 60) for seat in seats), return_exceptions=True)
    pipe.send(("ready", sum(not isinstance(result, BaseException) for result in results)))
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command[0] == "drop":  # ("drop", seat indexes, gap s)
            await asyncio.gather(*(seats[index].drop(command[2]) for index in command[1]), return_exceptions=True)
        elif command[0] == "settle":  # ("settle", last chat id, timeout s): wait until every seat has it
            deadline = time.monotonic() + command[2]
            while time.monotonic() < deadline:
                for seat in seats:
                    seat.catch_up()
                if all(seat.chat_after >= command[1] for seat in seats):
                    break
                await asyncio.sleep(0.2)
            pipe.send(("settled", None))
        else:
            return [seat.results() for seat in seats]


def client_main(port: int, slug: str, transport: str, count: int, pipe: Any) -> None:
    """A client process: ``count`` seats, then commands from the parent over ``pipe`` until "stop"."""
    import uvloop

    pipe.send(("results", uvloop.run(_seats(port, slug, transport, count, pipe))))
