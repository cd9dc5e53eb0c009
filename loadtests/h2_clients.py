"""The two lean clients of loadtests.h2_compare, run in its client processes, and their accounting.

HTTP/1.1 over TLS, one connection per viewer (``Http1Viewer``), and HTTP/2 with ``h2``'s state
machine, a stream per viewer on a shared connection (``Http2Browser``): asyncio protocols on
uvloop that take the receipt time before anything else. Per connection they count what the
kernel saw on the socket (tcp_info) and the decrypted bytes; ``client_main`` runs one process's
viewers and answers the parent's pipe (ready, marked, results).
"""

from __future__ import annotations

import asyncio
import bisect
import re
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection as Pipe
from typing import Any, cast

import h2.config
import h2.connection
import h2.events
import uvloop

from loadtests.probe import split_responses

TRANSPORTS = ("sse", "longpoll")
PROTOCOLS = ("http/1.1", "h2")  # the ALPN ids, offered one at a time
_VERSION = re.compile(rb'"version": ?(\d+)')
_CHANGED = re.compile(rb'"changed_ms": ?([0-9.eE+-]+)')
_SSE_EVENT = re.compile(rb"id: [^\n]*\nevent: state\ndata: [^\n]*\n\n")
# Above the run: a poll answered 204 would only add a request, but none should be.
LONGPOLL_TIMEOUT_S = 55
CONNECT_BATCH = 100
FIRST_STATE_TIMEOUT_S = 30.0
# struct tcp_info (linux/tcp.h): u64 tcpi_bytes_acked at 120, tcpi_bytes_received at 128 (Linux 4.2+).
# The test checks that wire bytes are at least the decrypted ones, so a wrong offset fails it.
_TCP_BYTES = struct.Struct("=QQ")
_TCP_BYTES_OFFSET = 120


def tcp_bytes(sock: Any) -> tuple[int, int]:
    """(received, sent and acknowledged) payload bytes of one TCP socket, from the kernel."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_BYTES_OFFSET + _TCP_BYTES.size)
    sent, received = _TCP_BYTES.unpack_from(info, _TCP_BYTES_OFFSET)
    return int(received), int(sent)


class ViewerLog:
    """One viewer's response bytes with their receipt times (ms), whatever the protocol."""

    def __init__(self, transport: str, slug: str, first: asyncio.Future[None]) -> None:
        self.transport, self.slug, self.first = transport, slug, first
        self.chunks: list[bytes] = []
        self.times: list[float] = []
        self.ends: list[int] = []
        self.size = 0
        self.bodies: list[tuple[float, bytes]] = []
        self.since: int | None = None

    def path(self) -> str:
        if self.transport == "sse":
            return f"/api/rooms/{self.slug}/events"
        since = "" if self.since is None else f"&since={self.since}"
        return f"/api/rooms/{self.slug}/poll?timeout={LONGPOLL_TIMEOUT_S}{since}"

    def sse_data(self, t_ms: float, data: bytes) -> None:
        self.chunks.append(data)
        self.times.append(t_ms)
        self.size += len(data)
        self.ends.append(self.size)
        if not self.first.done() and b"data: " in data:
            self.first.set_result(None)

    def poll_body(self, t_ms: float, body: bytes) -> None:
        self.bodies.append((t_ms, body))
        found = _VERSION.search(body)  # the next poll's since: the one parse that cannot wait
        self.since = int(found.group(1)) if found else self.since
        if not self.first.done():
            self.first.set_result(None)

    def latencies(self) -> dict[int, float]:
        """Version -> receipt time minus its changed_ms, for the first receipt of each version."""
        if self.transport == "sse":
            stream = b"".join(self.chunks)
            messages = [(self.times[bisect.bisect_left(self.ends, m.end())], m.group())
                        for m in _SSE_EVENT.finditer(stream)]
        else:
            messages = self.bodies
        out: dict[int, float] = {}
        for t_ms, message in messages:
            version, changed = _VERSION.search(message), _CHANGED.search(message)
            if version and changed:
                out.setdefault(int(version.group(1)), t_ms - float(changed.group(1)))
        return out


