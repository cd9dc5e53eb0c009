"""loadtests.h2_compare's results: the row of one cell, results.csv, meta.json, report.md and the plot."""

from __future__ import annotations

import csv
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from loadtests import netem, provenance
from loadtests.h2_clients import PROTOCOLS
from loadtests.serve_stack import ROOT


@dataclass
class H2Row:
    """One (repeat, RTT, transport, protocol) cell; bytes per viewer-minute are over the window."""

    repeat: int
    rtt_ms: float
    transport: str
    protocol: str
    viewers: int
    connected: int
    streams_per_connection: int
    connections: int
    alpn: str
    http_versions: str
    tls: str
    commands: int
    delivered: int
    expected: int
    missed: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    window_s: float
    wire_in_kib_per_viewer_min: float
    decrypted_kib_per_viewer_min: float
    wire_out_kib_per_viewer_min: float
    setup_wire_kib_per_viewer: float
    nginx_cpu_pct: float
    nginx_rss_mib: float
    nginx_rss_delta_mib: float
    workers_cpu_pct: float
    workers_rss_mib: float
    workers_rss_delta_mib: float
    client_cpu_pct: float
    client_processes: int


def run_meta(command: str, viewers: int, seconds: float, commands: int, streams_per_connection: int, processes: int,
             repeat: int, rtt_ms: Sequence[float], workers: int) -> dict[str, Any]:
    """What meta.json and the report's table say about the run: its command, machine, stack and method."""

    def output(*argv: str) -> str:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        return (done.stdout + done.stderr).strip()

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "command": command,
        "commit": provenance.commit(),
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}, "
                   f"Python {platform.python_version()}",
        "load average at start (1/5/15 min)": provenance.load_average(),
        "stack": f"make serve (loadtests.serve_stack): {output('nginx', '-v').removeprefix('nginx version: ')}, "
                 f"{workers} uvicorn workers, Redis, PostgreSQL",
        "viewers": viewers, "seconds": seconds, "commands": commands, "command interval s": seconds / commands,
        "HTTP/1.1": "one TLS connection per viewer (ALPN http/1.1), requests on keep-alive",
        "HTTP/2": f"{streams_per_connection} viewers per TLS connection (ALPN h2), a stream each: a browser's tabs "
                  "sharing its one connection to the origin",
        "client": f"asyncio protocols on uvloop, h2 {metadata.version('h2')} for HTTP/2, {processes} process(es) "
                  "per cell; receipt time taken first",
        "repeats": f"{repeat}, protocols in alternating order; tables give median (min to max)",
        "network": "loopback" if not any(rtt_ms) else
                   "loopback, and loadtests.netem between the viewers and nginx at RTT " + ", ".join(
                       f"{rtt:g}" for rtt in rtt_ms if rtt) + " ms. " + netem.PACKET_LOSS,
        "bytes": "wire: TCP payload bytes the kernel counted on the client sockets (tcp_info bytes_received and "
                 "bytes_acked: TLS records); decrypted: HTTP/1.1 or HTTP/2 bytes after TLS; both over the window "
                 "(the commands plus the grace), per viewer-minute; setup: wire bytes in until the window "
                 "(handshake, response head, first state), per viewer",
        "CPU and RSS": "nginx: master and workers; workers: the uvicorn processes; 100 % = one core over the "
                       "window; RSS after the window, delta = since before the viewers connected (not a fresh process)",
        "latency": "receipt time minus the version's changed_ms, for every posted version at every viewer",
        "floor": "none: loadtests.floor speaks neither TLS nor HTTP/2; the HTTP/2 to HTTP/1.1 ratio, measured in "
                 "the same run and the same client, is the comparison",
    }


# -- results, report and plot -----------------------------------------------------------------

