"""Token buckets, per process: the per-address limits of CONTRACT v2 and the per-client ones.

Memory is bounded: at most ``max_keys`` buckets per limit. Idle buckets are full again
and can be forgotten; when a flood of new keys (many addresses) fills the table anyway,
the oldest half is dropped, which at worst hands those keys a fresh burst.
Per process: with N workers a client could get N times the rate, which the limits
below leave room for (they protect the server, not fairness).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

from rooms.conf import conf
from rooms.media.quota import upload_quota

# Buckets idle this long are full again (every limit below refills within it).
FORGET_AFTER_S = 120.0
MAX_KEYS = 50_000


class TokenBuckets:
    """``rate`` tokens a second up to ``burst``; each ``take`` costs one."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = MAX_KEYS) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[Hashable, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()

    def take(self, key: Hashable) -> float | None:
        """None when allowed; else how many seconds until one token is back (for Retry-After)."""
        now = time.monotonic()
        with self._lock:
            tokens, seen = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - seen) * self.rate)
            allowed = tokens >= 1.0
            # Re-inserted last: the dict's order is least recently used first.
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            if now - self._last_sweep > FORGET_AFTER_S or len(self._buckets) > self.max_keys:
                self._sweep(now)
        return None if allowed else (1.0 - tokens) / self.rate

    def allow(self, key: Hashable) -> bool:
        return self.take(key) is None

    def wait_s(self, key: Hashable) -> float | None:
        """Like ``take`` but costs nothing: None when a token is there."""
        now = time.monotonic()
        with self._lock:
            tokens, seen = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - seen) * self.rate)
        return None if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)

    def _sweep(self, now: float) -> None:
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < FORGET_AFTER_S}
        if len(self._buckets) > self.max_keys:
            keep = list(self._buckets.items())[len(self._buckets) - self.max_keys // 2:]
            self._buckets = dict(keep)
        self._last_sweep = now


class InFlight:
    """At most ``limit`` things at once per key (resolutions in the blocking pool)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, key: Hashable) -> Iterator[bool]:
        """Yields True with a slot held for the block, False (nothing held) when ``key`` has them all."""
        with self._lock:
            held = self._counts.get(key, 0)
            if held >= self.limit:
                granted = False
            else:
                granted = True
                self._counts[key] = held + 1
        try:
            yield granted
        finally:
            if granted:
                with self._lock:
                    left = self._counts[key] - 1
                    if left:
                        self._counts[key] = left
                    else:
                        del self._counts[key]  # bounded: only keys with something in flight stay

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()

    def __len__(self) -> int:
        return len(self._counts)


def retry_after_header(seconds: float) -> str:
    """Retry-After is whole seconds; never 0, or a client would retry at once."""
    return str(max(1, math.ceil(seconds)))


# CONTRACT v2 "limits per address": commands (any client_id) at least 200 a second, refused
# beyond 300 sustained with bursts of 300; presence at most 100 a second per address;
# room creation at least 10 a minute, refused beyond 30.
ADDRESS_COMMANDS = TokenBuckets(rate=300.0, burst=300.0)
ADDRESS_PRESENCE = TokenBuckets(rate=100.0, burst=100.0)
ADDRESS_ROOM_CREATION = TokenBuckets(rate=30.0 / 60.0, burst=30.0)
# Wrong passwords and owner tokens at /join: guessing costs a minute per 20 tries.
ADDRESS_JOIN_FAILURES = TokenBuckets(rate=20.0 / 60.0, burst=20.0)
# Media resolutions (media and enqueue commands with a URL that is not this server's own
# media): each may hold one of the yt-dlp pool's few threads for seconds, so an address gets
# 10 at once a minute and 20 a minute after, and at most 2 running at the same time; the
# pool stays free for everyone else (issue 11: six slow ones made a direct URL wait 19 s).
ADDRESS_MEDIA_RESOLUTIONS = TokenBuckets(rate=20.0 / 60.0, burst=10.0)
ADDRESS_RESOLUTIONS_IN_FLIGHT = InFlight(2)
# Commands per client_id in a room (always on, v1): the contract promises at least 10 a
# second; scrubbing a seek bar sends bursts, so twice that with a burst of the same size.
CLIENT_COMMANDS = TokenBuckets(rate=20.0, burst=20.0)
# Presence per client (always on): the page reports every 1 to 2 s; 10 a second is refused beyond.
CLIENT_PRESENCE = TokenBuckets(rate=10.0, burst=10.0)


def address_limit(buckets: TokenBuckets, address: str | None) -> float | None:
    """A per-address limit: None when allowed (or limits are off, or the address is unknown)."""
    if not conf.ADDRESS_LIMITS or not address:
        return None
    return buckets.take(address)


def reset_all() -> None:
    """Forget every bucket (tests)."""
    for buckets in (ADDRESS_COMMANDS, ADDRESS_PRESENCE, ADDRESS_ROOM_CREATION, ADDRESS_JOIN_FAILURES,
                    ADDRESS_MEDIA_RESOLUTIONS, CLIENT_COMMANDS, CLIENT_PRESENCE):
        buckets.clear()
    ADDRESS_RESOLUTIONS_IN_FLIGHT.clear()
    upload_quota.clear()  # a log, not buckets
