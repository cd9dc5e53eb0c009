"""A periodic background thread, one per process: the media refresher and the upload sweeper.

Each round runs outside any request, so it closes the thread's stale database
connections afterwards as Django's request signals would; a failing round is
logged and the next one runs on schedule.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.db import close_old_connections

logger = logging.getLogger(__name__)


class PeriodicThread:
    """Call ``work`` every ``interval_s()`` seconds in a daemon thread, until stopped or the interval is <= 0."""

    def __init__(self, *, name: str, work: Callable[[], None], interval_s: Callable[[], float]) -> None:
        self.name = name
        self._work = work
        self._interval_s = interval_s
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._stop = threading.Event()

    def ensure_started(self) -> None:
        """Start the thread, once (a no-op while it runs)."""
        with self._guard:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the thread and wait for its round to end (tests; a process that exits needs nothing)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        while (interval := self._interval_s()) > 0:
            if self._stop.wait(interval):
                return
            try:
                self._work()
            except Exception:
                logger.exception("%s failed; trying again in %s s", self.name, interval)
            try:
                close_old_connections()
            except Exception:  # a database that went away must not end the thread: the next round retries
                logger.exception("%s could not close its database connection", self.name)
