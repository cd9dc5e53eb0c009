"""Per-address upload limits (CONTRACT v2) and who sent each stored upload.

Allowed at least 3 uploads in 10 minutes; refused beyond 10 in 10 minutes or 2 GiB an
hour, with uploads counted as they start (a refused or failed upload still cost the
server its bytes) and bytes by the declared Content-Length. Counted per process, like
rooms.limits: with N workers a client gets up to N times as much, which still bounds it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

from rooms.conf import conf
from rooms.models import Room, Upload

UPLOADS_PER_WINDOW = 10
UPLOAD_WINDOW_S = 600.0
BYTES_WINDOW_S = 3600.0
MAX_ADDRESSES = 50_000


def bytes_per_hour() -> int:
    return conf.UPLOAD_BYTES_PER_HOUR


class UploadQuota:
    """A sliding log per address of (start time, declared bytes)."""

    def __init__(self) -> None:
        self._log: OrderedDict[str, deque[tuple[float, int]]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, address: str | None, size: int, now: float | None = None) -> float | None:
        """Count an upload of ``size`` bytes starting now: None if allowed, else seconds to wait (Retry-After)."""
        if not conf.ADDRESS_LIMITS or not address:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            log = self._log.pop(address, deque())
            while log and now - log[0][0] >= BYTES_WINDOW_S:
                log.popleft()
            self._log[address] = log  # most recently used last
            while len(self._log) > MAX_ADDRESSES:
                self._log.popitem(last=False)
            recent = [start for start, _ in log if now - start < UPLOAD_WINDOW_S]
            if len(recent) >= UPLOADS_PER_WINDOW:
                return recent[-UPLOADS_PER_WINDOW] + UPLOAD_WINDOW_S - now
            hour_bytes = sum(declared for _, declared in log)
            if hour_bytes + size > bytes_per_hour():
                if not log:
                    return BYTES_WINDOW_S  # one upload over the hourly budget: never, this hour
                return _bytes_wait(log, hour_bytes + size - bytes_per_hour(), now)
            log.append((now, size))
        return None

    def clear(self) -> None:
        with self._lock:
            self._log.clear()


def _bytes_wait(log: deque[tuple[float, int]], excess: int, now: float) -> float:
    """How long until enough of this hour's bytes age out."""
    freed = 0
    for start, declared in log:
        freed += declared
        if freed >= excess:
            return start + BYTES_WINDOW_S - now
    return BYTES_WINDOW_S


upload_quota = UploadQuota()


def upload_record(*, name: str, kind: str = Upload.Kind.MEDIA, slug: str, client_id: str | None,
                  address: str | None, size: int) -> Upload:
    """Attribute a stored file: which room it was sent to, by whom, from where, how big."""
    return Upload.objects.create(name=name, kind=kind, room=Room.objects.filter(slug=slug).first(),
                                 client_id=client_id or "", address=address, size=size,
                                 created_ms=time.time() * 1000.0)
