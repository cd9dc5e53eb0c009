"""The per-connection end of the hub: one class per mode, each holding at most one pending state.

``EventStream`` (SSE) and ``SocketStream`` (WebSocket) are long-lived: the hub pushes
each new version, and the server's ``send`` runs in a writer task of the connection's
own (in a copy of its contextvars), one at a time; versions that arrive while a send is
in flight are not queued, and when it completes the writer catches up with the room's
newest version. So a stalled viewer costs at most what is in flight, gets the newest version
next, and never an older version after a newer. Under daphne the stream writes a
version's bytes itself when it can (transports.fastwrite), with no task at all, and
counts bytes still held by Twisted as that backpressure.

``LongPoll`` is answered once, by its own request coroutine, which the hub only wakes.

Besides the newest state, a stream carries an ordered outbox of pre-encoded ASGI messages
(``send_message``): delivered in order, every one, for what is a log rather than a state.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar

from transports import fastwrite
from transports.encoding import Snapshot

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
SSE, WS, POLL = "sse", "ws", "poll"
SSE_HEARTBEAT = {"type": "http.response.body", "body": b": keepalive\n\n", "more_body": True}
SSE_END = {"type": "http.response.body", "body": b"", "more_body": False}
# How often a backed-up daphne connection is looked at: soon at first (a reply queued a
# moment ago leaves on the next reactor turn), then every 50 ms (a viewer not reading).
DRAIN_PAUSES_S = (0.0, 0.001, 0.005, 0.02, 0.05)
# What the streams of this process did, for hub.stats() (the fast-path test reads it).
counts: collections.Counter[str] = collections.Counter()
# The event loop keeps only weak references to tasks: hold the running writers here.
_writers: set[asyncio.Task[None]] = set()


class Stream:
    """One connection of one room that the hub delivers to; who holds it (``client_id``) comes from rooms.access."""

    __slots__ = ("address", "client_id", "detached", "room", "token", "version")
    mode: ClassVar[str]

    def __init__(self, room: str, *, known_version: int | None, client_id: str | None = None,
                 token: str | None = None, address: str | None = None) -> None:
        self.room = room
        self.version = -1 if known_version is None else known_version
        self.client_id, self.token, self.address = client_id, token, address
        self.detached = False  # the hub has forgotten it: nothing more is written

    def push(self, snapshot: Snapshot) -> None:
        """Deliver ``snapshot`` if it is newer than what the client has."""
        raise NotImplementedError

    def heartbeat(self) -> None:
        """Keep an idle connection open (SSE only)."""

    def end(self, *, code: int, status: int, error: str) -> None:
        """End the connection from the server's side: WebSocket close ``code``, HTTP ``status``."""
        raise NotImplementedError


