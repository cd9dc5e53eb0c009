"""The report writer: results.csv (one row per run), cdf.csv (latency quantiles per run), report.md, plots."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

from loadtests import plots
from loadtests.metrics import percentile
from loadtests.rows import (
    CDF_QUANTILES,
    CLIENT_BOUND_PCT,
    HOLD_COMMANDS,
    HOLD_DELIVERED,
    HOLD_P99_MS,
    TRANSPORT_ORDER,
    Point,
    Row,
    group,
    is_nan,
)

FIELDS = [f.name for f in dataclasses.fields(Row)]


def cdf_of(samples: list[float]) -> list[float]:
    """A run's latency at every CDF quantile, sorting its samples once."""
    ordered = sorted(samples)
    return [percentile(ordered, q, presorted=True) for q in CDF_QUANTILES]


def write_results(out_dir: Path, rows: list[Row], latencies: dict[str, list[float]], meta: dict[str, Any]) -> None:
    """Write every output of a sweep into ``out_dir``: the CSVs, report.md and the PNG plots."""
    cdf = {run_id: cdf_of(samples) for run_id, samples in latencies.items()}
    write_tables(out_dir, rows, cdf, meta)
    write_report(out_dir, rows, cdf, meta)


def write_tables(out_dir: Path, rows: list[Row], cdf: dict[str, list[float]], meta: dict[str, Any]) -> None:
    """results.csv, cdf.csv and meta.json: cheap, so a sweep rewrites them after every run and a sweep
    cut short keeps its rows (``python -m loadtests report DIR`` then draws the report)."""
    with open(out_dir / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(v) for k, v in dataclasses.asdict(row).items()})
    with open(out_dir / "cdf.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run_id", *CDF_QUANTILES])
        for run_id, values in cdf.items():
            writer.writerow([run_id, *(_csv_value(v) for v in values)])
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def write_report(out_dir: Path, rows: list[Row], cdf: dict[str, list[float]], meta: dict[str, Any]) -> list[str]:
    """report.md and the plots (their file names returned): once, at the end of a sweep. Drawn after every
    run, with each run's 201 quantiles re-sorted each time, they cost the 87-run sweep 20 of its 50 minutes."""
    plot_files = _write_plots(out_dir, rows, cdf)
    (out_dir / "report.md").write_text(render_report(rows, meta, plot_files, reading_by_hand(out_dir)))
    return plot_files