class Dechunker:
    """HTTP/1.1's chunked coding undone incrementally: the body bytes in each read."""

    def __init__(self) -> None:
        self.buffer, self.left = b"", 0

    def feed(self, data: bytes) -> bytes:
        buffer, out = self.buffer + data, []
        while buffer:
            if self.left:
                out.append(buffer[:self.left])
                self.left -= len(out[-1])
                buffer = buffer[len(out[-1]):]
                continue
            line, sep, rest = buffer.partition(b"\r\n")
            if not sep:
                break
            buffer = rest
            if line:  # an empty line is the CRLF that ends a chunk's data
                self.left = int(line.split(b";")[0], 16)
        self.buffer = buffer
        return b"".join(out)


class TlsConnection(asyncio.Protocol):
    """One client TLS connection: what it negotiated, its decrypted bytes, its errors."""

    def __init__(self, authority: str) -> None:
        self.authority = authority
        self.transport: asyncio.Transport | None = None
        self.alpn, self.tls, self.http_version = "", "", ""
        self.decrypted = 0
        self.errors = 0
        self.wire = (0, 0)
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TLS transport does not subclass it
        tls = self.transport.get_extra_info("ssl_object")
        self.alpn, self.tls = tls.selected_alpn_protocol() or "", tls.version() or ""

    def connection_lost(self, exc: Exception | None) -> None:
        self.errors += not self.closing  # nothing may end a viewer's connection during the run

    def counters(self) -> tuple[int, int, int]:
        """(wire bytes in, wire bytes out, decrypted bytes in) so far (a closed socket keeps its last count)."""
        sock = self.transport.get_extra_info("socket") if self.transport and not self.transport.is_closing() else None
        if sock is not None:
            self.wire = tcp_bytes(sock)
        return (*self.wire, self.decrypted)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def status(self, head: bytes) -> None:
        """The HTTP version of a status line (``HTTP/2 200`` for h2's :status); not 200 or 204 is an error."""
        version, _, rest = head.partition(b" ")
        self.http_version = version.decode(errors="replace")
        if rest[:3] not in (b"200", b"204"):
            self.errors += 1


