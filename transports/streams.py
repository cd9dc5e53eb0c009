"""The per-connection end of the hub: a mailbox of size one that the hub writes through.

A ``Stream`` is one viewer's connection (SSE, WebSocket, or one long poll). The hub
writes each new version to it straight from its fan-out loop: no task wake-up, no
future and no queue per connection per version. If the server cannot take a write at
once (its send suspends on backpressure) the stream is busy; versions that arrive
meanwhile are not queued, and when the write completes the stream catches up with
the room's newest version. So a stalled viewer costs at most one pending snapshot,
gets the newest version next, and never an older version after a newer one.
Under daphne, whose sends never wait, the stream writes the bytes itself
(transports.fastwrite) and counts bytes still held by Twisted as that backpressure.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from transports import fastwrite
from transports.encoding import Snapshot

Send = Callable[[dict[str, Any]], Awaitable[None]]
SSE, WS, POLL = "sse", "ws", "poll"
SSE_HEARTBEAT = {"type": "http.response.body", "body": b": keepalive\n\n", "more_body": True}
EMPTY_BODY = {"type": "http.response.body", "body": b""}
# How often a backed-up daphne connection is looked at: soon at first (a reply queued a
# moment ago leaves on the next reactor turn), then every 50 ms (a viewer not reading).
DRAIN_PAUSES_S = (0.0, 0.001, 0.005, 0.02, 0.05)
# The event loop keeps only weak references to tasks: hold the suspended sends here.
_finishing: set[asyncio.Task[None]] = set()


class Stream:
    """One connection the hub writes to. A ``POLL`` stream answers once and is then closed."""

    __slots__ = ("_direct", "_newest", "busy", "claimed", "closed", "gone", "head", "mode", "room", "send", "version",
                 "waiter")

    def __init__(self, room: str, send: Send, *, mode: str, known_version: int | None,
                 newest: Callable[[], Snapshot | None], head: bool = False) -> None:
        self.room = room
        self.send = send
        self.mode = mode
        self.head = head
        self.version = -1 if known_version is None else known_version
        self.busy = False  # a write is suspended in the server
        self.claimed = False  # a long poll has started its answer
        self.closed = False
        self.gone = False  # the client disconnected
        self.waiter: asyncio.Future[None] | None = None  # a long poll's coroutine, waiting
        self._newest = newest
        self._direct = fastwrite.writer_for(send, mode) if mode != POLL else None

    def push(self, snapshot: Snapshot, *, force: bool = False) -> None:
        if self.busy or self.closed or (snapshot.version <= self.version and not force):
            return
        if self._direct is not None:
            outcome = self._direct.write(snapshot)
            if outcome == fastwrite.WRITTEN:
                self.version = snapshot.version
                return
            if outcome == fastwrite.BACKED_UP:
                self._track(self._drain(force))
                return
        self.version = snapshot.version
        if self.mode == SSE:
            self._write(self.send(snapshot.sse_message))
        elif self.mode == WS:
            self._write(self.send(snapshot.ws_message))
        else:
            self.claimed = self.closed = True
            self._write(self._answer(snapshot))

    def heartbeat(self) -> None:
        if self.mode == SSE and not self.busy and not self.closed:
            self._write(self.send(SSE_HEARTBEAT))

    def notify(self) -> None:
        """Wake the long poll's coroutine (answered, timed out or disconnected)."""
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def _answer(self, snapshot: Snapshot) -> None:
        await self.send(snapshot.poll_start)
        await self.send(EMPTY_BODY if self.head else snapshot.poll_body)

    def _write(self, sending: Coroutine[Any, Any, None]) -> None:
        # Run the server's send as far as it goes without waiting: for daphne, and for
        # uvicorn unless the socket is backed up, that is all the way.
        try:
            waiting_on = sending.send(None)
        except StopIteration:
            self.notify()
            return
        except Exception:
            self.closed = True  # the connection is gone; its own coroutine cleans up
            self.notify()
            return
        self._track(self._finish(sending, waiting_on))

    def _track(self, job: Coroutine[Any, Any, None]) -> None:
        self.busy = True
        task = asyncio.ensure_future(job)
        _finishing.add(task)
        task.add_done_callback(_finishing.discard)

    async def _drain(self, force: bool) -> None:
        """Wait until the server has sent what it holds for this viewer, then catch up.

        ``force``: the version held back was the resume rule's reset, owed even if not newer.
        """
        assert self._direct is not None
        try:
            for pause in itertools.chain(DRAIN_PAUSES_S, itertools.repeat(DRAIN_PAUSES_S[-1])):
                if self.closed or not self._direct.backed_up():
                    break
                await asyncio.sleep(pause)
        finally:
            self.busy = False
        newest = self._newest()
        if newest is not None:
            self.push(newest, force=force)

    async def _finish(self, sending: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        """Drive a suspended send to its end, as a Task would, then catch up with the newest version."""
        try:
            while True:
                error: BaseException | None = None
                if waiting_on is None:
                    await asyncio.sleep(0)
                else:
                    waiting_on._asyncio_future_blocking = False
                    try:
                        await waiting_on
                    except asyncio.CancelledError:
                        sending.close()
                        raise
                    except BaseException as exc:
                        error = exc
                waiting_on = sending.send(None) if error is None else sending.throw(error)
        except StopIteration:
            pass
        except Exception:
            self.closed = True
            return
        finally:
            self.busy = False
            self.notify()
        newest = self._newest()
        if newest is not None:
            self.push(newest)
