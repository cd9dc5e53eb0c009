"""The arithmetic of a run: what one viewer saw, what one locust process recorded, what a run measured.

Pure Python with no gevent, Django or locust: the locustfile records into a ``Recorder``,
each locust process dumps it as JSON, and the runner merges the dumps and summarises them.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Counters are bucketed per wall-clock second so that windows (idle, busy) can be cut
# after the run from the controller's own timestamps, across several locust processes.
BUCKET_S = 1.0


class VersionTracker:
    """What one viewer has seen: the contract says a client never applies a version <= one it has."""

    def __init__(self) -> None:
        self.last_version: int | None = None
        self.missed = 0
        self.out_of_order = 0
        self.duplicates = 0

    def observe(self, version: int) -> str:
        """Classify ``version``: ``first``, ``new`` (counts skipped versions), ``duplicate`` or ``old``."""
        last = self.last_version
        if last is None:
            self.last_version = version
            return "first"
        if version > last:
            self.missed += version - last - 1
            self.last_version = version
            return "new"
        if version == last:
            self.duplicates += 1
            return "duplicate"
        self.out_of_order += 1
        return "old"


def percentile(values: Sequence[float], q: float, presorted: bool = False) -> float:
    """Linear-interpolated percentile (numpy's default) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = values if presorted else sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def bucket_of(t_s: float) -> int:
    return math.floor(t_s / BUCKET_S)


@dataclass
class Recorder:
    """Everything one locust process measured, in a form that merges by addition."""

    latencies: list[tuple[float, float]] = field(default_factory=list)  # (receive epoch ms, latency ms)
    bytes_in: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    requests: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    messages: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    viewers: dict[str, list[float]] = field(default_factory=dict)  # id -> [start epoch s, end epoch s or nan]
    missed: int = 0
    out_of_order: int = 0
    duplicates: int = 0
    reconnects: int = 0
    errors: int = 0
    commands: list[tuple[float, int]] = field(default_factory=list)  # (send epoch s, HTTP status)

    def viewer_started(self, viewer_id: str, t_s: float) -> None:
        self.viewers[viewer_id] = [t_s, math.nan]

    def viewer_stopped(self, viewer_id: str, t_s: float) -> None:
        if viewer_id in self.viewers and math.isnan(self.viewers[viewer_id][1]):
            self.viewers[viewer_id][1] = t_s

    def traffic(self, t_s: float, nbytes: int, requests: int = 0) -> None:
        bucket = bucket_of(t_s)
        self.bytes_in[bucket] += nbytes
        if requests:
            self.requests[bucket] += requests

    def delivery(self, receive_ms: float, changed_ms: float, kind: str) -> float | None:
        """Count one state received; return its propagation latency when it is a new version."""
        if kind != "new":
            return None
        self.messages[bucket_of(receive_ms / 1000.0)] += 1
        latency = receive_ms - changed_ms
        self.latencies.append((receive_ms, latency))
        return latency

    def close_viewers(self, t_s: float) -> None:
        for viewer_id in self.viewers:
            self.viewer_stopped(viewer_id, t_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "latencies": self.latencies,
            "bytes_in": dict(self.bytes_in), "requests": dict(self.requests), "messages": dict(self.messages),
            "viewers": self.viewers, "missed": self.missed, "out_of_order": self.out_of_order,
            "duplicates": self.duplicates, "reconnects": self.reconnects, "errors": self.errors,
            "commands": self.commands,
        }

    def dump(self, path: Path) -> None:
        """Write atomically: the runner may be looking for the file while it is being written."""
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(self.to_json()))
        partial.replace(path)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Recorder:
        rec = cls()
        rec.merge_json(data)
        return rec

    def merge_json(self, data: dict[str, Any]) -> None:
        self.latencies.extend((float(t), float(lat)) for t, lat in data["latencies"])
        for name in ("bytes_in", "requests", "messages"):
            target = getattr(self, name)
            for bucket, value in data[name].items():
                target[int(bucket)] += value
        self.viewers.update({key: [float(a), float(b)] for key, (a, b) in data["viewers"].items()})
        for name in ("missed", "out_of_order", "duplicates", "reconnects", "errors"):
            setattr(self, name, getattr(self, name) + int(data[name]))
        self.commands.extend((float(t), int(status)) for t, status in data["commands"])


def merge_dumps(paths: Iterable[Path]) -> Recorder:
    merged = Recorder()
    for path in paths:
        merged.merge_json(json.loads(path.read_text()))
    return merged


def viewer_seconds(viewers: Iterable[Sequence[float]], start_s: float, end_s: float) -> float:
    """Sum over viewers of the time each was connected inside [start_s, end_s)."""
    total = 0.0
    for began, ended in viewers:
        ended = end_s if math.isnan(ended) else ended
        total += max(0.0, min(ended, end_s) - max(began, start_s))
    return total


