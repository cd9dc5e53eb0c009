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
(``send_message``) and chat messages (``push_chat``): delivered in order, every one, for
what is a log rather than a state. ``chat_id`` is the newest chat message a stream has
handed to its server, so none is sent twice; a stream that holds CHAT_PENDING_MAX chat
messages it could not send yet drops them for one chat-reset (the client re-reads the
history from its last id), so a viewer that stopped reading holds bounded memory. An idle
daphne stream writes a chat frame itself (transports.fastwrite), as it does states.

``ChatPoll`` is a ``GET .../chat?timeout=`` waiting for a message, woken like ``LongPoll``.
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
from transports.encoding import ChatFrame, Snapshot, chat_reset_frames

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
SSE, WS, POLL, CHAT_POLL = "sse", "ws", "poll", "chatpoll"
# A chat log is delivered whole, but not buffered forever for a viewer that stopped
# reading: past this many pending messages it is told to re-read (CONTRACT v2 "chat"
# answers 100 per page, so one re-read covers what was dropped).
CHAT_PENDING_MAX = 100
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

    __slots__ = ("address", "chat_id", "client_id", "detached", "room", "token", "version")
    mode: ClassVar[str]

    def __init__(self, room: str, *, known_version: int | None, client_id: str | None = None,
                 token: str | None = None, address: str | None = None) -> None:
        self.room = room
        self.version = -1 if known_version is None else known_version
        self.client_id, self.token, self.address = client_id, token, address
        self.detached = False  # the hub has forgotten it: nothing more is written
        self.chat_id = 0  # the newest chat message handed to the client (hub.attach sets it)

    def push(self, snapshot: Snapshot) -> None:
        """Deliver ``snapshot`` if it is newer than what the client has."""
        raise NotImplementedError

    def push_chat(self, frame: ChatFrame) -> None:
        """Deliver chat message ``frame`` (the hub hands them over in id order); a state-only stream ignores it."""

    def heartbeat(self) -> None:
        """Keep an idle connection open (SSE only)."""

    def end(self, *, code: int, status: int, error: str) -> None:
        """End the connection from the server's side: WebSocket close ``code``, HTTP ``status``."""
        raise NotImplementedError


