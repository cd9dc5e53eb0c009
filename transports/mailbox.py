"""The per-connection end of the hub: latest wins, one pending snapshot at most.

Two shapes of the same rule. A ``Mailbox`` is awaited by its connection (a long
poll waits for one version). A ``Stream`` (SSE, WebSocket) is written by the hub
itself, straight from its fan-out loop: no task wake-up, no future and no queue per
connection per version. If the server cannot take a write at once (its send
suspends on backpressure) the stream is busy; versions that arrive meanwhile are
skipped, and when the write completes the stream catches up with the room's newest
version. Either way a viewer never gets an older version after a newer one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from transports.encoding import Snapshot

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
SSE_HEARTBEAT = {"type": "http.response.body", "body": b": keepalive\n\n", "more_body": True}
# The event loop keeps only weak references to tasks: hold the suspended sends here.
_finishing: set[asyncio.Task[None]] = set()


class Mailbox:
    """Size one. ``get`` returns the next snapshot, or None when only poked or closed."""

    __slots__ = ("_pending", "_poked", "_waiter", "closed", "room", "version")

    def __init__(self, room: str, known_version: int | None) -> None:
        self.room = room
        self.version = -1 if known_version is None else known_version
        self.closed = False
        self._pending: Snapshot | None = None
        self._poked = False
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, snapshot: Snapshot, *, force: bool = False) -> None:
        pending = self._pending
        if not force and snapshot.version <= self.version:
            return
        if pending is not None and snapshot.version <= pending.version:
            return
        self._pending = snapshot
        self._wake()

    def poke(self) -> None:
        self._poked = True
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Snapshot | None:
        while self._pending is None and not self._poked and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._poked = False
        snapshot, self._pending = self._pending, None
        if snapshot is not None:
            self.version = snapshot.version
        return snapshot


class Stream:
    """A connection the hub writes to directly. ``newest`` gives the room's newest snapshot for catching up."""

    __slots__ = ("_newest", "busy", "closed", "room", "send", "sse", "version")

    def __init__(self, room: str, send: Send, *, sse: bool, known_version: int | None,
                 newest: Callable[[], Snapshot | None]) -> None:
        self.room = room
        self.send = send
        self.sse = sse
        self.version = -1 if known_version is None else known_version
        self.busy = False
        self.closed = False
        self._newest = newest

    def push(self, snapshot: Snapshot, *, force: bool = False) -> None:
        if self.busy or self.closed or (snapshot.version <= self.version and not force):
            return
        self.version = snapshot.version
        self._write(snapshot.sse_message if self.sse else snapshot.ws_message)

    def heartbeat(self) -> None:
        if self.sse and not self.busy and not self.closed:
            self._write(SSE_HEARTBEAT)

    def _write(self, message: dict[str, Any]) -> None:
        # Run the server's send as far as it goes without waiting: for daphne, and for
        # uvicorn unless the socket is backed up, that is all the way.
        sending = self.send(message)
        try:
            waiting_on = sending.send(None)  # type: ignore[attr-defined]
        except StopIteration:
            return
        except Exception:
            self.closed = True  # the connection is gone; its own coroutine cleans up
            return
        self.busy = True
        task = asyncio.ensure_future(self._finish(sending, waiting_on))
        _finishing.add(task)
        task.add_done_callback(_finishing.discard)

    async def _finish(self, sending: Any, waiting_on: Any) -> None:
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
        newest = self._newest()
        if newest is not None:
            self.push(newest)
