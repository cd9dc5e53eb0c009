"""HTTP/2 against HTTP/1.1 for SSE and long polling through make serve's nginx (issue 14).

    python -m loadtests.h2_compare --viewers 200 --seconds 20 --commands 20 --out DIR
    python -m loadtests.h2_compare ... --rtt-ms 0 50          # again behind loadtests.netem

One make serve (loadtests.serve_stack: nginx with TLS and HTTP/2, 2 uvicorn workers, Redis,
PostgreSQL); per repeat, transport and protocol a fresh room, N viewers through nginx's TLS
port and one command every ``seconds / commands`` s (POSTed through nginx's plain loopback
listener). HTTP/1.1: one TLS connection per viewer, requests on keep-alive. HTTP/2: viewers
share connections as a browser's tabs share one per origin: ``streams_per_connection`` (K,
default 6) viewers per connection, each its own stream. Both clients are lean asyncio
protocols on uvloop in their own process (``h2``'s state machine for HTTP/2, no httpx), and
take the receipt time before anything else; SSE is parsed after the run, a long poll's body
only as far as the next request needs.

Bytes: ``wire`` is what the kernel counted on the client sockets (tcp_info's
tcpi_bytes_received and tcpi_bytes_acked: TLS records, TCP payload without headers),
``decrypted`` the HTTP/1.1 or HTTP/2 bytes after TLS, both over the measured window only
(the handshakes are the ``setup`` column). CPU: 100 % = one core over the window.

This module holds the measurement and the CLI; the clients are loadtests.h2_clients, the
row, results.csv, meta.json, report.md and the plot loadtests.h2_report.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import psutil

from loadtests import netem, provenance
from loadtests.h2_clients import FIRST_STATE_TIMEOUT_S, PROTOCOLS, TRANSPORTS, ClientSpec, client_main
from loadtests.h2_report import H2Row, run_meta, write_outputs
from loadtests.probe import cpu_seconds
from loadtests.serve_stack import ROOT, ServeStack, percentile

# After the last command: long enough for its version to reach every viewer on a loaded machine.
GRACE_S = 2.0


def split_viewers(viewers: int, processes: int, per_connection: int) -> list[int]:
    """Viewers per client process, whole connections (browsers) each."""
    groups = math.ceil(viewers / per_connection)
    counts, left = [], viewers
    for index in range(processes):
        share = groups // processes + (index < groups % processes)
        counts.append(min(left, share * per_connection))
        left -= counts[-1]
    return [count for count in counts if count]


def _rss_mib(processes: Sequence[psutil.Process]) -> float:
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def _receive(pipe: Pipe, timeout_s: float) -> Any:
    if not pipe.poll(timeout_s):
        raise RuntimeError(f"a client process did not answer within {timeout_s:.0f} s")
    return pipe.recv()[1]


def measure_cell(stack: ServeStack, transport: str, protocol: str, *, viewers: int, seconds: float, commands: int,
                 streams_per_connection: int, processes: int, view_port: int, rtt_ms: float, repeat: int) -> H2Row:
    """N viewers of a fresh room on one transport and protocol while ``commands`` commands are posted."""
    slug = stack.create_room(f"h2 {transport} {protocol} r{repeat} rtt {rtt_ms:g}")
    nginx = [psutil.Process(pid) for pid in stack.nginx_pids()]
    workers = [psutil.Process(int(worker["pid"])) for worker in stack.worker_list()]
    rss_before = _rss_mib(nginx), _rss_mib(workers)
    per_connection = streams_per_connection if protocol == "h2" else 1
    context = multiprocessing.get_context("spawn")
    pipes, clients = [], []
    for count in split_viewers(viewers, processes, per_connection):
        parent, child = context.Pipe()
        spec = ClientSpec(view_port, f"127.0.0.1:{stack.port}", slug, transport, protocol, count, per_connection)
        process = context.Process(target=client_main, args=(spec, child), daemon=True)
        process.start()
        pipes.append(parent)
        clients.append(process)
    try:
        connected = sum(_receive(pipe, FIRST_STATE_TIMEOUT_S + 120) for pipe in pipes)
        time.sleep(1.0)  # the handshakes' work settles before the window opens
        for pipe in pipes:
            pipe.send("mark")
        for pipe in pipes:
            _receive(pipe, 30)
        groups = (nginx, workers, [psutil.Process(process.pid) for process in clients])
        cpu_before = [cpu_seconds(group) for group in groups]
        started, versions = time.monotonic(), []
        for index in range(commands):  # a fixed rate: each command at its own time, however long the last took
            time.sleep(max(0.0, started + index * seconds / commands - time.monotonic()))
            versions.append(stack.command(slug, float(index)))
        time.sleep(max(0.0, started + seconds - time.monotonic()) + GRACE_S + 2 * rtt_ms / 1000)
        elapsed = time.monotonic() - started
        cpu = [(cpu_seconds(group) - before) / elapsed * 100 for group, before in zip(groups, cpu_before, strict=True)]
        rss_after = _rss_mib(nginx), _rss_mib(workers)
        for pipe in pipes:
            pipe.send("stop")
        results = [_receive(pipe, 120) for pipe in pipes]
    finally:
        for process in clients:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    latencies: list[float] = []
    missed = 0
    for result in results:
        for per_viewer in result["latencies"]:
            found = [per_viewer[version] for version in versions if version in per_viewer]
            latencies += found
            missed += len(versions) - len(found)
    latencies.sort()
    links = [link for result in results for link in result["connections"]]
    wire_in, wire_out, decrypted = (sum(result["window"][i] for result in results) for i in range(3))
    per_viewer_min = 1 / 1024 / viewers / (elapsed / 60)
    return H2Row(
        repeat=repeat, rtt_ms=rtt_ms, transport=transport, protocol=protocol, viewers=viewers, connected=connected,
        streams_per_connection=per_connection, connections=len(links),
        alpn="|".join(sorted({link[0] for link in links})), tls="|".join(sorted({link[1] for link in links})),
        http_versions="|".join(sorted({link[2] for link in links})), commands=len(versions),
        delivered=len(latencies), expected=viewers * len(versions), missed=missed,
        errors=sum(result["errors"] + result["failed_connections"] for result in results),
        p50_ms=round(percentile(latencies, 0.5), 2), p99_ms=round(percentile(latencies, 0.99), 2),
        max_ms=round(latencies[-1] if latencies else -1.0, 2), window_s=round(elapsed, 2),
        wire_in_kib_per_viewer_min=round(wire_in * per_viewer_min, 3),
        decrypted_kib_per_viewer_min=round(decrypted * per_viewer_min, 3),
        wire_out_kib_per_viewer_min=round(wire_out * per_viewer_min, 3),
        setup_wire_kib_per_viewer=round(sum(result["setup_wire_in"] for result in results) / 1024 / viewers, 3),
        nginx_cpu_pct=round(cpu[0], 1), nginx_rss_mib=round(rss_after[0], 1),
        nginx_rss_delta_mib=round(rss_after[0] - rss_before[0], 1), workers_cpu_pct=round(cpu[1], 1),
        workers_rss_mib=round(rss_after[1], 1), workers_rss_delta_mib=round(rss_after[1] - rss_before[1], 1),
        client_cpu_pct=round(cpu[2], 1), client_processes=len(clients))


def run(viewers: int, seconds: float, commands: int, out: Path, *, transports: Sequence[str] = TRANSPORTS,
        protocols: Sequence[str] = PROTOCOLS, streams_per_connection: int = 6, processes: int = 1, repeat: int = 3,
        rtt_ms: Sequence[float] = (0.0,), workers: int = 2, command: str | None = None) -> list[H2Row]:
    """Every (RTT, transport, protocol) cell ``repeat`` times against one make serve; writes ``out``; the rows."""
    out.mkdir(parents=True, exist_ok=True)
    meta = run_meta(command or f"loadtests.h2_compare.run(viewers={viewers}, seconds={seconds}, commands={commands})",
                 viewers, seconds, commands, streams_per_connection, processes, repeat, rtt_ms, workers)
    rows: list[H2Row] = []
    stack = ServeStack(workers=workers).start()
    try:
        for rtt in rtt_ms:
            proxy, view_port = netem.start_process(stack.port, netem.Shape(rtt_ms=rtt)) if rtt else (None, stack.port)
            try:
                for index in range(repeat):
                    order = list(protocols) if index % 2 == 0 else list(protocols)[::-1]  # drift hits both alike
                    for transport in transports:
                        for protocol in order:
                            row = measure_cell(stack, transport, protocol, viewers=viewers, seconds=seconds,
                                               commands=commands, streams_per_connection=streams_per_connection,
                                               processes=processes, view_port=view_port, rtt_ms=rtt, repeat=index)
                            rows.append(row)
                            print(f"rtt {rtt:g} {transport} {protocol} r{index}: p50 {row.p50_ms} p99 {row.p99_ms} "
                                  f"missed {row.missed} connections {row.connections} wire "
                                  f"{row.wire_in_kib_per_viewer_min} KiB/viewer-min client CPU "
                                  f"{row.client_cpu_pct} %", flush=True)
                            time.sleep(1.0)  # the last cell's connections close
            finally:
                if proxy is not None:
                    proxy.kill()
                    proxy.wait()
    finally:
        stack.stop()
    meta["load average at end (1/5/15 min)"] = provenance.load_average()
    write_outputs(out, rows, meta)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="HTTP/2 against HTTP/1.1 for SSE and long polling through nginx.")
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0, help="the commands' span per cell")
    parser.add_argument("--commands", type=int, default=20, help="posted at a fixed rate over --seconds")
    parser.add_argument("--out", type=Path, help="the results folder (default loadtests/results/h2-compare-<time>)")
    parser.add_argument("--transports", nargs="+", choices=TRANSPORTS, default=list(TRANSPORTS))
    parser.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    parser.add_argument("--streams-per-connection", type=int, default=6,
                        help="HTTP/2 viewers per connection (at most nginx's 128 concurrent streams)")
    parser.add_argument("--processes", type=int, default=1, help="client processes per cell")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rtt-ms", type=float, nargs="+", default=[0.0],
                        help="round trips to run at (0: loopback; others through loadtests.netem)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers behind nginx")
    args = parser.parse_args(argv)
    if not 1 <= args.streams_per_connection <= 128:
        parser.error("--streams-per-connection must be 1 to 128 (nginx's http2_max_concurrent_streams)")
    if args.viewers < 1 or args.commands < 1 or args.seconds <= 0:
        parser.error("--viewers, --commands and --seconds must be positive")
    out = args.out or ROOT / "loadtests" / "results" / f"h2-compare-{datetime.now(UTC):%Y-%m-%d-%H%M%S}"
    command = "python -m loadtests.h2_compare " + shlex.join(sys.argv[1:] if argv is None else argv)
    run(args.viewers, args.seconds, args.commands, out, transports=args.transports, protocols=args.protocols,
        streams_per_connection=args.streams_per_connection, processes=args.processes, repeat=args.repeat,
        rtt_ms=args.rtt_ms, workers=args.workers, command=command)
    print(f"wrote {out / 'results.csv'}, {out / 'report.md'} and {out / 'h2_vs_h1.png'}")


if __name__ == "__main__":
    main()