class Http1Viewer(TlsConnection):
    """One viewer on its own connection; long polls ask again on the same connection."""

    def __init__(self, authority: str, log: ViewerLog) -> None:
        super().__init__(authority)
        self.log, self.buffer = log, b""
        self.dechunk: Dechunker | None = None
        self.streaming = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.ask()

    def ask(self) -> None:
        assert self.transport is not None
        self.transport.write(f"GET {self.log.path()} HTTP/1.1\r\nHost: {self.authority}\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        t_ms = time.time() * 1000
        self.decrypted += len(data)
        if self.log.transport == "longpoll":
            responses, self.buffer = split_responses(self.buffer + data)
            for head, body in responses:
                self.status(head)
                if head.startswith(b"HTTP/1.1 200"):
                    self.log.poll_body(t_ms, body)
                self.ask()
        elif self.streaming:
            self.log.sse_data(t_ms, self.dechunk.feed(data) if self.dechunk else data)
        else:
            head, sep, rest = (self.buffer + data).partition(b"\r\n\r\n")
            self.buffer = b"" if sep else head
            if sep:
                self.status(head)
                self.streaming = True
                self.dechunk = Dechunker() if b"chunked" in head.lower() else None
                self.log.sse_data(t_ms, self.dechunk.feed(rest) if self.dechunk else rest)


class Http2Browser(TlsConnection):
    """One browser: one connection, a stream per viewer; a long poll's next request is a new stream."""

    def __init__(self, authority: str, logs: list[ViewerLog]) -> None:
        super().__init__(authority)
        self.logs = logs
        # Header validation off: nginx is the peer under test, not h2's checks (they cost the client most per stream).
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False, normalize_outbound_headers=False,
            validate_inbound_headers=False, normalize_inbound_headers=False))
        self.streams: dict[int, ViewerLog] = {}
        self.bodies: dict[int, list[bytes]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.h2.initiate_connection()
        for log in self.logs:
            self.ask(log)
        self.flush()

    def ask(self, log: ViewerLog) -> None:
        stream_id = self.h2.get_next_available_stream_id()
        self.streams[stream_id], self.bodies[stream_id] = log, []
        self.h2.send_headers(stream_id, [(b":method", b"GET"), (b":scheme", b"https"),
                                         (b":authority", self.authority.encode()), (b":path", log.path().encode())],
                             end_stream=True)

    def flush(self) -> None:
        if self.transport is not None:
            self.transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        t_ms = time.time() * 1000
        self.decrypted += len(data)
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                self.status(b"HTTP/2 " + dict(event.headers or []).get(b":status", b"?"))
            elif isinstance(event, h2.events.DataReceived) and event.stream_id in self.streams:
                # As a browser does: hand the window back as the data is consumed (h2 batches the updates).
                self.h2.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
                log = self.streams[event.stream_id]
                if log.transport == "sse":
                    log.sse_data(t_ms, event.data or b"")
                else:
                    self.bodies[event.stream_id].append(event.data or b"")
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id in self.streams:
                log, body = self.streams.pop(event.stream_id), b"".join(self.bodies.pop(event.stream_id))
                if log.transport == "sse":
                    self.errors += 1  # an event stream must not end during the run
                else:
                    if body:
                        log.poll_body(t_ms, body)
                    self.ask(log)
            elif isinstance(event, h2.events.StreamReset | h2.events.ConnectionTerminated):
                self.errors += 1
        self.flush()


@dataclass(frozen=True)
class ClientSpec:
    port: int
    authority: str
    slug: str
    transport: str
    protocol: str
    viewers: int
    streams_per_connection: int


def tls_context(protocol: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # make serve's self-signed certificate
    context.set_alpn_protocols([protocol])
    return context


async def _viewers(spec: ClientSpec, pipe: Pipe) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    logs = [ViewerLog(spec.transport, spec.slug, loop.create_future()) for _ in range(spec.viewers)]
    factories: list[Callable[[], TlsConnection]]
    if spec.protocol == "h2":
        k = spec.streams_per_connection
        factories = [partial(Http2Browser, spec.authority, logs[i:i + k]) for i in range(0, len(logs), k)]
    else:
        factories = [partial(Http1Viewer, spec.authority, log) for log in logs]
    context, connections, failed = tls_context(spec.protocol), [], 0
    for offset in range(0, len(factories), CONNECT_BATCH):
        batch = [loop.create_connection(factory, "127.0.0.1", spec.port, ssl=context, server_hostname="localhost")
                 for factory in factories[offset:offset + CONNECT_BATCH]]
        for result in await asyncio.gather(*batch, return_exceptions=True):
            if isinstance(result, BaseException):
                failed += 1
            else:
                connections.append(result[1])
    firsts = await asyncio.gather(*(asyncio.wait_for(log.first, FIRST_STATE_TIMEOUT_S) for log in logs),
                                  return_exceptions=True)
    pipe.send(("ready", sum(not isinstance(first, BaseException) for first in firsts)))
    await loop.run_in_executor(None, pipe.recv)  # the window starts
    marks = [connection.counters() for connection in connections]
    pipe.send(("marked", None))
    await loop.run_in_executor(None, pipe.recv)  # the window ends
    ends = [connection.counters() for connection in connections]
    for connection in connections:
        connection.close()
    return {"latencies": [log.latencies() for log in logs], "failed_connections": failed,
            "connections": [(c.alpn, c.tls, c.http_version) for c in connections],
            "errors": sum(c.errors for c in connections),
            "setup_wire_in": sum(mark[0] for mark in marks),
            "window": [sum(end[i] - mark[i] for mark, end in zip(marks, ends, strict=True)) for i in range(3)]}


def client_main(spec: ClientSpec, pipe: Pipe) -> None:
    """One client process: its viewers on uvloop, their results sent on ``pipe`` at the end."""
    pipe.send(("results", uvloop.run(_viewers(spec, pipe))))
