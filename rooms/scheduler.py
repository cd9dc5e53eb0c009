"""The end-of-media scheduler: the server's own step when a playing room reaches the end of its media.

One thread per serving process (started from vsync/asgi.py) keeps, for every playing
room with a known duration, the server time of its end and the version it was
computed from. It learns them from the database when it starts (a restarted process
re-derives everything), from every version this process commits
(``room_state_changed``), and by a rescan every ``RESCAN_S`` for versions other
processes committed. At an end it calls ``rooms.queue.room_advance_at_end``, which
re-checks that version under the row lock: with several processes holding the same
end, the first advances and the others find a newer version and do nothing, so each
end gets exactly one new version. No viewer needs to be connected.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.db import close_old_connections

from rooms.conf import conf
from rooms.models import Room
from rooms.queue import room_advance_at_end
from rooms.services import now_ms
from rooms.signals import room_state_changed
from rooms.state import RoomState

logger = logging.getLogger(__name__)

# A version another process committed reaches this one only through the database. The
# contract gives the advance 1 s; a rescan this often bounds how late an end can be
# when the process that knew it died, and costs one indexed query of (slug, version).
RESCAN_S = 2.0
# A room whose advance failed (the database was busy or down) is tried again after this.
RETRY_S = 0.5


class EndScheduler:
    """The schedule of ends and the thread that acts on them. ``run_due`` is the step, testable alone."""

    def __init__(self) -> None:
        self._ends: dict[str, tuple[float, int]] = {}  # slug -> (end_ms, version it was computed from)
        self._seen: dict[str, int] = {}  # slug -> newest version looked at
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def note(self, state: RoomState) -> None:
        """Schedule (or unschedule) ``state.room`` from one of its versions; an older one is ignored."""
        with self._wake:
            if self._seen.get(state.room, 0) > state.version:
                return
            self._seen[state.room] = state.version
            end_ms = state.end_ms()
            if end_ms is None:
                self._ends.pop(state.room, None)
            else:
                self._ends[state.room] = (end_ms, state.version)
            self._wake.notify()

    def next_end_ms(self) -> float | None:
        with self._wake:
            return min((end for end, _ in self._ends.values()), default=None)

    def scheduled(self, slug: str) -> tuple[float, int] | None:
        with self._wake:
            return self._ends.get(slug)

    def rescan(self) -> None:
        """Read every playing room whose version this process has not looked at yet."""
        playing = dict(Room.objects.filter(playing=True).values_list("slug", "version"))
        with self._wake:
            unseen = [slug for slug, version in playing.items() if self._seen.get(slug) != version]
            # Paused by another process (no longer playing): the entry would only cost a futile advance.
            for slug in [slug for slug in self._ends if slug not in playing]:
                self._ends.pop(slug)
                self._seen.pop(slug, None)
        for state in Room.objects.filter(slug__in=unseen).values_list("state", flat=True):
            self.note(RoomState.from_dict(state))

    def run_due(self, at_ms: float | None = None) -> list[RoomState]:
        """Take the server's step in every room whose end has come; the versions made here."""
        at_ms = now_ms() if at_ms is None else at_ms
        with self._wake:
            due = [(slug, version) for slug, (end, version) in self._ends.items() if end <= at_ms]
            for slug, _ in due:
                self._ends.pop(slug)
                self._seen.pop(slug, None)  # whatever happens, the room is read again below
        made = []
        for slug, version in due:
            try:
                result = room_advance_at_end(slug=slug, version=version)
            except Exception:
                logger.exception("the end-of-media step of room %s failed; retrying", slug)
                with self._wake:
                    self._ends.setdefault(slug, (at_ms + RETRY_S * 1000.0, version))
                continue
            if result is not None:
                made.append(result)
                self.note(result)
            else:
                # Another process (or a person) made a newer version: schedule from that one.
                room = Room.objects.filter(slug=slug).only("state").first()
                if room is not None:
                    self.note(room.room_state)
        return made

    # The thread.

    def start(self) -> None:
        with self._wake:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="end-of-media", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        next_rescan = 0.0
        while True:
            with self._wake:
                if self._stopping:
                    return
            try:
                if time.monotonic() >= next_rescan:
                    self.rescan()
                    next_rescan = time.monotonic() + RESCAN_S
                self.run_due()
            except Exception:
                logger.exception("the end-of-media scheduler failed; trying again in %s s", RETRY_S)
                next_rescan = time.monotonic() + RETRY_S
            finally:
                close_old_connections()
            with self._wake:
                if self._stopping:
                    return
                wait_s = next_rescan - time.monotonic()
                next_end = min((end for end, _ in self._ends.values()), default=None)
                if next_end is not None:
                    wait_s = min(wait_s, (next_end - now_ms()) / 1000.0)
                if wait_s > 0:
                    self._wake.wait(wait_s)


scheduler = EndScheduler()


def _on_state_changed(sender: Any, state: RoomState, **kwargs: Any) -> None:
    scheduler.note(state)


def ensure_scheduler() -> None:
    """Start this process's scheduler once (a serving process; off with VSYNC_END_SCHEDULER = False)."""
    if not conf.END_SCHEDULER:
        return
    room_state_changed.connect(_on_state_changed, dispatch_uid="rooms.scheduler")
    scheduler.start()