class WrittenStream(Stream):
    """A long-lived connection whose writes the hub starts: SSE or WebSocket."""

    __slots__ = ("_context", "_direct", "_newest", "_outbox", "busy", "ending", "send")

    def __init__(self, room: str, send: Send, *, newest: Callable[[], Snapshot | None], **kwargs: Any) -> None:
        super().__init__(room, **kwargs)
        self.send = send
        self.busy = False  # a writer task is running
        self.ending = False  # the final message is queued: no more states
        self._newest = newest
        # Made on first use: an empty deque is about 600 bytes, on every one of 10,000 viewers.
        self._outbox: collections.deque[dict[str, Any]] | None = None
        # Created in the connection's own coroutine: its writers run with its contextvars.
        self._context = contextvars.copy_context()
        self._direct = fastwrite.writer_for(send, self.mode)

    def state_message(self, snapshot: Snapshot) -> dict[str, Any]:
        raise NotImplementedError

    def push(self, snapshot: Snapshot) -> None:
        if self.busy or self.detached or self.ending or snapshot.version <= self.version:
            return  # a running writer catches up with the newest when its send completes
        if self._direct is not None:
            outcome = self._direct.write(snapshot)
            if outcome == fastwrite.WRITTEN:
                self.version = snapshot.version
                counts[f"fast.{self.mode}"] += 1
                return
            if outcome == fastwrite.BACKED_UP:
                self._start(self._drain())
                return
        self._start(self._write(snapshot))

    def unhold(self) -> None:
        """End a hold (hub.attach's ``hold``): send what was queued meanwhile; states are the caller's."""
        self.busy = False
        if self._outbox:
            self._start(self._write(None))

    def send_message(self, message: dict[str, Any]) -> None:
        """Queue one pre-encoded ASGI message; every queued message is sent, in order."""
        if self.detached or self.ending:
            return
        if self._outbox is None:
            self._outbox = collections.deque()
        self._outbox.append(message)
        if not self.busy:
            self._start(self._write(None))

    def _finish_with(self, message: dict[str, Any]) -> None:
        self.send_message(message)
        self.ending = True

    def _start(self, job: Coroutine[Any, Any, None]) -> None:
        self.busy = True
        task = asyncio.get_running_loop().create_task(job, context=self._context)
        _writers.add(task)
        task.add_done_callback(_writers.discard)

    async def _write(self, snapshot: Snapshot | None) -> None:
        """Send the outbox in order and ``snapshot``, then whatever newer version the room has meanwhile."""
        try:
            while not self.detached:
                if snapshot is not None:  # what this writer was started for goes first
                    self.version = snapshot.version
                    message, snapshot = self.state_message(snapshot), None
                elif self._outbox:
                    message = self._outbox.popleft()
                else:
                    newest = None if self.ending else self._newest()
                    if newest is None or newest.version <= self.version:
                        break
                    self.version = newest.version
                    message = self.state_message(newest)
                counts[f"send.{self.mode}"] += 1
                await self.send(message)
        except OSError as exc:  # the client went away under the send: its own coroutine cleans up
            logger.info("%s viewer of %s gone during a send: %r", self.mode, self.room, exc)
            self.detached = True
        except Exception:
            logger.exception("send to a %s viewer of %s failed; the connection gets nothing more", self.mode,
                             self.room)
            counts["send_errors"] += 1
            self.detached = True
        finally:
            self.busy = False

    async def _drain(self) -> None:
        """Wait until daphne has sent what it holds for this viewer, then catch up."""
        assert self._direct is not None
        try:
            for pause in itertools.chain(DRAIN_PAUSES_S, itertools.repeat(DRAIN_PAUSES_S[-1])):
                if self.detached or not self._direct.backed_up():
                    break
                await asyncio.sleep(pause)
        finally:
            self.busy = False
        newest = self._newest()
        if self._outbox:
            self._start(self._write(None))
        elif newest is not None:
            self.push(newest)


class EventStream(WrittenStream):
    """An SSE response: ``event: state`` per version, and the hub's heartbeat comment."""

    __slots__ = ()
    mode = SSE

    def state_message(self, snapshot: Snapshot) -> dict[str, Any]:
        return snapshot.sse_message

    def heartbeat(self) -> None:
        if not self.busy and not self._outbox:
            self.send_message(SSE_HEARTBEAT)

    def end(self, *, code: int, status: int, error: str) -> None:
        # The response ends; both servers then tell the request's coroutine the client left.
        self._finish_with(SSE_END)


class SocketStream(WrittenStream):
    """A WebSocket: ``{"type": "state", ...}`` per version."""

    __slots__ = ()
    mode = WS

    def state_message(self, snapshot: Snapshot) -> dict[str, Any]:
        return snapshot.ws_message

    def end(self, *, code: int, status: int, error: str) -> None:
        # The server closes the socket and the socket's coroutine then reads websocket.disconnect.
        self._finish_with({"type": "websocket.close", "code": code})


class LongPoll(Stream):
    """One long poll: the hub hands it the answer and wakes its request coroutine, which sends it."""

    __slots__ = ("answer", "denied", "woken")
    mode = POLL

    def __init__(self, room: str, **kwargs: Any) -> None:
        super().__init__(room, **kwargs)
        self.answer: Snapshot | None = None
        self.denied: tuple[int, str] | None = None  # (status, error): ended by the server
        self.woken = asyncio.get_running_loop().create_future()

    def push(self, snapshot: Snapshot) -> None:
        if self.detached or self.woken.done() or snapshot.version <= self.version:
            return  # once answered, never again; a long poll ignores resets (transports.resume)
        self.answer = snapshot
        self.woken.set_result(None)

    def end(self, *, code: int, status: int, error: str) -> None:
        if not self.detached and not self.woken.done():
            self.denied = (status, error)
            self.woken.set_result(None)


STREAMS: dict[str, type[EventStream] | type[SocketStream]] = {SSE: EventStream, WS: SocketStream}