class WrittenStream(Stream):
    """A long-lived connection whose writes the hub starts: SSE or WebSocket."""

    __slots__ = ("_chat_pending", "_context", "_direct", "_newest", "_outbox", "busy", "ending", "send")

    def __init__(self, room: str, send: Send, *, newest: Callable[[], Snapshot | None], **kwargs: Any) -> None:
        super().__init__(room, **kwargs)
        self.send = send
        self.busy = False  # a writer task is running
        self.ending = False  # the final message is queued: no more states
        self._newest = newest
        # Made on first use: an empty deque is about 600 bytes, on every one of 10,000 viewers.
        self._outbox: collections.deque[dict[str, Any] | ChatFrame | _Reset] | None = None
        self._chat_pending = 0  # chat messages in the outbox
        # Created in the connection's own coroutine: its writers run with its contextvars.
        self._context = contextvars.copy_context()
        self._direct = fastwrite.writer_for(send, self.mode)

    def state_message(self, snapshot: Snapshot) -> dict[str, Any]:
        raise NotImplementedError

    def state_wire(self, snapshot: Snapshot) -> Any:
        """What transports.fastwrite writes for ``snapshot`` on this stream."""
        return snapshot

    def chat_wire(self, frame: ChatFrame) -> Any:
        """What transports.fastwrite writes for chat message ``frame`` on this stream."""
        raise NotImplementedError

    def chat_message(self, frame: ChatFrame) -> dict[str, Any]:
        raise NotImplementedError

    def reset_message(self) -> dict[str, Any]:
        raise NotImplementedError

    def push(self, snapshot: Snapshot) -> None:
        if self.busy or self.detached or self.ending or snapshot.version <= self.version:
            return  # a running writer catches up with the newest when its send completes
        if self._direct is not None:
            outcome = self._direct.write(self.state_wire(snapshot))
            if outcome == fastwrite.WRITTEN:
                self.version = snapshot.version
                counts[f"fast.{self.mode}"] += 1
                return
            if outcome == fastwrite.BACKED_UP:
                self._start(self._drain())
                return
        self._start(self._write(snapshot))

    def unhold(self, snapshot: Snapshot | None = None) -> None:
        """End a hold (hub.attach's ``hold``): send ``snapshot`` (if any), then what was queued meanwhile."""
        self.busy = False
        if self._outbox:
            self._start(self._write(snapshot))
        elif snapshot is not None:
            self.push(snapshot)

    def push_chat(self, frame: ChatFrame) -> None:
        if self.detached or self.ending or frame.id <= self.chat_id:
            return
        if not self.busy and not self._outbox and self._direct is not None:
            outcome = self._direct.write(self.chat_wire(frame))
            if outcome == fastwrite.WRITTEN:
                self.chat_id = frame.id
                counts[f"fast.chat.{self.mode}"] += 1
                return
            self._enqueue(frame)
            if outcome == fastwrite.BACKED_UP:
                self._start(self._drain())
                return
            self._start(self._write(None))
            return
        self._enqueue(frame)
        if not self.busy:
            self._start(self._write(None))

    def backlog(self, frames: list[ChatFrame], *, complete: bool) -> None:
        """Queue the chat messages a resuming client missed, ahead of anything queued meanwhile.

        ``complete``: they are all it missed; otherwise a chat-reset follows them.
        """
        if self._outbox is None:
            self._outbox = collections.deque()
        if not complete:
            self._outbox.appendleft(RESET)
        for frame in reversed(frames):
            self._outbox.appendleft(frame)
            self._chat_pending += 1

    def _enqueue(self, frame: ChatFrame) -> None:
        if self._outbox is None:
            self._outbox = collections.deque()
        if self._chat_pending >= CHAT_PENDING_MAX:
            # A viewer this far behind gets one reset instead of an ever longer queue.
            kept = [entry for entry in self._outbox if isinstance(entry, dict)]
            self._outbox = collections.deque(kept)
            self._outbox.append(RESET)
            self._chat_pending = 0
            counts[f"chat_resets.{self.mode}"] += 1
            return
        self._outbox.append(frame)
        self._chat_pending += 1

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
                    entry = self._outbox.popleft()
                    if isinstance(entry, ChatFrame):
                        self._chat_pending -= 1
                        if entry.id <= self.chat_id:
                            continue  # a backlog and the live messages may overlap: none twice
                        if self._direct is not None:
                            if not await self._wait_drained():
                                break
                            outcome = self._direct.write(self.chat_wire(entry))
                            if outcome == fastwrite.WRITTEN:
                                self.chat_id = entry.id
                                counts[f"fast.chat.{self.mode}"] += 1
                                continue
                        self.chat_id = entry.id
                        message = self.chat_message(entry)
                    elif isinstance(entry, _Reset):
                        message = self.reset_message()
                    else:
                        message = entry
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

    async def _wait_drained(self) -> bool:
        """Under daphne, wait until Twisted holds nothing for this viewer, so that a chat message is
        not buffered behind a stalled reader (the outbox's bound then applies); False if it left."""
        assert self._direct is not None
        for pause in itertools.chain(DRAIN_PAUSES_S, itertools.repeat(DRAIN_PAUSES_S[-1])):
            if self.detached:
                return False
            if not self._direct.backed_up():
                return True
            await asyncio.sleep(pause)
        return False  # not reached

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
        return snapshot.sse_for(self.chat_id).sse_message

    def state_wire(self, snapshot: Snapshot) -> Any:
        return snapshot.sse_for(self.chat_id)

    def chat_wire(self, frame: ChatFrame) -> Any:
        return frame.sse_for(self.version)

    def chat_message(self, frame: ChatFrame) -> dict[str, Any]:
        return frame.sse_for(self.version).sse_message

    def reset_message(self) -> dict[str, Any]:
        return chat_reset_frames(self.chat_id)[1].sse_message

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

    def chat_wire(self, frame: ChatFrame) -> Any:
        return frame.socket

    def chat_message(self, frame: ChatFrame) -> dict[str, Any]:
        return frame.socket.ws_message

    def reset_message(self) -> dict[str, Any]:
        return chat_reset_frames(self.chat_id)[0].ws_message

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


class ChatPoll(Stream):
    """One ``GET .../chat?after=&timeout=``: the hub hands it the messages after ``chat_id`` and wakes it."""

    __slots__ = ("denied", "messages", "woken")
    mode = CHAT_POLL

    def __init__(self, room: str, *, after: int, **kwargs: Any) -> None:
        super().__init__(room, known_version=None, **kwargs)
        self.chat_id = after
        self.messages: list[ChatFrame] = []
        self.denied: tuple[int, str] | None = None
        self.woken = asyncio.get_running_loop().create_future()

    def push(self, snapshot: Snapshot) -> None:
        pass  # states are the other polls' business

    def push_chat(self, frame: ChatFrame) -> None:
        if self.detached or frame.id <= self.chat_id or len(self.messages) >= CHAT_PENDING_MAX:
            return
        self.messages.append(frame)
        self.chat_id = frame.id
        if not self.woken.done():
            self.woken.set_result(None)

    def end(self, *, code: int, status: int, error: str) -> None:
        if not self.detached and not self.woken.done():
            self.denied = (status, error)
            self.woken.set_result(None)


class _Reset:
    """The outbox's marker for a chat-reset (its ``after`` is the stream's position when it is sent)."""


RESET = _Reset()
STREAMS: dict[str, type[EventStream] | type[SocketStream]] = {SSE: EventStream, WS: SocketStream}
