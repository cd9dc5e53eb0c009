"""daphne (Twisted) with bounded request bodies and read deadlines: what ``manage.py runserver`` serves.

Three things stock daphne 4.2 on Twisted 26 does that let one client take the server:

- ``twisted.web.http.Request.requestReceived`` parses every form-encoded or multipart
  POST body in memory (``parse_qs`` / ``_getMultiPartArgs`` over ``content.read()``)
  before daphne runs, 11-17x the body, on any URL. ``GuardedRequest`` turns that off
  (``_parsePOSTFormSubmission``, an argument of ``Request.__init__``): Django parses.
- Twisted stores a body of any size (a temporary file) and daphne then queues all of
  it to the application at once (``WebRequest.process``), so the whole body sits in
  memory. ``GuardedRequest`` refuses a body over its route's limit (vsync.http_guard)
  with 413 as soon as Content-Length or the chunks say so, and ``GuardedServer`` hands
  the stored body to the application one chunk per ``receive()``.
- Twisted's only read timeout is an idle one that every byte restarts. Headers must
  arrive within HEADER_TIMEOUT_S, and a body at BODY_MIN_BYTES_PER_S, or the
  connection is closed (408).

What this reads of Twisted's and daphne's internals (``HTTPChannel._command``/``_path``
during headers, ``HTTPChannel.requests``, ``WebRequest.process``' use of ``content``)
is pinned by tests/hardening/test_daphne_guard.py, which fail the day it changes.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import IO, Any

from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.server import Server
from twisted.internet import reactor

from rooms.commands import MAX_BODY_BYTES
from vsync import http_guard

logger = logging.getLogger(__name__)

BODY_CHUNK_BYTES = 64 * 1024

# Twisted types its reactor through zope interfaces, which mypy reads without the zope
# plugin as if callLater's first parameter were the callable: the reactor, untyped.
_clock: Any = reactor


class Deadlines:
    """Deadlines that one reactor timer checks every ``TICK_S``, instead of a reactor timer each.

    Every request armed a Twisted ``callLater`` for its headers, and its connection one more for
    the wait after it: at 1,000 long pollers (2,000 requests a second) ``callLater`` alone was 5 % of
    daphne's samples (py-spy), and the reactor's timer handling another 4.5 % (with daphne's own). Here a
    deadline is a dict entry, and it fires up to ``TICK_S`` late. An armed entry keeps its
    ``expire`` (and so its owner) alive, so the owner's ``id`` cannot be reused while it is armed.
    """

    TICK_S = 0.5

    def __init__(self) -> None:
        self._due: dict[int, tuple[float, Callable[[], None]]] = {}
        self._ticking = False

    def arm(self, owner: object, seconds: float, expire: Callable[[], None]) -> None:
        self._due[id(owner)] = (time.monotonic() + seconds, expire)
        if not self._ticking:
            self._ticking = True
            _clock.callLater(self.TICK_S, self._tick)

    def disarm(self, owner: object) -> None:
        self._due.pop(id(owner), None)

    def _tick(self) -> None:
        now = time.monotonic()
        for key in [key for key, (at, _) in self._due.items() if at <= now]:
            _, expire = self._due.pop(key)
            try:
                expire()
            except Exception:
                logger.exception("a read deadline failed")
        if self._due:
            _clock.callLater(self.TICK_S, self._tick)
        else:
            self._ticking = False


deadlines = Deadlines()


def _raw_response(status: str, body: bytes) -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\nX-Content-Type-Options: nosniff\r\n\r\n").encode() + body


class GuardedRequest(WebRequest):
    """daphne's request without Twisted's in-memory form parsing, with a body limit and read deadlines."""

    content: IO[bytes]  # Twisted's request body (left unannotated there)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parsePOSTFormSubmission = False
        self.vsync_body: IO[bytes] | None = None
        self._refused = False
        self._limit = MAX_BODY_BYTES
        self._received = 0
        self._window_start = 0
        # The request line has arrived; the connection's own deadline covered the wait for it.
        deadlines.disarm(self.channel)
        self._arm(http_guard.HEADER_TIMEOUT_S, self._headers_late)

    # Twisted: all headers are in; ``length`` is Content-Length, or None when chunked.
    def gotLength(self, length: int | None) -> None:
        method = getattr(self.channel, "_command", b"POST").decode("latin-1")
        path = getattr(self.channel, "_path", b"").split(b"?", 1)[0].decode("latin-1")
        self._limit = http_guard.body_limit(method, path)
        if length is not None and length > self._limit:
            self.refuse("413 Content Too Large", http_guard.too_large_body(self._limit))
            return
        super().gotLength(length)
        if length == 0:
            self._disarm()
        else:
            self._window_start = 0
            self._arm(http_guard.BODY_WINDOW_S, self._body_window_over)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self._limit:
            self.refuse("413 Content Too Large", http_guard.too_large_body(self._limit))
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self._disarm()
        if self._refused:
            return  # bytes that came in the same read as the refusal; the connection is closing
        super().requestReceived(command, path, version)

    def process(self) -> Any:
        # Keep the stored body for GuardedServer's receive(); daphne's own loop then queues
        # one empty chunk, which the BodyQueue drops. WebSocket upgrades re-inject it as is.
        upgrade = (self.requestHeaders.getRawHeaders(b"Upgrade") or [b""])[0]
        if upgrade.lower() != b"websocket":
            self.vsync_body, self.content = self.content, io.BytesIO()
            self.vsync_body.seek(0)
        return super().process()

    def connectionLost(self, reason: Any) -> None:
        self._disarm()
        super().connectionLost(reason)
        self._close_body()

    def finish(self) -> Any:
        self._close_body()
        return super().finish()

    def refuse(self, status: str, body: bytes) -> None:
        """Answer ``status`` outside daphne and Twisted's response machinery, and close."""
        self._refused = True
        self._disarm()
        # Twisted would otherwise answer "100 Continue" right after our refusal.
        self.requestHeaders.removeHeader(b"Expect")
        transport = self.channel.transport if self.channel is not None else None
        if transport is not None:
            transport.write(_raw_response(status, body))
            transport.loseConnection()

    def _headers_late(self) -> None:
        self.refuse("408 Request Timeout", b'{"error": "the request headers took too long"}')

    def _body_window_over(self) -> None:
        if self._received - self._window_start < http_guard.BODY_MIN_BYTES_PER_S * http_guard.BODY_WINDOW_S:
            self.refuse("408 Request Timeout", b'{"error": "the request body arrived too slowly"}')
            return
        self._window_start = self._received
        self._arm(http_guard.BODY_WINDOW_S, self._body_window_over)

    def _arm(self, seconds: float, expire: Callable[[], None]) -> None:
        if seconds > 0:
            deadlines.arm(self, seconds, expire)
        else:
            deadlines.disarm(self)

    def _disarm(self) -> None:
        deadlines.disarm(self)

    def _close_body(self) -> None:
        if self.vsync_body is not None:
            self.vsync_body.close()
            self.vsync_body = None


def _connection_deadline(channel: Any) -> None:
    """The wait for a request line: from the connection, or from the end of the previous response."""
    if http_guard.HEADER_TIMEOUT_S > 0:
        deadlines.arm(channel, http_guard.HEADER_TIMEOUT_S, partial(_idle_too_long, channel))


def _idle_too_long(channel: Any) -> None:
    # Only a connection with no request in progress: a response being written (SSE, a long
    # poll) has all its request and is not waiting for the client.
    if not channel.requests and getattr(channel.transport, "connected", False):
        channel.transport.loseConnection()


class BodyQueue(asyncio.Queue[dict[str, Any]]):
    """The application's input queue, reading the stored body one chunk per ``get()``."""

    def __init__(self, body: IO[bytes] | None) -> None:
        super().__init__()
        self.body = body

    async def get(self) -> Any:
        if self.body is not None and not self.body.closed:
            chunk = self.body.read(BODY_CHUNK_BYTES)
            more = len(chunk) == BODY_CHUNK_BYTES
            if not more:
                self.body = None
            return {"type": "http.request", "body": chunk, "more_body": more}
        return await super().get()

    def put_nowait(self, message: Any) -> None:
        if self.body is not None and message.get("type") == "http.request":
            return  # daphne's loop over the (emptied) content: the body is served from ``body``
        if message.get("type") == "http.disconnect":
            self.body = None
        super().put_nowait(message)


class GuardedHTTPFactory(HTTPFactory):
    def log(self, request: Any) -> None:
        """Nothing: daphne writes its own access log (``Server.log_action``). Twisted's formatted a
        combined-format line per request into Twisted's legacy log, which nothing here reads
        (py-spy: 3 to 4 % of daphne's samples at 1,000 long pollers)."""

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = GuardedRequest
        # Twisted wraps the HTTPChannel (for HTTP/2 negotiation); requests see the channel itself.
        _connection_deadline(getattr(protocol, "_channel", protocol))
        return protocol


class GuardedServer(Server):
    """daphne's Server with GuardedRequest and lazily fed bodies."""

    # daphne's run() assigns a plain HTTPFactory; this is where the guarded one goes in.
    @property
    def http_factory(self) -> HTTPFactory:
        return self._guarded_factory

    @http_factory.setter
    def http_factory(self, factory: HTTPFactory) -> None:
        self._guarded_factory = GuardedHTTPFactory(self)

    def protocol_connected(self, protocol: Any) -> None:
        super().protocol_connected(protocol)
        if isinstance(protocol, GuardedRequest):
            # When this request is answered, the connection waits for the next one under a deadline.
            channel = protocol.channel
            protocol.notifyFinish().addBoth(lambda _: _connection_deadline(channel))

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> asyncio.Queue[dict[str, Any]] | None:
        # daphne's create_application, with the input queue that feeds the body lazily.
        assert "application_instance" not in self.connections[protocol]
        input_queue = BodyQueue(getattr(protocol, "vsync_body", None))
        scope.setdefault("asgi", {"version": "3.0"})
        application_instance = self.application(scope=scope, receive=input_queue.get,
                                                send=partial(self.handle_reply, protocol))
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            application_instance, loop=asyncio.get_event_loop())
        return input_queue