def rewrite_report(out_dir: Path, meta: dict[str, Any] | None = None) -> list[str]:
    """Rewrite report.md and the plots from results.csv and cdf.csv (and meta.json unless ``meta`` is given)."""
    rows, cdf, stored = read_results(out_dir)
    if meta is not None:
        (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return write_report(out_dir, rows, cdf, meta if meta is not None else stored)


def _write_plots(out_dir: Path, rows: list[Row], cdf: dict[str, list[float]]) -> list[str]:
    """The plots, or none: a plot that cannot draw these rows (a sweep of a transport it does not know,
    such as socketio alone) must not lose the sweep's results.csv and report.md."""
    try:
        return plots.write_plots(out_dir, rows, cdf)
    except Exception as exc:
        print(f"warning: no plots for {out_dir}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return []


def reading_by_hand(out_dir: Path) -> str:
    """A person's reading of the figures, kept in reading.md beside them so that rewriting keeps it."""
    path = out_dir / "reading.md"
    return path.read_text().strip() if path.exists() else ""


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else round(value, 3)
    return value


def read_results(out_dir: Path) -> tuple[list[Row], dict[str, list[float]], dict[str, Any]]:
    """Read back what ``write_results`` wrote, to rewrite the report without running again."""
    rows = []
    types = {f.name: f.type for f in dataclasses.fields(Row)}
    with open(out_dir / "results.csv", newline="") as handle:
        for raw in csv.DictReader(handle):
            rows.append(Row(**{k: _parse(types[k], v) for k, v in raw.items()}))
    cdf: dict[str, list[float]] = {}
    with open(out_dir / "cdf.csv", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for run_id, *values in reader:
            cdf[run_id] = [float(v) if v else math.nan for v in values]
    meta_path = out_dir / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return rows, cdf, meta


def _parse(kind: Any, text: str) -> Any:
    kind = str(kind)
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text) if text else math.nan
    if kind == "bool":
        return text == "True"
    return text


def fmt(value: float, digits: int = 1) -> str:
    if is_nan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def fmt_spread(point: Point, name: str) -> str:
    low, high = point.spread(name)
    text = fmt(point.median(name))
    return f"{text} ({fmt(low)}-{fmt(high)})" if len(point.rows) > 1 else text


# Issue 14's goals, each judged where the sweep has its point (medians over the repeats).
GOAL_P99_RATIO_1000 = {"sse": 1.2, "ws": 1.2, "longpoll": 1.5}
GOAL_P99_RATIO_SCALE = 2.0
GOAL_KIB_PER_VIEWER = 16.0
GOAL_RTT_MS = 150.0


def goals_table(rows: list[Row]) -> list[str]:
    """The goals against the sweep's figures: p99 over the floor at 1,000 viewers in one process, the
    largest scale-out (every version delivered, p99 over the floor, memory per viewer) and the order of
    the transports at 150 ms RTT."""
    floor_rows: dict[tuple[str, int, str], list[Row]] = {}
    for row in rows:
        if row.server == "floor":
            floor_rows.setdefault((row.transport, row.viewers, row.floor_section), []).append(row)
    floor_of = {key: Point(mine) for key, mine in floor_rows.items()}
    lines = ["| goal | row | measured | target | met |", "|---|---|---:|---:|---|"]

    def line(goal: str, row: str, value: float, target: float, text: str = "") -> None:
        met = "n/a" if is_nan(value) else ("yes" if value <= target else "no")
        lines.append(f"| {goal} | {row} | {text or fmt(value, 2)} | {target:g} | {met} |")

    single = [r for r in rows if r.viewers == 1000 and r.server != "floor" and not r.scale_out
              and r.network == "loopback" and r.transport in GOAL_P99_RATIO_1000]
    by_point: dict[tuple[str, str, str], list[Row]] = {}
    for row in single:
        by_point.setdefault((row.transport, row.config, row.floor_section), []).append(row)
    for (transport, config, base), mine in sorted(by_point.items()):
        point, floor = Point(mine), floor_of.get((transport, 1000, base))
        value = point.median("p99_ms") / floor.median("p99_ms") if floor else math.nan
        passes = f"{len(mine)} pass{'es' if len(mine) > 1 else ''}"
        line("p99 ÷ floor, 1,000 viewers, one process", f"{transport} {config} ({passes})", value,
             GOAL_P99_RATIO_1000[transport], f"{value:.2f}x ({fmt(point.median('p99_ms'))} ms)")
    scaled = [r for r in rows if r.scale_out and r.server != "floor"]
    if scaled:
        largest = max(r.viewers for r in scaled)
        for row in sorted((r for r in scaled if r.viewers == largest), key=lambda r: (r.transport,
                                                                                     r.server_processes)):
            name = f"{row.transport} x{largest:,} on {row.server_processes} processes"
            floor = floor_of.get((row.transport, row.viewers, row.floor_section))
            value = row.p99_ms / floor.median("p99_ms") if floor else math.nan
            line("p99 ÷ floor at the largest count", name, value, GOAL_P99_RATIO_SCALE,
                 f"{value:.2f}x ({fmt(row.p99_ms)} ms)")
            line("every version delivered (missed)", name, float(row.missed), 0.0,
                 f"{row.missed} missed, {100 * row.delivered_ratio:.0f} % delivered")
            line("KiB per connected viewer", name, row.server_kib_per_viewer, GOAL_KIB_PER_VIEWER)
    at_rtt = [r for r in rows if r.rtt_ms == GOAL_RTT_MS and r.server != "floor" and not r.bandwidth_kbps]
    if at_rtt:
        points = group(at_rtt)
        by_p99 = sorted(points.values(), key=lambda p: p.median("p99_ms"))
        by_bytes = sorted(points.values(), key=lambda p: p.median("bytes_per_viewer_min_busy"))
        lines.append(f"| order at {GOAL_RTT_MS:g} ms RTT by p99 | {by_p99[0].first.config} | "
                     + " < ".join(f"{p.first.transport} {fmt(p.median('p99_ms'), 0)} ms" for p in by_p99)
                     + " | | |")
        lines.append(f"| order at {GOAL_RTT_MS:g} ms RTT by bytes per viewer-minute (busy) | "
                     f"{by_bytes[0].first.config} | "
                     + " < ".join(f"{p.first.transport} {fmt(p.median('bytes_per_viewer_min_busy') / 1024, 1)} KiB"
                                  for p in by_bytes) + " | | |")
    return lines if len(lines) > 2 else []


def ratio(value: float, floor: float) -> str:
    if is_nan(value) or is_nan(floor) or floor <= 0:
        return "n/a"
    return f"{value / floor:.1f}x"



def _configs(points: dict[tuple[str, int, str, str], Point]) -> list[str]:
    configs = sorted({f"{server}/{layer}" for _, _, server, layer in points if server != "floor"})
    return sorted(configs, key=lambda c: (c != "daphne/memory", c))


def _ordered(points: dict[tuple[str, int, str, str], Point], config: str) -> list[Point]:
    server, layer = config.split("/")
    chosen = [p for (t, _, s, lay), p in points.items() if s == server and lay == layer]
    return sorted(chosen, key=lambda p: (TRANSPORT_ORDER.index(p.first.transport)
                                         if p.first.transport in TRANSPORT_ORDER else 9, p.first.viewers))


def _floor(points: dict[tuple[str, int, str, str], Point], transport: str, viewers: int) -> Point | None:
    return points.get((transport, viewers, "floor", "floor"))


def latency_table(points: dict[tuple[str, int, str, str], Point], config: str) -> list[str]:
    lines = ["| transport | viewers | p50 ms | p95 ms | p99 ms | max ms | p50 ÷ floor | p99 ÷ floor | delivered "
             "| missed | out of order | errors | reconnects | commands/s | client CPU % (busiest process) | holds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for point in _ordered(points, config):
        row = point.first
        floor = _floor(points, row.transport, row.viewers)
        bound = " client-bound" if any(r.client_bound for r in point.rows) else ""
        lines.append(
            f"| {row.transport} | {row.viewers} | {fmt_spread(point, 'p50_ms')} | {fmt(point.median('p95_ms'))} "
            f"| {fmt_spread(point, 'p99_ms')} | {fmt(point.median('max_ms'))} "
            f"| {ratio(point.median('p50_ms'), floor.median('p50_ms') if floor else math.nan)} "
            f"| {ratio(point.median('p99_ms'), floor.median('p99_ms') if floor else math.nan)} "
            f"| {fmt(100 * point.median('delivered_ratio'), 0)} % | {point.total('missed')} "
            f"| {point.total('out_of_order')} | {point.total('errors') + point.total('command_errors')} "
            f"| {point.total('reconnects')} | {fmt(point.median('commands_per_s'), 2)} "
            f"| {fmt(point.median('client_cpu_pct'), 0)} "
            f"({fmt(point.median('client_max_process_cpu_pct'), 0)}){bound} | {'yes' if point.holds() else 'no'} |")
    return lines


def cost_table(points: dict[tuple[str, int, str, str], Point], config: str) -> list[str]:
    lines = ["| transport | viewers | KiB/viewer-min idle | KiB/viewer-min busy | requests/viewer-min idle "
             "| requests/viewer-min busy | messages/s | server CPU % idle | server CPU % busy "
             "| CPU % per 1,000 viewers | server RSS MiB | KiB per viewer |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for point in _ordered(points, config):
        row = point.first
        lines.append(
            f"| {row.transport} | {row.viewers} | {fmt(point.median('bytes_per_viewer_min_idle') / 1024)} "
            f"| {fmt(point.median('bytes_per_viewer_min_busy') / 1024)} "
            f"| {fmt(point.median('requests_per_viewer_min_idle'))} "
            f"| {fmt(point.median('requests_per_viewer_min_busy'))} | {fmt(point.median('messages_per_s'), 0)} "
            f"| {fmt(point.median('server_cpu_pct_idle'), 0)} | {fmt_spread(point, 'server_cpu_pct_busy')} "
            f"| {fmt(point.median('server_cpu_pct_per_1000_viewers'), 0)} | {fmt(point.median('server_rss_mib'), 0)} "
            f"| {fmt(point.median('server_kib_per_viewer'))} |")
    return lines


def _vs_floor(points: dict[tuple[str, int, str, str], Point], point: Point) -> str:
    floor = _floor(points, point.first.transport, point.first.viewers)
    if floor is None:
        return ""
    return f", {ratio(point.median('p99_ms'), floor.median('p99_ms'))} its floor"


def reading(points: dict[tuple[str, int, str, str], Point], config: str) -> list[str]:
    """Sentences computed from the figures: who wins on latency, overhead and capacity, where each breaks."""
    lines: list[str] = []
    mine = _ordered(points, config)
    for viewers in sorted({p.first.viewers for p in mine}):
        at = sorted((p for p in mine if p.first.viewers == viewers and p.median("samples") > 0),
                    key=lambda p: p.median("p99_ms"))
        if len(at) >= 2:
            best, runner_up = at[0], at[1]
            text = (f"- {viewers} viewers: lowest p99 is **{best.first.transport}** at "
                    f"{fmt(best.median('p99_ms'))} ms{_vs_floor(points, best)}, "
                    f"{fmt(runner_up.median('p99_ms') / best.median('p99_ms'))}x better than "
                    f"{runner_up.first.transport} ({fmt(runner_up.median('p99_ms'))} ms{_vs_floor(points, runner_up)})")
            if len(at) >= 3:
                text += f"; slowest {at[-1].first.transport} ({fmt(at[-1].median('p99_ms'))} ms)"
            costs = sorted(at, key=lambda p: p.median("server_cpu_pct_busy"))
            cpu = ", ".join(f"{p.first.transport} {fmt(p.median('server_cpu_pct_busy'))} %" for p in costs)
            text += f". Server CPU (busy): {cpu}."
            lines.append(text)
    for transport in TRANSPORT_ORDER:
        series = [p for p in mine if p.first.transport == transport]
        if not series:
            continue
        held = [p.first.viewers for p in series if p.holds()]
        broke = [p for p in series if not p.holds()]
        text = f"- **{transport}** holds up to {max(held)} viewers" if held else f"- **{transport}** held at no size"
        if broke:
            first = broke[0]
            why = []
            if first.total("errors") or first.total("command_errors"):
                why.append(f"{first.total('errors') + first.total('command_errors')} errors")
            if first.total("out_of_order"):
                why.append(f"{first.total('out_of_order')} out-of-order versions")
            if first.median("p99_ms") > HOLD_P99_MS + first.first.poll_allowance_ms:
                why.append(f"p99 {fmt(first.median('p99_ms'))} ms")
            if first.median("commands_per_s") < HOLD_COMMANDS * first.first.commands_per_s_set:
                why.append(f"commands accepted at {fmt(first.median('commands_per_s'), 2)}/s of "
                           f"{fmt(first.first.commands_per_s_set)}/s")
            if transport != "poll" and first.median("delivered_ratio") < HOLD_DELIVERED:
                why.append(f"{fmt(100 * first.median('delivered_ratio'), 0)} % of messages delivered")
            if not first.median("samples"):
                why.append("no version propagated: no command got through during the run")
            text += f"; at {first.first.viewers} it breaks ({', '.join(why)})"
        bound = [p.first.viewers for p in series if any(r.client_bound for r in p.rows)]
        if bound:
            text += f"; the load generator was CPU-bound at {', '.join(map(str, bound))} viewers"
        lines.append(text + ".")
    return lines


def idle_table(rows: list[Row]) -> list[str]:
    lines = ["| transport | viewers | server | window s | KiB/viewer-min | requests/viewer-min | server CPU % "
             "| CPU % per 1,000 viewers | server RSS MiB | KiB per viewer | errors | reconnects |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in sorted(rows, key=lambda r: (r.config, TRANSPORT_ORDER.index(r.transport)
                                           if r.transport in TRANSPORT_ORDER else 9, r.viewers)):
        cpu = row.server_cpu_pct_idle
        lines.append(
            f"| {row.transport} | {row.viewers} | {row.config} | {fmt(row.idle_s, 0)} "
            f"| {fmt(row.bytes_per_viewer_min_idle / 1024, 2)} | {fmt(row.requests_per_viewer_min_idle, 2)} "
            f"| {fmt(cpu)} | {fmt(cpu / row.viewers * 1000 if row.viewers else math.nan)} "
            f"| {fmt(row.server_rss_mib, 0)} | {fmt(row.server_kib_per_viewer)} | {row.errors} | {row.reconnects} |")
    return lines


def networks(rows: list[Row]) -> list[str]:
    """The sections (network and client) of ``rows``, loopback first, then by RTT and bandwidth."""
    order = {r.section: (r.rtt_ms, r.jitter_ms, -r.bandwidth_kbps, r.client) for r in rows}
    return sorted(order, key=lambda name: (name != "loopback", order[name]))


def _poll_interval_s(meta: dict[str, Any]) -> float:
    try:
        return float(meta.get("short-poll interval s", 1.0))
    except (TypeError, ValueError):
        return 1.0


def network_table(rows: list[Row], meta: dict[str, Any]) -> list[str]:
    """Latency against RTT per transport and configuration, beside what the simple models predict.

    The predictions are for this lab's clients: a short poller fires on a timer every interval
    (not interval after the answer), so a change waits interval/2 on average for the next request to
    reach the server, then half a round trip back: interval/2 + RTT/2. When changes come more often
    than polls, a poll sees only the newest, and only its latency is measured (the ones before it
    are skipped): that one is on average half the spacing of the changes old, so the model's wait is
    min(interval, 1 / command rate) / 2. A long poll that is parked at
    the server when the change happens answers after half a round trip (RTT/2); a change that lands
    while the next poll is still on its way waits for it, up to one more round trip.
    """
    interval_ms = _poll_interval_s(meta) * 1000
    try:
        spacing_ms = 1000 / float(meta.get("commands per second (busy)", 0))
    except (TypeError, ValueError, ZeroDivisionError):
        spacing_ms = math.inf
    wait_ms = min(interval_ms, spacing_ms) / 2
    lines = ["| transport | server | viewers | RTT ms | p50 ms | p99 ms | p50 model ms | p50 - model ms "
             "| p99 ÷ floor | KiB/viewer-min busy | requests/viewer-min busy | proxy CPU % |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    by_key: dict[tuple[str, str, str, int, float, float], list[Row]] = {}
    for row in rows:
        by_key.setdefault((row.transport, row.client, row.config, row.viewers, row.rtt_ms, row.bandwidth_kbps),
                          []).append(row)
    points = {key: Point(value) for key, value in by_key.items()}

    def order(key: tuple[str, str, str, int, float, float]) -> tuple[Any, ...]:
        transport, client, config, viewers, rtt, bandwidth = key
        return (TRANSPORT_ORDER.index(transport) if transport in TRANSPORT_ORDER else 9, client,
                config == "floor/floor", config, viewers, bandwidth, rtt)

    for key in sorted(points, key=order):
        transport, client, config, viewers, rtt, bandwidth = key
        point = points[key]
        model = wait_ms + rtt / 2 if transport == "poll" else rtt / 2
        floor = points.get((transport, client, "floor/floor", viewers, rtt, bandwidth))
        p50 = point.median("p50_ms")
        shown = config if client == "locust" else f"{config} ({client})"
        lines.append(
            f"| {transport} | {shown} | {viewers} | {rtt:g}{f' @ {bandwidth:g} kbit/s' if bandwidth else ''} "
            f"| {fmt_spread(point, 'p50_ms')} | {fmt_spread(point, 'p99_ms')} | {fmt(model)} | {fmt(p50 - model)} "
            f"| {ratio(point.median('p99_ms'), floor.median('p99_ms') if floor else math.nan)} "
            f"| {fmt(point.median('bytes_per_viewer_min_busy') / 1024)} "
            f"| {fmt(point.median('requests_per_viewer_min_busy'))} | {fmt(point.median('proxy_cpu_pct'), 0)} |")
    return lines


def scale_out_table(rows: list[Row]) -> list[str]:
    """The scale-out runs side by side: per process count, p99 and its floor ratio, CPU, memory per viewer."""
    scaled = [r for r in rows if r.scale_out]
    floors = {(r.transport, r.viewers, r.floor_section): r for r in rows if r.server == "floor"}
    lines = ["| transport | viewers | server x processes | client | p50 ms | p99 ms | p99 ÷ floor | delivered "
             "| missed | server CPU % (all, with redis-server) | busiest process CPU % | KiB per viewer "
             "| client CPU % (busiest) |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    by_key: dict[tuple[str, int, str, int, str], list[Row]] = {}
    for row in scaled:
        by_key.setdefault((row.transport, row.viewers, row.server, row.server_processes, row.floor_section),
                          []).append(row)
    for key in sorted(by_key, key=lambda k: (TRANSPORT_ORDER.index(k[0]) if k[0] in TRANSPORT_ORDER else 9,
                                             k[4], k[1], k[2], k[3])):
        transport, viewers, server, processes, base = key
        point = Point(by_key[key])
        floor = floors.get((transport, viewers, base))
        lines.append(
            f"| {transport} | {viewers} | {server} x{processes} | {point.first.client} "
            f"| {fmt_spread(point, 'p50_ms')} | {fmt_spread(point, 'p99_ms')} "
            f"| {ratio(point.median('p99_ms'), floor.p99_ms if floor else math.nan)} "
            f"| {fmt(100 * point.median('delivered_ratio'), 0)} % | {point.total('missed')} "
            f"| {fmt_spread(point, 'server_cpu_pct_busy')} | {fmt(point.median('server_busiest_process_cpu_pct'), 0)} "
            f"| {fmt(point.median('server_kib_per_viewer'))} | {fmt(point.median('client_cpu_pct'), 0)} "
            f"({fmt(point.median('client_max_process_cpu_pct'), 0)}) |")
    return lines


def render_report(rows: list[Row], meta: dict[str, Any], plot_files: list[str], by_hand: str = "") -> str:
    idle_rows = [r for r in rows if r.scenario == "idle"]
    rows = [r for r in rows if r.scenario != "idle"]
    named = networks(rows)
    return _render(rows, idle_rows, meta, plot_files, by_hand, [] if named in ([], ["loopback"]) else named)


def _render(rows: list[Row], idle_rows: list[Row], meta: dict[str, Any], plot_files: list[str], by_hand: str,
            named: list[str]) -> str:
    """The report; with several ``named`` networks, every section once per network, and the RTT table."""
    out = [f"# vsync transport benchmark, {meta.get('date', '')}", ""]
    out += [f"Command: `{meta.get('command', '')}`", ""]
    out += ["| setting | value |", "|---|---|"]
    out += [f"| {key} | {value} |" for key, value in meta.items() if key not in ("command", "date")]
    out += ["", "How to read this: propagation latency is the viewer's receipt time (taken before parsing) minus the "
            "version's `changed_ms`, same machine clock. Each run: fresh server processes, its own room, viewers "
            "ramp up, an idle window (no commands), then a busy window of alternating seeks from one controller. "
            "Bytes are what a viewer received (HTTP heads and bodies, SSE stream, WebSocket frames); requests are "
            "HTTP requests plus WebSocket handshakes. The floor is the same client against a minimal server that "
            "only writes pre-encoded frames (../shared/BENCHMARKING.md); ratios to it hold on a noisy machine. "
            f"A run *holds* with no errors, no out-of-order version, ≥ {HOLD_DELIVERED:.0%} of messages delivered "
            f"(push transports), ≥ {HOLD_COMMANDS:.0%} of the commands accepted, and p99 ≤ {HOLD_P99_MS:.0f} ms "
            "(short polling: plus one poll interval). Client "
            f"CPU is the locust processes' total (100 = one core); a process above {CLIENT_BOUND_PCT:.0f} % marks "
            "the run client-bound. Where repeats exist, figures are medians with (min-max).", ""]
    if by_hand:
        out += [by_hand, ""]
    goals = goals_table(rows)
    if goals:
        out += ["## Goals (issue 14)", "", *goals, ""]
    if len({r.rtt_ms for r in rows}) > 1 or any(r.rtt_ms for r in rows):
        out += ["## Latency against the network's round trip", "",
                "p50 model: short polling min(interval, command spacing)/2 + RTT/2 (this lab's poller fires on a "
                "timer, so a poller that waits an interval after each answer would see interval/2 + RTT; when "
                "commands come faster than polls, only the newest version of each poll is measured, on average "
                "half a command spacing old), long polling, SSE and WebSocket "
                "RTT/2 (the one-way trip; a long poll adds up to one more round trip when a change lands while "
                "its next request is on the way). Proxy CPU is the netem process (100 = one core).", "",
                *network_table(rows, meta), ""]
    if any(r.scale_out for r in rows):
        out += ["## Scale-out on Redis", "",
                "Viewers spread evenly over the server processes; every process and redis-server share this "
                "machine's two cores with the load generator, so the counts are bounded by the machine, not by "
                "vsync. The floor is one process (the client's bound at that count).", "",
                *scale_out_table(rows), ""]
    bases = {r.section: r.floor_section for r in rows}
    for network in named or [""]:
        # A scale-out section's floor is its network's and client's floor (one process, the client's bound).
        mine = [r for r in rows if not network or r.section == network
                or (r.server == "floor" and r.section == bases[network] != network)]
        points = group(mine)
        where = f", {network}" if network else ""
        for config in _configs(points):
            out += [f"## {config}{where}", "", "### Latency and correctness", "", *latency_table(points, config),
                    "", "### Overhead and server cost", "", *cost_table(points, config), "",
                    "### Reading (computed)", "", *reading(points, config), ""]
    for network in named or [""]:
        points = group(r for r in rows if not network or r.section == network)
        floor_rows = [p for (t, v, s, lay), p in sorted(points.items()) if s == "floor"]
        if not floor_rows:
            continue
        out += [f"## Floor (minimal server, same client){f', {network}' if network else ''}", "",
                "| transport | viewers | p50 ms | p99 ms | max ms | client CPU % (busiest process) |",
                "|---|---:|---:|---:|---:|---:|"]
        for point in sorted(floor_rows, key=lambda p: (p.first.transport, p.first.viewers)):
            out.append(f"| {point.first.transport} | {point.first.viewers} | {fmt_spread(point, 'p50_ms')} "
                       f"| {fmt_spread(point, 'p99_ms')} | {fmt(point.median('max_ms'))} "
                       f"| {fmt(point.median('client_cpu_pct'), 0)} "
                       f"({fmt(point.median('client_max_process_cpu_pct'), 0)}) |")
        out.append("")
    if idle_rows:
        out += ["## Idle cost (long runs without commands)", "",
                "Keep-alives show here and not in the few idle seconds of the runs above: SSE comments, "
                "WebSocket pings and long-poll timeouts come every 15 to 25 s.", "", *idle_table(idle_rows), ""]
    if plot_files:
        out += ["## Plots", ""] + [f"![{name}]({name})" for name in plot_files] + [""]
    return "\n".join(out)
