"""``python -m loadtests run|report|ui``: the transport lab's command line.

run     sweep transports x viewers x servers x layers (plus the floor) and write a dated folder
report  rewrite report.md and the plots of a folder from its results.csv and cdf.csv
compare print, per point, the ratios to the floor that moved between two folders by more than the noise
ui      start one vsync server and locust's web UI against it (http://127.0.0.1:8089)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


def _missing_lab_tools() -> list[str]:
    missing = []
    for name in ("locust", "matplotlib", "python-socketio"):
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    return missing


# The lab's tools come with the lab extra (and dev, which includes it): one line that says so, not a traceback.
if _missing_lab_tools():
    sys.exit(f"the transport lab needs {' and '.join(_missing_lab_tools())} (the lab extra): run "
             f"{sys.executable} -m pip install -e '.[dev]'   (make bench does it too)")

from loadtests import netem, provenance  # noqa: E402
from loadtests.report import rewrite_report  # noqa: E402
from loadtests.runner import (  # noqa: E402
    FLOOR,
    PROBE_FROM_VIEWERS,
    ROOT,
    VIEWER_CLASSES,
    RunSpec,
    Servers,
    Settings,
    create_room,
    parallel_runs,
    stop_process,
    sweep,
)

RESULTS = ROOT / "loadtests" / "results"
# socketio: the lab's peer row (loadtests.socketio_app), the article's own stack on the same rooms.
ALL = ("poll", "longpoll", "sse", "ws", "socketio")
MEMORY, REDIS, UVICORN = ("daphne", "memory"), ("daphne", "redis"), ("uvicorn", "memory")


@dataclass(frozen=True)
class Block:
    """Part of a sweep: these transports x viewer counts x (server, layer) configurations, as repeat ``repeat``."""

    transports: tuple[str, ...]
    viewers: tuple[int, ...]
    configs: tuple[tuple[str, str], ...]
    repeat: int = 0
    idle_s: float = 0.0  # > 0: idle runs of this length (no commands, no floor)
    # (rtt ms, jitter ms, bandwidth kbit/s) between the load generator and the servers; (0, 0, 0): loopback
    networks: tuple[tuple[float, float, float], ...] = ((0.0, 0.0, 0.0),)
    processes: tuple[int, ...] = (0,)  # server processes of each Redis configuration; 0: --redis-processes


# The standard sweep (make bench), sized for this 2-core machine and 45 minutes:
# - one process on loopback: every row (the socketio peer row too) at 200 and 1,000 viewers on daphne
#   and on uvicorn, then the push rows at 1,000 twice more (the goals are read from three passes);
# - networks: the four transports at 200 viewers on uvicorn at 50, 150 and 300 ms RTT with 10 % jitter
#   (their RTT 0 points are the first block's);
# - scale-out on Redis (uvicorn): SSE and WebSocket at 5,000 viewers on 1 and 4 processes and at
#   20,000 on 4;
# - idle: 20 s per row (keep-alives, short polls; runs of 12 s).
# After the runs, the log discipline (loadtests.chat_probe) and HTTP/2 against HTTP/1.1 through
# make serve's proxy (loadtests.h2_compare) write their own folders inside the sweep's.
PUSH = ("longpoll", "sse", "ws")
UVICORN_REDIS = ("uvicorn", "redis")
STANDARD_RTTS_MS = (0.0, 50.0, 150.0, 300.0)  # --network standard
STANDARD_JITTER = 0.10
STANDARD_NETWORKS = tuple((rtt, rtt * STANDARD_JITTER, 0.0) for rtt in STANDARD_RTTS_MS if rtt)
STANDARD_BLOCKS = (
    Block(ALL, (200, 1000), (MEMORY, UVICORN)),
    Block(PUSH, (1000,), (MEMORY, UVICORN), repeat=1),
    Block(PUSH, (1000,), (MEMORY, UVICORN), repeat=2),
    Block(("poll", "longpoll", "sse", "ws"), (200,), (UVICORN,), networks=STANDARD_NETWORKS),
    Block(("sse", "ws"), (5000,), (UVICORN_REDIS,), processes=(1, 4)),
    Block(("sse", "ws"), (20000,), (UVICORN_REDIS,), processes=(4,)),
    Block(ALL, (200,), (MEMORY,), idle_s=20.0),
)
STANDARD_DURATION_S = 12.0
STANDARD_META = {
    "sweep": "the standard sweep (make bench): one process on loopback, every row at 200 and 1,000 viewers on "
             "daphne and uvicorn (in memory); the push rows at 1,000 in three passes (repeats 0-2); the four "
             "transports at 200 viewers on uvicorn behind loadtests.netem; SSE and WebSocket on uvicorn and Redis "
             "at 5,000 viewers on 1 and 4 processes and at 20,000 on 4; 20 s idle runs at 200 viewers",
    "network": "loopback, except the network rows: loadtests.netem (a user-space TCP proxy per server, its own "
               "process) at RTT " + ", ".join(f"{r:g} ± {j:g} ms" for r, j, _ in STANDARD_NETWORKS)
               + "; their floors behind the same proxy. " + netem.PACKET_LOSS,
    "other disciplines": "log/ (chat on every transport: loadtests.chat_probe, its own report.md and plot) and "
                         "h2/ (HTTP/2 against HTTP/1.1 through make serve's nginx: loadtests.h2_compare), "
                         "run after these rows",
    "Redis layer": "the scale-out rows only: 1 or 4 uvicorn processes + redis-server, viewers spread evenly; "
                   "floors over 10,000 viewers run as several floor processes (the open-files limit), each "
                   "command sent to all",
}


def csv_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def plan(blocks: Iterable[Block], floor: bool) -> list[RunSpec]:
    """Every run in order; with ``floor``, each (transport, viewers, repeat) also runs once on the floor."""
    specs: list[RunSpec] = []
    floors: set[tuple[str, int, int, tuple[float, float, float]]] = set()
    for block in blocks:
        for network in block.networks:
            for count in block.viewers:
                for server, layer in block.configs:
                    for processes in block.processes if layer == "redis" else (0,):
                        specs += [RunSpec(t, count, server, layer, block.repeat, block.idle_s, *network,
                                          processes=processes) for t in block.transports]
                if floor and not block.idle_s:
                    for transport in block.transports:
                        if (transport, count, block.repeat, network) not in floors:
                            floors.add((transport, count, block.repeat, network))
                            specs.append(RunSpec(transport, count, FLOOR, FLOOR, block.repeat, 0.0, *network))
    return specs


def with_clients(specs: list[RunSpec], choice: str) -> list[RunSpec]:
    """``auto``: the lean probe from PROBE_FROM_VIEWERS viewers (locust is client-bound there), locust below;
    ``both``: every run with each client, so that the report shows both where both ran."""
    if choice == "both":
        return [dataclasses.replace(spec, client=client) for spec in specs for client in ("locust", "probe")]
    if choice == "auto":
        return [dataclasses.replace(spec, client="probe" if spec.viewers >= PROBE_FROM_VIEWERS else "locust")
                for spec in specs]
    return [dataclasses.replace(spec, client=choice) for spec in specs]


def networks_of(args: argparse.Namespace) -> tuple[tuple[float, float, float], ...]:
    """The (rtt, jitter, bandwidth) of each run from ``--network``, ``--rtt-ms``, ``--jitter-ms``, ``--bandwidth-kbps``.

    A jitter written as a percentage (``10%``) is that share of each RTT.
    """
    if args.network == "standard":
        rtts, jitter = list(STANDARD_RTTS_MS), f"{STANDARD_JITTER * 100:g}%"
    else:
        rtts, jitter = [float(v) for v in csv_list(args.rtt_ms or "0")], args.jitter_ms or "0"
    bandwidths = [float(v) for v in csv_list(args.bandwidth_kbps or "0")]
    networks = []
    for rtt in rtts:
        spread = rtt * float(jitter[:-1]) / 100 if jitter.endswith("%") else float(jitter)
        for bandwidth in bandwidths:
            try:
                netem.Shape(rtt, spread, bandwidth)
            except ValueError as exc:
                sys.exit(f"--rtt-ms {rtt:g} --jitter-ms {jitter} --bandwidth-kbps {bandwidth:g}: {exc}")
            networks.append((rtt, spread, bandwidth))
    return tuple(networks)


def floor_available() -> bool:
    return (ROOT / "loadtests" / "floor.py").exists()


def cmd_run(args: argparse.Namespace) -> int:
    floor = args.floor if args.floor is not None else floor_available()
    if floor and not floor_available():
        sys.exit("--floor needs loadtests/floor.py")
    if args.standard:
        blocks: list[Block] = list(STANDARD_BLOCKS)
        args.duration = args.duration or STANDARD_DURATION_S
    else:
        transports = tuple(csv_list(args.transports or ",".join(ALL)))
        unknown = set(transports) - set(VIEWER_CLASSES)
        if unknown:
            sys.exit(f"unknown transports: {', '.join(sorted(unknown))}")
        viewers = tuple(int(v) for v in csv_list(args.viewers or "50"))
        configs = tuple((server, layer) for server in csv_list(args.servers or "daphne")
                        for layer in csv_list(args.layers or "memory"))
        blocks = [Block(transports, viewers, configs, repeat, args.idle) for repeat in range(args.repeats)]
    networks = networks_of(args)
    if networks != ((0.0, 0.0, 0.0),):
        blocks = [dataclasses.replace(block, networks=networks) for block in blocks]
    if args.processes:
        counts = tuple(int(v) for v in csv_list(args.processes))
        if not counts or min(counts) < 1:
            sys.exit("--processes: comma-separated counts of at least 1, e.g. 1,2,4")
        if not any(layer == "redis" for block in blocks for _, layer in block.configs):
            sys.exit("--processes needs --layers redis (the in-memory layer serves one process only)")
        blocks = [dataclasses.replace(block, processes=counts) for block in blocks]
    specs = with_clients(plan(blocks, floor), args.client)
    now = dt.datetime.now(dt.UTC)
    out = Path(args.out) if args.out else RESULTS / (now.strftime("%Y-%m-%d") if args.standard
                                                    else now.strftime("%Y-%m-%d-%H%M%S"))
    settings = Settings(duration_s=args.duration or 20.0, command_rate=args.command_rate,
                        poll_interval=args.poll_interval, longpoll_timeout=args.longpoll_timeout,
                        redis_processes=args.redis_processes, locust_processes=args.locust_processes,
                        parallel=args.parallel, quiet=args.quiet)
    at_once = parallel_runs(specs, settings)
    meta = {"date": now.strftime("%Y-%m-%d %H:%M UTC"), "command": "python -m loadtests " + shlex.join(sys.argv[1:]),
            "commit": provenance.commit(),
            "machine": f"{platform.node()}, {os.cpu_count()} CPUs, {platform.machine()}, Python "
                       f"{platform.python_version()}, locust {metadata.version('locust')}",
            "load average at start (1/5/15 min)": provenance.load_average(),
            "runs": len(specs), "run duration s": settings.duration_s,
            "commands per second (busy)": settings.command_rate, "short-poll interval s": settings.poll_interval,
            "long-poll timeout s": settings.longpoll_timeout,
            "Redis layer": f"{settings.redis_processes} server processes + redis-server, viewers spread evenly",
            "locust processes": settings.locust_processes or "1 per 1,000 viewers (at most one per CPU)",
            "load generator": {"auto": f"locust below {PROBE_FROM_VIEWERS:,} viewers, the lean probe "
                                       "(loadtests.probe_driver, uvloop, 1 process per 2,500 viewers) from there",
                               "both": "every run with locust and again with the lean probe (loadtests.probe_driver)",
                               "probe": "the lean probe (loadtests.probe_driver, uvloop, 1 process per 2,500 "
                                        "viewers)", "locust": "locust"}[args.client],
            "server CPU and RSS": "summed over the server processes (and redis-server on the Redis layer); "
                                  "CPU 100 % = one core, averaged over the busy window",
            "floor": "loadtests/floor.py" if floor else "none (loadtests/floor.py not present)",
            "network": "loopback" if networks == ((0.0, 0.0, 0.0),) else
                       "loadtests.netem (a user-space TCP proxy per server, its own process) between the load "
                       "generator and each server: " + "; ".join(
                           f"RTT {r:g} ± {j:g} ms" + (f", {b:g} kbit/s" if b else "") for r, j, b in networks)
                       + ". The floor runs behind the same proxy. " + netem.PACKET_LOSS,
            "runs at once": "1 (each run alone on the machine)" if at_once == 1 else
                            f"{at_once}, side by side, each with its own servers and locust (small runs; "
                            "for capacity figures use --parallel 1)"}
    if args.standard:
        meta.update(STANDARD_META)
    print(f"{len(specs)} runs of {settings.duration_s:.0f} s, {at_once} at a time, into {out}", flush=True)
    rows = sweep(specs, settings, out, meta)
    meta["load average at end (1/5/15 min)"] = provenance.load_average()
    if rows:
        rewrite_report(out, meta)
    print(f"wrote {out / 'results.csv'}, {out / 'report.md'} and plots ({len(rows)}/{len(specs)} runs)")
    extras_ok = standard_extras(out) if args.standard else True
    return 0 if len(rows) == len(specs) and extras_ok else 1


# The standard sweep's other disciplines, each in a folder of its own inside the sweep's: the log
# (chat on every transport, 100 viewers, three posting rates) and HTTP/2 against HTTP/1.1 through
# make serve's nginx (SSE and long polling, 200 viewers, 10 s and 20 commands per cell, two passes).
STANDARD_LOG = {"transports": ["poll", "longpoll", "sse", "ws"], "viewers": 100, "rates": [5.0, 20.0, 50.0],
                "seconds": 8.0}
STANDARD_H2 = {"viewers": 200, "seconds": 10.0, "commands": 20, "repeat": 2}


def standard_extras(out: Path) -> bool:
    """The log discipline and HTTP/2 against HTTP/1.1 after the runs; True when both ran whole."""
    from loadtests import chat_probe, h2_compare

    log = STANDARD_LOG
    print(f"the log discipline: chat on {', '.join(log['transports'])} into {out / 'log'}", flush=True)
    chat_rows = chat_probe.run(log["transports"], log["viewers"], log["rates"], log["seconds"], out / "log",
                               procs=1)
    h2 = STANDARD_H2
    print(f"HTTP/2 against HTTP/1.1 through nginx into {out / 'h2'}", flush=True)
    h2_rows = h2_compare.run(h2["viewers"], h2["seconds"], h2["commands"], out / "h2", repeat=h2["repeat"],
                             command="python -m loadtests run --standard (loadtests.__main__.STANDARD_H2)")
    return (len(chat_rows) == len(log["transports"]) * len(log["rates"])
            and len(h2_rows) == len(h2_compare.TRANSPORTS) * len(h2_compare.PROTOCOLS) * h2["repeat"])


def cmd_report(args: argparse.Namespace) -> int:
    files = rewrite_report(Path(args.dir))
    print(f"rewrote {Path(args.dir) / 'report.md'} and {len(files)} plots")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from loadtests.compare import main as compare_main

    return compare_main(args.old_dir, args.new_dir)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_ui(args: argparse.Namespace) -> int:
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="vsync-ui-") as tmp:
        spec = RunSpec("ws", 0, args.server, "memory")
        servers = Servers(spec, Path(tmp), settings)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                       env=servers.env(), check=True)
        servers.start()
        room = create_room(servers.urls[0], "ui")
        print(f"server {servers.urls[0]}, room {room}; locust web UI on http://127.0.0.1:{args.web_port}")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        locust = subprocess.Popen([sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
                                   "--host", servers.urls[0], "--vsync-room", room, "--class-picker",
                                   "--web-host", "127.0.0.1", "--web-port", str(args.web_port)],
                                  cwd=ROOT, env=env, start_new_session=True)
        try:
            locust.wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop_process(locust)
            servers.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a sweep")
    run.add_argument("--standard", action="store_true", help="the standard sweep (make bench); ignores the "
                     "transports, viewers, servers, layers and repeats options")
    run.add_argument("--transports", help="comma-separated: poll,longpoll,sse,ws,socketio")
    run.add_argument("--viewers", help="comma-separated viewer counts, e.g. 50,200,1000")
    run.add_argument("--servers", help="comma-separated: daphne,uvicorn")
    run.add_argument("--layers", help="comma-separated: memory,redis")
    run.add_argument("--duration", type=float, help="seconds per run (ramp-up, idle, busy, tail)")
    run.add_argument("--repeats", type=int, default=1, help="passes over every point")
    run.add_argument("--idle", type=float, default=0.0, metavar="S",
                     help="idle runs of S seconds (no commands) instead of busy runs")
    run.add_argument("--command-rate", type=float, default=2.0, help="commands per second in the busy window")
    run.add_argument("--poll-interval", type=float, default=1.0)
    run.add_argument("--longpoll-timeout", type=float, default=25.0)
    run.add_argument("--redis-processes", type=int, default=2)
    run.add_argument("--locust-processes", type=int, default=0, help="0: one per 1,000 viewers")
    run.add_argument("--parallel", type=int, default=0, metavar="N",
                     help="runs at once (0: all of them when the sweep totals at most 500 viewers, else 1)")
    run.add_argument("--floor", action=argparse.BooleanOptionalAction, default=None,
                     help="add floor rows (default: when loadtests/floor.py exists)")
    run.add_argument("--rtt-ms", help="comma-separated round trips added by loadtests.netem, e.g. 0,50,150")
    run.add_argument("--jitter-ms", help="± jitter on the round trip, in ms or as a share of it (10%%)")
    run.add_argument("--bandwidth-kbps", help="comma-separated link rates per connection and direction (0: none)")
    run.add_argument("--network", choices=["standard"], help="standard: RTT 0, 50, 150 and 300 ms, 10 %% jitter")
    run.add_argument("--processes", help="scale-out: comma-separated server process counts on the Redis layer, "
                     "e.g. 1,2,4 (viewers spread evenly over them)")
    run.add_argument("--client", choices=["auto", "probe", "locust", "both"], default="auto",
                     help=f"the load generator (auto: loadtests.probe_driver from {PROBE_FROM_VIEWERS:,} viewers, "
                          "locust below; both: every run with each)")
    run.add_argument("--out", help="output folder (default loadtests/results/<date>)")
    run.add_argument("--quiet", action="store_true")
    run.set_defaults(handler=cmd_run)
    report = sub.add_parser("report", help="rewrite report.md and plots from a results folder")
    report.add_argument("dir")
    report.set_defaults(handler=cmd_report)
    compare = sub.add_parser("compare", help="the ratios to the floor that moved by more than the noise (exit 1 "
                             "when one got worse)")
    compare.add_argument("old_dir")
    compare.add_argument("new_dir")
    compare.set_defaults(handler=cmd_compare)
    ui = sub.add_parser("ui", help="a server plus locust's web UI")
    ui.add_argument("--server", default="daphne", choices=["daphne", "uvicorn"])
    ui.add_argument("--web-port", type=int, default=8089)
    ui.set_defaults(handler=cmd_ui)
    args = parser.parse_args(argv)
    # Ctrl-C or a plain kill both end with the servers and locust stopped (the finally blocks).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