COLUMNS = [("connections", "connections", "{:.0f}"), ("p50_ms", "p50 ms", "{:.1f}"), ("p99_ms", "p99 ms", "{:.1f}"),
           ("max_ms", "max ms", "{:.1f}"), ("wire_in_kib_per_viewer_min", "wire in KiB/viewer-min", "{:.2f}"),
           ("decrypted_kib_per_viewer_min", "decrypted KiB/viewer-min", "{:.2f}"),
           ("wire_out_kib_per_viewer_min", "wire out KiB/viewer-min", "{:.2f}"),
           ("setup_wire_kib_per_viewer", "setup KiB/viewer", "{:.2f}"), ("nginx_cpu_pct", "nginx CPU %", "{:.1f}"),
           ("nginx_rss_delta_mib", "nginx RSS Δ MiB", "{:.1f}"), ("workers_cpu_pct", "workers CPU %", "{:.1f}"),
           ("workers_rss_delta_mib", "workers RSS Δ MiB", "{:.1f}"), ("client_cpu_pct", "client CPU %", "{:.1f}")]


def write_outputs(out: Path, rows: list[H2Row], meta: dict[str, Any]) -> None:
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, [f.name for f in fields(H2Row)])
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    plot(out / "h2_vs_h1.png", rows)
    (out / "report.md").write_text(render_report(rows, meta))


def _cells(rows: list[H2Row]) -> dict[tuple[float, str, str], list[H2Row]]:
    cells: dict[tuple[float, str, str], list[H2Row]] = {}
    for row in rows:
        cells.setdefault((row.rtt_ms, row.transport, row.protocol), []).append(row)
    return cells


def _median(rows: list[H2Row], name: str) -> float:
    return float(statistics.median(float(getattr(row, name)) for row in rows))


def _spread(rows: list[H2Row], name: str, style: str) -> str:
    values = [float(getattr(row, name)) for row in rows]
    if len(values) == 1:
        return style.format(values[0])
    return f"{style.format(statistics.median(values))} ({style.format(min(values))} to {style.format(max(values))})"


def _ratio(new: float, old: float) -> str:
    return f"x{new / old:.2f}" if old > 0 else "-"


def render_report(rows: list[H2Row], meta: dict[str, Any]) -> str:
    out = [f"# HTTP/2 against HTTP/1.1 through make serve's nginx, {meta.get('date', '')}", "",
           f"Command: `{meta.get('command', '')}`", "", "| | |", "|---|---|"]
    out += [f"| {key} | {value} |" for key, value in meta.items() if key not in ("command", "date")]
    cells = _cells(rows)
    for rtt, transport in dict.fromkeys((rtt, transport) for rtt, transport, _ in cells):
        out += ["", f"## {transport}, " + ("loopback" if not rtt else f"RTT {rtt:g} ms (loadtests.netem)"), "",
                "| protocol | ALPN / HTTP | delivered / expected | missed | errors | "
                + " | ".join(title for _, title, _ in COLUMNS) + " |", "|---" * (5 + len(COLUMNS)) + "|"]
        protocols = [protocol for r, t, protocol in cells if (r, t) == (rtt, transport)]
        for protocol in protocols:
            group = cells[(rtt, transport, protocol)]
            out.append(f"| {protocol} | {group[0].alpn} / {group[0].http_versions} "
                       f"| {sum(r.delivered for r in group)} / {sum(r.expected for r in group)} "
                       f"| {sum(r.missed for r in group)} | {sum(r.errors for r in group)} | "
                       + " | ".join(_spread(group, name, style) for name, _, style in COLUMNS) + " |")
        if set(PROTOCOLS) <= set(protocols):
            h1, h2_rows = cells[(rtt, transport, "http/1.1")], cells[(rtt, transport, "h2")]
            out.append("| h2 / http/1.1 | | | | | " + " | ".join(
                _ratio(_median(h2_rows, name), _median(h1, name)) for name, _, _ in COLUMNS) + " |")
    out += ["", "![p50/p99, bytes and CPU per transport and protocol](h2_vs_h1.png)", "", "## Reading", "",
            reading(rows), ""]
    return "\n".join(out)


