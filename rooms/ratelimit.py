"""Per-client command rate limit: a token bucket per (room, client_id), per process."""

from __future__ import annotations

import threading
import time

# The contract promises at least 10 commands a second to each client; scrubbing a
# seek bar sends bursts, so allow twice that with a burst of the same size.
COMMANDS_PER_SECOND = 20.0
BURST = 20.0
# Buckets idle this long are full again and can be forgotten.
FORGET_AFTER_S = 60.0


class RateLimiter:
    def __init__(self, rate: float = COMMANDS_PER_SECOND, burst: float = BURST) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()

    def allow(self, room: str, client_id: str) -> bool:
        now = time.monotonic()
        key = (room, client_id)
        with self._lock:
            tokens, seen = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - seen) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            if now - self._last_sweep > FORGET_AFTER_S:
                self._sweep(now)
        return allowed

    def _sweep(self, now: float) -> None:
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < FORGET_AFTER_S}
        self._last_sweep = now


command_limiter = RateLimiter()
