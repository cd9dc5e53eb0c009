"""One run's figures (``Row``) and the repeats of one configuration (``Point``): what the report and the plots share."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from loadtests.metrics import Summary

# socketio: the lab's peer row (loadtests.socketio_app), Socket.IO as the article's app used it.
TRANSPORT_ORDER = ["poll", "longpoll", "sse", "ws", "socketio"]
CDF_QUANTILES = [q / 2 for q in range(0, 201)]  # 0, 0.5, ..., 100
# A run "holds" when nobody saw an error or an old version, deliveries kept up, and p99 stayed
# under this: half a second is where people in a watch party start to hear the rooms disagree.
HOLD_P99_MS = 500.0
HOLD_DELIVERED = 0.95
# ... and the controller got most of its commands through (a saturated server queues them).
HOLD_COMMANDS = 0.8
# A locust process above this share of a core is the bottleneck, not the server.
CLIENT_BOUND_PCT = 85.0


@dataclass
class Row:
    run_id: str
    scenario: str
    transport: str
    viewers: int
    server: str
    layer: str
    repeat: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    samples: int
    messages_per_s: float
    commands_per_s: float
    commands_per_s_set: float
    delivered_ratio: float
    bytes_per_viewer_min_idle: float
    bytes_per_viewer_min_busy: float
    requests_per_viewer_min_idle: float
    requests_per_viewer_min_busy: float
    server_cpu_pct_idle: float
    server_cpu_pct_busy: float
    server_cpu_pct_per_1000_viewers: float
    server_rss_mib: float
    server_kib_per_viewer: float
    client_cpu_pct: float
    client_max_process_cpu_pct: float
    client_processes: int
    client_bound: bool
    viewers_seen: int
    missed: int
    out_of_order: int
    duplicates: int
    reconnects: int
    errors: int
    command_errors: int
    busy_s: float
    idle_s: float
    # Added with the network lab (issue 14); older results.csv files read back with these defaults.
    rtt_ms: float = 0.0
    jitter_ms: float = 0.0
    bandwidth_kbps: float = 0.0
    client: str = "locust"
    proxy_cpu_pct: float = math.nan
    server_processes: int = 1
    scale_out: bool = False  # a run of the scale-out sweep (--processes): its section names the process count
    server_busiest_process_cpu_pct: float = math.nan

    @classmethod
    def build(cls, *, spec: Any, summary: Summary, server_cpu_pct_idle: float, server_cpu_pct_busy: float,
              server_rss_mib: float, server_kib_per_viewer: float, client_cpu_pct: float,
              client_max_process_cpu_pct: float, client_processes: int, command_rate: float,
              client: str = "locust", proxy_cpu_pct: float = math.nan, server_processes: int = 1,
              scale_out: bool = False, server_busiest_process_cpu_pct: float = math.nan) -> Row:
        expected = summary.commands_per_s * spec.viewers
        return cls(
            run_id=spec.run_id, scenario=spec.scenario, transport=spec.transport, viewers=spec.viewers,
            server=spec.server, layer=spec.layer, repeat=spec.repeat, p50_ms=summary.p50_ms, p95_ms=summary.p95_ms,
            p99_ms=summary.p99_ms, max_ms=summary.max_ms, samples=summary.samples,
            messages_per_s=summary.messages_per_s, commands_per_s=summary.commands_per_s,
            commands_per_s_set=command_rate,
            delivered_ratio=summary.messages_per_s / expected if expected else math.nan,
            bytes_per_viewer_min_idle=summary.bytes_per_viewer_min_idle,
            bytes_per_viewer_min_busy=summary.bytes_per_viewer_min_busy,
            requests_per_viewer_min_idle=summary.requests_per_viewer_min_idle,
            requests_per_viewer_min_busy=summary.requests_per_viewer_min_busy,
            server_cpu_pct_idle=server_cpu_pct_idle, server_cpu_pct_busy=server_cpu_pct_busy,
            server_cpu_pct_per_1000_viewers=server_cpu_pct_busy / spec.viewers * 1000 if spec.viewers else math.nan,
            server_rss_mib=server_rss_mib, server_kib_per_viewer=server_kib_per_viewer,
            client_cpu_pct=client_cpu_pct, client_max_process_cpu_pct=client_max_process_cpu_pct,
            client_processes=client_processes,
            client_bound=bool(client_max_process_cpu_pct >= CLIENT_BOUND_PCT),
            viewers_seen=summary.viewers_seen, missed=summary.missed, out_of_order=summary.out_of_order,
            duplicates=summary.duplicates, reconnects=summary.reconnects, errors=summary.errors,
            command_errors=summary.command_errors, busy_s=summary.busy_s, idle_s=summary.idle_s,
            rtt_ms=getattr(spec, "rtt_ms", 0.0), jitter_ms=getattr(spec, "jitter_ms", 0.0),
            bandwidth_kbps=getattr(spec, "bandwidth_kbps", 0.0), client=client, proxy_cpu_pct=proxy_cpu_pct,
            server_processes=server_processes, scale_out=scale_out,
            server_busiest_process_cpu_pct=server_busiest_process_cpu_pct)

    @property
    def config(self) -> str:
        return f"{self.server}/{self.layer}"

    @property
    def network(self) -> str:
        """The network of the run, as a heading: ``loopback`` or ``RTT 150 ± 15 ms, 1000 kbit/s``."""
        if not (self.rtt_ms or self.jitter_ms or self.bandwidth_kbps):
            return "loopback"
        parts = [f"RTT {self.rtt_ms:g} ± {self.jitter_ms:g} ms"] if self.rtt_ms or self.jitter_ms else []
        if self.bandwidth_kbps:
            parts.append(f"{self.bandwidth_kbps:g} kbit/s")
        return ", ".join(parts)

    @property
    def floor_section(self) -> str:
        """The section whose floor rows this row is divided by (the floor is one process in every scale-out)."""
        return self.network if self.client == "locust" else f"{self.network}, {self.client} client"

    @property
    def section(self) -> str:
        """The network and, unless it is locust, the load generator: rows that the report keeps apart."""
        text = self.floor_section
        if self.scale_out and self.server != "floor":
            text += f", {self.server_processes} server process{'es' if self.server_processes > 1 else ''}"
        return text

    def holds(self) -> bool:
        return (self.errors == 0 and self.out_of_order == 0 and self.samples > 0
                and self.commands_per_s >= HOLD_COMMANDS * self.commands_per_s_set
                and self.p99_ms <= HOLD_P99_MS + self.poll_allowance_ms
                and (self.transport == "poll" or self.delivered_ratio >= HOLD_DELIVERED))

    @property
    def poll_allowance_ms(self) -> float:
        # A short poll waits up to one interval by design; judge it on what it adds beyond that.
        return 1000.0 if self.transport == "poll" else 0.0


@dataclass
class Point:
    """The repeats of one (transport, viewers, server, layer): medians, with min and max for latency."""

    rows: list[Row]

    def median(self, name: str) -> float:
        values = [getattr(r, name) for r in self.rows if not is_nan(getattr(r, name))]
        return statistics.median(values) if values else math.nan

    def spread(self, name: str) -> tuple[float, float]:
        values = [getattr(r, name) for r in self.rows if not is_nan(getattr(r, name))]
        return (min(values), max(values)) if values else (math.nan, math.nan)

    def total(self, name: str) -> int:
        return sum(getattr(r, name) for r in self.rows)

    @property
    def first(self) -> Row:
        return self.rows[0]

    def holds(self) -> bool:
        return sum(r.holds() for r in self.rows) * 2 > len(self.rows)


def is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def group(rows: Iterable[Row]) -> dict[tuple[str, int, str, str], Point]:
    grouped: dict[tuple[str, int, str, str], list[Row]] = defaultdict(list)
    for row in rows:
        grouped[(row.transport, row.viewers, row.server, row.layer)].append(row)
    return {key: Point(value) for key, value in grouped.items()}