def reading(rows: list[H2Row]) -> str:
    """What the medians say, in sentences generated from them (the same run, so ratios hold on a noisy machine)."""
    cells, said = _cells(rows), []
    for rtt, transport in dict.fromkeys((rtt, transport) for rtt, transport, _ in cells):
        h1, h2_rows = cells.get((rtt, transport, "http/1.1")), cells.get((rtt, transport, "h2"))
        if not (h1 and h2_rows):
            continue

        def both(name: str, unit: str, h1: list[H2Row] = h1, h2_rows: list[H2Row] = h2_rows) -> str:
            new, old = _median(h2_rows, name), _median(h1, name)
            return f"{new:.1f} against {old:.1f}{unit} ({_ratio(new, old)})"

        where = "on loopback" if not rtt else f"at {rtt:g} ms RTT"
        said.append(
            f"**{transport}** {where}: HTTP/2 served {h2_rows[0].viewers} viewers over "
            f"{_median(h2_rows, 'connections'):.0f} connections against {_median(h1, 'connections'):.0f}; "
            f"p50 {both('p50_ms', ' ms')}, p99 {both('p99_ms', ' ms')}; "
            f"wire bytes in {both('wire_in_kib_per_viewer_min', ' KiB')} per viewer-minute, out "
            f"{both('wire_out_kib_per_viewer_min', ' KiB')}, setup {both('setup_wire_kib_per_viewer', ' KiB')} "
            f"per viewer; nginx CPU {both('nginx_cpu_pct', ' %')}, workers {both('workers_cpu_pct', ' %')}, "
            f"client {both('client_cpu_pct', ' %')}, that is {client_ms(h2_rows):.0f} against "
            f"{client_ms(h1):.0f} ms of client CPU per version.")
    missed = sum(row.missed for row in rows)
    said.append("Every posted version reached every viewer in every cell." if not missed else
                f"{missed} of {sum(row.expected for row in rows)} deliveries were missed (see the tables).")
    # A version's deliveries come as one burst: the client's CPU per version is how late its last
    # viewers can read it, whatever its average load; a burst near the p50 makes the p50 the client's.
    bound = [f"{transport} {protocol} ({client_ms(group):.0f} ms a version, p50 {_median(group, 'p50_ms'):.0f} ms)"
             for (_, transport, protocol), group in cells.items()
             if client_ms(group) > _median(group, "p50_ms") / 4]
    busiest = max((row.client_cpu_pct for row in rows), default=0.0)
    said.append(f"The client used at most {busiest:.0f} % of a core per cell on average. "
                + ("Its work per version is a sizeable part of the latency in " + ", ".join(bound)
                   + ": there the figure is partly the client's (--processes splits the client, but on 2 cores "
                   "shared with nginx, the workers and Redis it only moves the contention)."
                   if bound else "Its work per version stays under a quarter of every p50, so it was not the "
                   "bottleneck.")
                + " On 2 shared cores the absolute times describe the machine's load as much as the stack; the "
                  "ratios, measured in the same run, less so.")
    return "\n\n".join(said)


def client_ms(rows: list[H2Row]) -> float:
    """The client's CPU per posted version (ms): its burst of work when a version reaches every viewer."""
    return float(statistics.median(row.client_cpu_pct / 100 * row.window_s * 1000 / max(1, row.commands)
                                   for row in rows))


def plot(path: Path, rows: list[H2Row]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = _cells(rows)
    labels = [f"{transport}\n{protocol}" + (f"\n{rtt:g} ms" if rtt else "") for rtt, transport, protocol in cells]
    groups = list(cells.values())
    xs = range(len(groups))
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    panels = [("delivery latency (ms)", [("p50_ms", "p50"), ("p99_ms", "p99")]),
              ("KiB per viewer-minute", [("wire_in_kib_per_viewer_min", "wire in (TLS)"),
                                         ("decrypted_kib_per_viewer_min", "decrypted in"),
                                         ("wire_out_kib_per_viewer_min", "wire out (TLS)")]),
              ("CPU % of one core", [("nginx_cpu_pct", "nginx"), ("workers_cpu_pct", "uvicorn workers"),
                                     ("client_cpu_pct", "client")])]
    for axis, (title, series) in zip(axes, panels, strict=True):
        width = 0.8 / len(series)
        for offset, (name, label) in enumerate(series):
            axis.bar([x + (offset - (len(series) - 1) / 2) * width for x in xs],
                     [_median(group, name) for group in groups], width, label=label)
        axis.set_xticks(list(xs), labels)
        axis.set_title(title)
        axis.legend(fontsize="small")
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle(f"HTTP/2 against HTTP/1.1 through nginx: {rows[0].viewers if rows else 0} viewers, medians")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)

