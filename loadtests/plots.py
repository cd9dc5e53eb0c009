"""The four PNG plots of a sweep (matplotlib, no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from loadtests.rows import CDF_QUANTILES, Point, Row, group

COLORS = {"poll": "tab:orange", "longpoll": "tab:green", "sse": "tab:blue", "ws": "tab:purple", "socketio": "tab:brown"}
TRANSPORTS = tuple(COLORS)
STYLES = {"memory": "-", "redis": "--", "floor": ":"}
MARKERS = {"daphne": "o", "uvicorn": "s", "floor": "."}


def write_plots(out_dir: Path, rows: list[Row], cdf: dict[str, list[float]]) -> list[str]:
    """Write the plots that the rows allow; return their file names."""

    idle_rows = [r for r in rows if r.scenario == "idle"]
    busy_rows = [r for r in rows if r.scenario != "idle"]
    written = []
    fig = latency_vs_rtt(busy_rows)
    if fig is not None:
        fig.savefig(out_dir / "latency_vs_rtt.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append("latency_vs_rtt.png")
    fig = p99_by_processes(busy_rows)
    if fig is not None:
        fig.savefig(out_dir / "p99_vs_viewers_by_processes.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append("p99_vs_viewers_by_processes.png")
    # The plots against viewers are for one network: loopback when the sweep has it, else the first.
    section = min((r.section for r in busy_rows), key=lambda n: (n != "loopback", n), default="loopback")
    points = group(r for r in busy_rows if r.section == section)
    for name, draw in (("latency_cdf.png", latency_cdf), ("p99_vs_viewers.png", p99_vs_viewers),
                       ("bytes_per_viewer_minute.png", bytes_per_viewer_minute),
                       ("server_cpu_per_1000_viewers.png", server_cpu_per_1000)):
        fig = draw(points, cdf, idle_rows) if draw is bytes_per_viewer_minute else draw(points, cdf)
        if fig is not None:
            fig.savefig(out_dir / name, dpi=110, bbox_inches="tight")
            plt.close(fig)
            written.append(name)
    return written


def _series(points: dict, metric: str) -> dict[tuple[str, str, str], list[tuple[int, float]]]:
    series: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    for (transport, viewers, server, layer), point in points.items():
        value = point.median(metric)
        if not math.isnan(value):
            series.setdefault((transport, server, layer), []).append((viewers, value))
    return {key: sorted(values) for key, values in series.items()}


CONFIG_COLORS = {"daphne/memory": "tab:blue", "daphne/redis": "tab:red", "uvicorn/memory": "tab:green",
                 "uvicorn/redis": "tab:olive", "floor/floor": "grey"}


def _line_plot(points: dict, metric: str, ylabel: str, title: str, log_y: bool) -> plt.Figure | None:
    """One panel per transport, one line per server/layer (the floor dotted), x = viewers."""
    series = _series(points, metric)
    if not series:
        return None
    transports = [t for t in TRANSPORTS if any(key[0] == t for key in series)]
    columns = min(2, len(transports))
    rows = math.ceil(len(transports) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.8 * rows), squeeze=False, sharey=True)
    for ax, transport in zip(axes.flat, transports, strict=False):
        for (name, server, layer), values in sorted(series.items()):
            if name != transport:
                continue
            xs, ys = zip(*values, strict=True)
            config = f"{server}/{layer}"
            ax.plot(xs, ys, STYLES.get(layer, "-"), marker=MARKERS.get(server, "o"),
                    color=CONFIG_COLORS.get(config, "black"), label="floor" if server == "floor" else config)
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.set_title(transport)
        ax.set_xlabel("viewers")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.flat[len(transports):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def p99_vs_viewers(points: dict, cdf: dict[str, list[float]]) -> plt.Figure | None:
    return _line_plot(points, "p99_ms", "p99 propagation latency, ms (log)", "p99 latency against viewers", True)


def server_cpu_per_1000(points: dict, cdf: dict[str, list[float]]) -> plt.Figure | None:
    real = {key: point for key, point in points.items() if key[2] != "floor"}
    return _line_plot(real, "server_cpu_pct_per_1000_viewers", "server CPU % per 1,000 viewers (busy window)",
                      "Server CPU per 1,000 viewers (100 % = one core)", True)


def latency_vs_rtt(rows: list[Row]) -> plt.Figure | None:
    """One panel per transport: p50 (solid) and p99 (dashed) against RTT, one colour per configuration."""
    rtts = {r.rtt_ms for r in rows if not r.bandwidth_kbps}
    if len(rtts) < 2:
        return None
    grouped: dict[tuple[str, str, int, float], list[Row]] = {}
    for row in rows:
        if not row.bandwidth_kbps:
            config = row.config if row.client == "locust" else f"{row.config} ({row.client})"
            grouped.setdefault((row.transport, config, row.viewers, row.rtt_ms), []).append(row)
    # A line needs two round trips: the sweep's other rows at RTT 0 (other counts, other rows) are not lines.
    lines_of = {t: [line for line in sorted({(c, v) for t2, c, v, _ in grouped if t2 == t})
                    if sum(k[:3] == (t, *line) for k in grouped) >= 2] for t in TRANSPORTS}
    transports = [t for t in TRANSPORTS if lines_of[t]]
    if not transports:
        return None
    columns = min(2, len(transports))
    fig, axes = plt.subplots(math.ceil(len(transports) / columns), columns, figsize=(5.2 * columns, 3.9 *
                             math.ceil(len(transports) / columns)), squeeze=False)
    for ax, transport in zip(axes.flat, transports, strict=False):
        lines = lines_of[transport]
        for config, viewers in lines:
            keys = sorted(k for k in grouped if k[:3] == (transport, config, viewers))
            xs = [k[3] for k in keys]
            color = CONFIG_COLORS.get(config, "black")
            label = "floor" if config == "floor/floor" else config
            for metric, style, suffix in (("p50_ms", "-", "p50"), ("p99_ms", "--", "p99")):
                ys = [Point(grouped[k]).median(metric) for k in keys]
                ax.plot(xs, ys, style if config != "floor/floor" else ":", marker=".", color=color,
                        alpha=0.6 if config == "floor/floor" else 1.0,
                        label=f"{label} {viewers} viewers {suffix}" if len(lines) > 2 else f"{label} {suffix}")
        ax.set_title(transport)
        ax.set_xlabel("round trip added by loadtests.netem, ms")
        ax.set_ylabel("propagation latency, ms")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    for ax in axes.flat[len(transports):]:
        ax.set_visible(False)
    fig.suptitle("Latency against RTT per transport (p50 solid, p99 dashed, floor dotted)")
    fig.tight_layout()
    return fig


def p99_by_processes(rows: list[Row]) -> plt.Figure | None:
    """Scale-out: one panel per transport, p99 against viewers, one line per server process count, the floor dotted."""
    scaled = [r for r in rows if r.scale_out]
    if not scaled:
        return None
    bases = {r.floor_section for r in scaled}
    floors = [r for r in rows if r.server == "floor" and r.floor_section in bases]
    grouped: dict[tuple[str, str, int], list[Row]] = {}
    for row in scaled + floors:
        label = "floor" if row.server == "floor" else f"{row.server} x{row.server_processes}"
        grouped.setdefault((row.transport, label, row.viewers), []).append(row)
    transports = [t for t in TRANSPORTS if any(r.transport == t for r in scaled)]
    columns = min(2, len(transports))
    count = math.ceil(len(transports) / columns)
    fig, axes = plt.subplots(count, columns, figsize=(5.2 * columns, 3.9 * count), squeeze=False, sharey=True)
    for ax, transport in zip(axes.flat, transports, strict=False):
        for label in sorted({k[1] for k in grouped if k[0] == transport}):
            keys = sorted((k for k in grouped if k[:2] == (transport, label)), key=lambda k: k[2])
            ax.plot([k[2] for k in keys], [Point(grouped[k]).median("p99_ms") for k in keys],
                    ":" if label == "floor" else "-", marker=".", label=label, alpha=0.6 if label == "floor" else 1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(transport)
        ax.set_xlabel("viewers (spread over the processes)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.flat[len(transports):]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("p99 propagation latency, ms (log)")
    fig.suptitle("Scale-out on Redis: p99 against viewers per server process count")
    fig.tight_layout()
    return fig


def _representative(point: Point) -> Row:
    """The repeat whose p99 is the median one."""
    ordered = sorted(point.rows, key=lambda r: (math.isnan(r.p99_ms), r.p99_ms))
    return ordered[(len(ordered) - 1) // 2]


def latency_cdf(points: dict, cdf: dict[str, list[float]]) -> plt.Figure | None:

    viewer_counts = sorted({key[1] for key in points})
    if not viewer_counts or not cdf:
        return None
    primary = "daphne/memory" if any(k[2:] == ("daphne", "memory") for k in points) else None
    fig, axes = plt.subplots(1, len(viewer_counts), figsize=(4.2 * len(viewer_counts), 4.2), squeeze=False)
    for ax, viewers in zip(axes[0], viewer_counts, strict=True):
        for (transport, count, server, layer), point in sorted(points.items()):
            config = f"{server}/{layer}"
            if count != viewers or (config != primary and server != "floor" and primary is not None):
                continue
            values = cdf.get(_representative(point).run_id)
            if not values or all(math.isnan(v) for v in values):
                continue
            floor = server == "floor"
            ax.plot(values, [q / 100 for q in CDF_QUANTILES], ":" if floor else "-",
                    color=COLORS.get(transport, "grey"), alpha=0.5 if floor else 1.0,
                    label=f"{transport} floor" if floor else (transport if primary else f"{transport} {config}"))
        ax.set_xscale("log")
        ax.set_title(f"{viewers} viewers ({primary or 'all'})")
        ax.set_xlabel("propagation latency, ms (log)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("fraction of deliveries")
    fig.suptitle("Latency CDF per transport")
    return fig


def bytes_per_viewer_minute(points: dict, cdf: dict[str, list[float]], idle_rows: list[Row]) -> plt.Figure | None:
    real = {key: point for key, point in points.items() if key[2] != "floor"}
    if not real:
        return None
    configs = sorted({(server, layer) for _, _, server, layer in real},
                     key=lambda c: (c != ("daphne", "memory"), c))
    server, layer = configs[0]
    chosen = {(t, v): p for (t, v, s, lay), p in real.items() if (s, lay) == (server, layer)}
    labels = sorted(chosen, key=lambda key: (key[1], TRANSPORTS.index(key[0])
                                             if key[0] in COLORS else 9))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(labels) + 2), 4.6))
    xs = range(len(labels))
    # Long idle runs, when the sweep has them, see the keep-alives that a few idle seconds miss.
    long_idle = {r.transport: r.bytes_per_viewer_min_idle / 1024 for r in idle_rows
                 if (r.server, r.layer) == (server, layer)}
    idle = [long_idle.get(k[0], chosen[k].median("bytes_per_viewer_min_idle") / 1024) for k in labels]
    busy = [chosen[k].median("bytes_per_viewer_min_busy") / 1024 for k in labels]
    idle_label = "idle (long idle run)" if long_idle else "idle"
    ax.bar([x - 0.2 for x in xs], [0 if math.isnan(v) else v for v in idle], 0.4, label=idle_label, color="lightgrey",
           edgecolor="grey")
    ax.bar([x + 0.2 for x in xs], [0 if math.isnan(v) else v for v in busy], 0.4, label="busy",
           color=[COLORS.get(k[0], "grey") for k in labels])
    ax.set_xticks(list(xs), [f"{t}\n{v}" for t, v in labels], fontsize=7)
    ax.set_ylabel("KiB received per viewer-minute")
    ax.set_title(f"Bytes per viewer-minute, idle and busy ({server}/{layer})")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    return fig


def log_against_snapshot(rows: list) -> plt.Figure | None:
    """Chat (the log) against state (the snapshot), from loadtests.chat_probe's rows.

    Left: per transport, p50 and p99 of chat messages beside those of state versions at the
    same load (the lowest rate step, where both ran side by side). Right: chat p99 against the
    posted message rate per transport (state p99 dotted), the first step that fell behind marked.
    """
    steps = [r for r in rows if r.step == "rate"]
    if not steps:
        return None
    transports = [t for t in TRANSPORTS if any(r.transport == t for r in steps)]
    fig, (bars, lines) = plt.subplots(1, 2, figsize=(12.5, 4.6))
    width = 0.2
    for position, transport in enumerate(transports):
        low = min((r for r in steps if r.transport == transport), key=lambda r: r.rate_asked)
        values = [low.chat_p50_ms, low.chat_p99_ms, low.state_p50_ms, low.state_p99_ms]
        for offset, (value, hatch, alpha) in enumerate(zip(values, ["", "", "//", "//"], [0.55, 1, 0.55, 1],
                                                           strict=True)):
            bars.bar(position + (offset - 1.5) * width, value, width,
                     color=COLORS.get(transport, "grey"), alpha=alpha, hatch=hatch, edgecolor="black", linewidth=0.4)
    lowest = {t: min((r for r in steps if r.transport == t), key=lambda r: r.rate_asked) for t in transports}
    bars.set_xticks(range(len(transports)), [f"{t}\n{lowest[t].rate_posted:.1f}/s posted" for t in transports],
                    fontsize=8)
    bars.set_yscale("log")
    bars.set_ylabel("latency, ms (log)")
    bars.set_title("At the lowest rate: chat p50, p99 (plain) | state p50, p99 (hatched)", fontsize=9)
    bars.grid(True, axis="y", alpha=0.3)
    for transport in transports:
        mine = sorted((r for r in steps if r.transport == transport), key=lambda r: r.rate_asked)
        color = COLORS.get(transport, "grey")
        xs = [r.rate_posted for r in mine]
        lines.plot(xs, [r.chat_p99_ms for r in mine], "-", marker="o", color=color, label=f"{transport} chat p99")
        lines.plot(xs, [r.state_p99_ms for r in mine], ":", marker=".", color=color, alpha=0.7,
                   label=f"{transport} state p99")
        fell = next((r for r in mine if r.behind), None)
        if fell is not None:
            lines.plot([fell.rate_posted], [fell.chat_p99_ms if not math.isnan(fell.chat_p99_ms) else 1.0], "X",
                       markersize=13, color=color, markeredgecolor="black")
            lines.annotate("behind", (fell.rate_posted, fell.chat_p99_ms), textcoords="offset points",
                           xytext=(6, 6), fontsize=7, color=color)
    lines.set_yscale("log")
    lines.set_xlabel("chat messages posted per second (one room)")
    lines.set_ylabel("p99 latency, ms (log)")
    lines.set_title("Chat p99 against message rate (X: delivery fell behind)", fontsize=9)
    lines.grid(True, which="both", alpha=0.3)
    lines.legend(fontsize=6, ncol=2)
    fig.suptitle("The log against the snapshot: chat messages and state versions on the same viewers")
    fig.tight_layout()
    return fig