@dataclass(frozen=True)
class Window:
    """Whole buckets [first_bucket, end_bucket) of a run."""

    first_bucket: int
    end_bucket: int

    @classmethod
    def inside(cls, start_s: float, end_s: float) -> Window | None:
        first, end = math.ceil(start_s / BUCKET_S), math.floor(end_s / BUCKET_S)
        return cls(first, end) if end > first else None

    @property
    def start_s(self) -> float:
        return self.first_bucket * BUCKET_S

    @property
    def end_s(self) -> float:
        return self.end_bucket * BUCKET_S

    @property
    def seconds(self) -> float:
        return (self.end_bucket - self.first_bucket) * BUCKET_S

    def total(self, buckets: dict[int, int]) -> int:
        return sum(value for bucket, value in buckets.items() if self.first_bucket <= bucket < self.end_bucket)

    def viewer_minutes(self, viewers: Iterable[Sequence[float]]) -> float:
        return viewer_seconds(viewers, self.start_s, self.end_s) / 60.0


def per_viewer_minute(buckets: dict[int, int], viewers: Iterable[Sequence[float]], window: Window | None) -> float:
    if window is None:
        return math.nan
    minutes = window.viewer_minutes(viewers)
    return window.total(buckets) / minutes if minutes > 0 else math.nan


@dataclass
class Phases:
    """The idle window (every viewer connected, no commands yet) and the busy window (commands flowing)."""

    idle: Window | None
    busy: Window | None


def phases_of(rec: Recorder) -> Phases:
    starts = [began for began, _ in rec.viewers.values()]
    ends = [ended for _, ended in rec.viewers.values() if not math.isnan(ended)]
    sent = sorted(t for t, _ in rec.commands)
    if not sent:
        # An idle run: everyone connected, nothing sent, until the viewers stopped.
        idle = Window.inside(max(starts) + 1.0, min(ends)) if starts and ends else None
        return Phases(idle=idle, busy=None)
    # A second of margin each side: the last viewers' first requests, the last deliveries.
    idle = Window.inside(max(starts) + 1.0, sent[0]) if starts else None
    busy = Window.inside(sent[0], sent[-1] + 1.0)
    if busy is None or busy.seconds < 2 * BUCKET_S:
        # A saturated server let few commands through: measure up to the end of the run instead.
        busy = Window.inside(sent[0], max(ends)) if ends else busy
    return Phases(idle=idle, busy=busy)


@dataclass
class Summary:
    """One run's figures from the client side, as they go into results.csv."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    samples: int
    messages_per_s: float
    commands_per_s: float
    bytes_per_viewer_min_idle: float
    bytes_per_viewer_min_busy: float
    requests_per_viewer_min_idle: float
    requests_per_viewer_min_busy: float
    missed: int
    out_of_order: int
    duplicates: int
    reconnects: int
    errors: int
    command_errors: int
    viewers_seen: int
    busy_s: float
    idle_s: float = 0.0


def summarise(rec: Recorder) -> Summary:
    phases = phases_of(rec)
    busy = phases.busy
    lat = [latency for _, latency in rec.latencies]
    viewers = list(rec.viewers.values())
    accepted_or_stale = [t for t, status in rec.commands if status in (200, 409)]
    return Summary(
        p50_ms=percentile(lat, 50), p95_ms=percentile(lat, 95), p99_ms=percentile(lat, 99),
        max_ms=max(lat) if lat else math.nan, samples=len(lat),
        messages_per_s=busy.total(rec.messages) / busy.seconds if busy else math.nan,
        commands_per_s=(sum(1 for t in accepted_or_stale if busy.first_bucket <= bucket_of(t) < busy.end_bucket)
                        / busy.seconds) if busy else math.nan,
        bytes_per_viewer_min_idle=per_viewer_minute(rec.bytes_in, viewers, phases.idle),
        bytes_per_viewer_min_busy=per_viewer_minute(rec.bytes_in, viewers, busy),
        requests_per_viewer_min_idle=per_viewer_minute(rec.requests, viewers, phases.idle),
        requests_per_viewer_min_busy=per_viewer_minute(rec.requests, viewers, busy),
        missed=rec.missed, out_of_order=rec.out_of_order, duplicates=rec.duplicates,
        reconnects=rec.reconnects, errors=rec.errors,
        command_errors=sum(1 for _, status in rec.commands if status not in (200, 409)),
        viewers_seen=len(rec.viewers), busy_s=busy.seconds if busy else 0.0,
        idle_s=phases.idle.seconds if phases.idle else 0.0,
    )


def http_head_bytes(status_line_len: int, headers: Iterable[tuple[str, str]]) -> int:
    """Bytes of an HTTP/1.1 response head: status line, ``name: value`` lines, the blank line."""
    return status_line_len + 2 + sum(len(name) + 2 + len(value) + 2 for name, value in headers) + 2


def ws_frame_bytes(payload_len: int) -> int:
    """Bytes on the wire of one unmasked server-to-client WebSocket frame (RFC 6455 section 5.2)."""
    if payload_len < 126:
        return 2 + payload_len
    if payload_len < 65536:
        return 4 + payload_len
    return 10 + payload_len
