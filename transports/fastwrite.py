"""Daphne's fast path: the hub writes a version's pre-built bytes straight to the socket.

Under daphne an ASGI ``send`` costs a coroutine, autobahn's framing (or twisted.web's
chunking) and a Twisted write that waits for the next reactor turn, per connection per
version; at 1,000 viewers that put daphne at 3 to 4 times the floor's p99 (README). For
a connection that daphne holds open and idle, the frame every viewer gets is the same
bytes, built once (``Snapshot.ws_frame``, ``Snapshot.sse_chunk``), and the kernel can
take them at once. ``writer_for`` returns such a writer when ``send`` is daphne's, and
``None`` otherwise (uvicorn's sends are already cheap and flow-controlled).

A writer answers UNAVAILABLE when it cannot take the frame (the connection is closing,
autobahn is mid-message, no plain TCP socket under it): the caller then uses the
ordinary ``send``. What the fast path writes is exactly what the ordinary path would
have written, so the two can alternate on one connection. It answers BACKED_UP when
Twisted still holds bytes for the connection, i.e. the viewer is not reading: the frame
is not queued behind them, and the caller waits for the queue to drain and then writes
the newest version. So under daphne too a stalled viewer costs at most what is already
in flight, and gets the newest version next.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from transports.encoding import Snapshot, SocketFrame, SseFrame

logger = logging.getLogger(__name__)
_warned = False

# What a writer did with a frame.
WRITTEN = "written"
BACKED_UP = "backed-up"  # Twisted still holds bytes for this viewer: it is not reading
UNAVAILABLE = "unavailable"  # use the ordinary send


class DaphneWriter:
    """Writes one daphne connection's frames itself; see the module docstring."""

    __slots__ = ("mode", "protocol", "server")

    def __init__(self, server: Any, protocol: Any, mode: str) -> None:
        self.server, self.protocol, self.mode = server, protocol, mode

    @property
    def transport(self) -> Any:
        # twisted.web drops a request's channel when the client goes: then there is none.
        owner = self.protocol if self.mode == "ws" else getattr(self.protocol, "channel", None)
        return getattr(owner, "transport", None)

    def write(self, snapshot: Snapshot | SseFrame | SocketFrame) -> str:
        # A state or a chat message: both are built once and carry the same attributes.
        protocol = self.protocol
        connection = self.server.connections.get(protocol)
        if connection is None or connection.get("disconnected"):
            return UNAVAILABLE
        if self.mode == "ws":
            if protocol.state != protocol.STATE_OPEN or protocol.send_state != protocol.SEND_STATE_GROUND:
                return UNAVAILABLE
            assert not isinstance(snapshot, SseFrame)  # a WebSocket is handed only its own frames
            data = snapshot.ws_frame
        else:
            # twisted.web writes the head with the first body bytes; after that a body write
            # is the body, chunked on HTTP/1.1.
            if (protocol.finished or protocol._disconnected or not protocol.startedWriting
                    or protocol.method == b"HEAD"):
                return UNAVAILABLE
            assert not isinstance(snapshot, SocketFrame)  # an SSE stream is handed only its own events
            body = snapshot.sse_message["body"]
            data = snapshot.sse_chunk if protocol.chunked else body
        outcome = _send_now(self.transport, data)
        if outcome == WRITTEN and self.mode == "sse":
            protocol.sentLength += len(body)
        return outcome

    def backed_up(self) -> bool:
        transport = self.transport
        return _usable(transport) and _queued(transport)


def writer_for(send: Any, mode: str) -> DaphneWriter | None:
    server = getattr(getattr(send, "func", None), "__self__", None)
    if not isinstance(send, partial) or not _is(server, "daphne.server.Server") or len(send.args) != 1:
        return None
    protocol = send.args[0]
    if not _is(protocol, "daphne.ws_protocol.WebSocketProtocol" if mode == "ws" else "daphne.http_protocol.WebRequest"):
        return None
    writer = DaphneWriter(server, protocol, mode)
    # These are daphne's, autobahn's and Twisted's attributes, not their public API: if a
    # release changes them, the ordinary send is used rather than a guess.
    needed = _WS_ATTRIBUTES if mode == "ws" else _SSE_ATTRIBUTES
    transport = writer.transport
    if (hasattr(server, "connections") and all(hasattr(protocol, name) for name in needed)
            and transport is not None and all(hasattr(transport, name) for name in _TCP_ATTRIBUTES)):
        return writer
    _warn_once(f"{type(protocol).__name__} over {type(transport).__name__}")
    return None


def _is(thing: Any, qualified_name: str) -> bool:
    """``isinstance`` by name, subclasses included (vsync.daphne_guard's), without importing daphne here:
    importing daphne.server installs Twisted's reactor, which a uvicorn process must not do."""
    return any(f"{cls.__module__}.{cls.__qualname__}" == qualified_name for cls in type(thing).__mro__)


def _warn_once(what: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        logger.warning("daphne fast path unavailable for %s: every frame goes through the ordinary send "
                       "(slower fan-out; stalled viewers buffered by Twisted)", what)


_WS_ATTRIBUTES = ("state", "STATE_OPEN", "send_state", "SEND_STATE_GROUND", "transport")
_SSE_ATTRIBUTES = ("finished", "_disconnected", "startedWriting", "method", "chunked", "sentLength", "channel")
_TCP_ATTRIBUTES = ("socket", "connected", "disconnecting", "_writeDisconnected", "dataBuffer", "offset",
                   "_tempDataBuffer", "write")


def _usable(transport: Any) -> bool:
    return (getattr(transport, "socket", None) is not None and getattr(transport, "connected", False)
            and not transport.disconnecting and not transport._writeDisconnected)


def _queued(transport: Any) -> bool:
    return len(transport.dataBuffer) - transport.offset > 0 or bool(transport._tempDataBuffer)


def _send_now(transport: Any, data: bytes) -> str:
    """Send on the socket now unless Twisted already holds bytes for it; Twisted keeps any rest."""
    if not _usable(transport):
        return UNAVAILABLE
    if _queued(transport):
        return BACKED_UP
    try:
        sent = transport.socket.send(data)
    except BlockingIOError:
        sent = 0
    except OSError:
        return UNAVAILABLE  # let the ordinary path meet the error and close the connection
    if sent < len(data):
        transport.write(data[sent:])
    return WRITTEN
