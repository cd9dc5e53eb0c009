"""Sync accuracy: how far apart real browsers show the same room, and how soon they agree after a command.

Run by hand (not part of the test suite):

    .venv/bin/python -m loadtests.sync_accuracy --seconds 60 --pages 3
    .venv/bin/python -m loadtests.sync_accuracy --layout mixed --cpu-throttle 4 --seconds 40

Starts its own server, optionally behind a delay proxy, and opens Chromium pages: ``--pages``
per transport (``per-transport``), or one room with one page per transport, one of them with
a skewed clock (``mixed``, as the browser test). It plays, then alternates seeks and rate
changes every ``--command-every`` seconds. Every page records ``video.currentTime`` about
every 20 ms, stamped with the machine's clock in the same task; positions are compared on a
50 ms grid (each page's median of the readings within 80 ms, carried to the grid instant).
Per command it reports the spread between pages and the worst offset from the room's
position 3.5 s after the room changed (the server accepted the command), how long until all
pages were within 20 ms and stayed there, the worst gap between pages after the start (from
when every page had the version and the start had come), and how many seeks and nudges each
page made; "steady" is the grid from 3 s after each command on. ``--cpu-throttle`` slows every
page's renderer through Chromium's Emulation.setCPUThrottlingRate (DevTools' "mid-tier mobile"
preset is 4); with ``--throttled one`` (mixed layout) one page at a time is slowed, a room per
transport, the others left at full speed.

Why ``--throttled one``: DevTools' throttling busy-waits. A thread of the renderer signals its main
thread every 200 µs, and the signal handler spins for (rate - 1) times the time since it last
returned, idle time included (Chromium's third_party/blink/renderer/platform/scheduler/common/
thread_cpu_throttler.cc). So a page slowed 4x keeps about three quarters of a core busy even when
idle, and four of them need three cores: on a 2-core machine they starve the server and each
other, and measure the host, not the page (README, "Sync accuracy").
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from playwright.sync_api import sync_playwright

from rooms.state import RoomState
from tests.e2e.proxy import DelayProxy
from tests.e2e.support import CHROMIUM, CHROMIUM_ARGS, open_viewer
from tests.support.servers import LiveServer, migrate, server_env

TRANSPORTS = ["poll", "longpoll", "sse", "ws"]
# The moment the issue reads the pages at, after each command.
READ_AFTER_S = 3.5
# Grid points this soon after a command show convergence, not steady-state agreement.
SETTLE_S = 3.0
AGREEMENT_MS = 20.0
# What analyse() reads off the grid for every instant, pooled over a room's commands.
SERIES = ("pairwise_ms", "offsets_ms", "pairwise_steady_ms", "offsets_steady_ms")
GRID_MS = 50.0
# Each grid value is the median of a page's readings this close to it, carried to the instant:
# Chromium's currentTime moves in steps of a few ms while the pitch-preserving stretcher runs.
WINDOW_MS = 80.0

RECORDER_JS = """() => {
  const v = document.querySelector('video');
  window.__vsyncTrace = [];
  setInterval(() => window.__vsyncTrace.push(
    [window.__realNow(), v.currentTime, v.paused || v.seeking, v.playbackRate, vsync.engine.version]), 20);
}"""
TAKE_TRACE_JS = """() => {
  const trace = window.__vsyncTrace; window.__vsyncTrace = [];
  const e = vsync.engine;
  return {trace, engine_trace: e.trace, version: e.version, seeks: e.seeks, nudges: e.nudges,
          seek_latency_ms: e.seekLatencyMs, start_latency_ms: e.startLatencyMs, timer_late_ms: e.timerLateMs,
          last_seek_took_ms: e.lastSeekTookMs, last_start_ms: e.lastStartMs};
}"""


def steal_pct(before: Any, after: Any) -> float:
    """The share of the machine's CPU time the hypervisor gave to other machines between two
    ``psutil.cpu_times()`` readings: on this shared VM it was 20-55 % during browser runs, and a page
    starved that way is not the engine's."""
    # guest time is inside user and nice already (Linux), so it is not added again.
    fields = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    spent = sum(getattr(after, f) - getattr(before, f) for f in fields)
    return round(100.0 * (after.steal - before.steal) / spent, 1) if spent > 0 else 0.0


def quantiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "p50": round(pick(0.5), 1), "p95": round(pick(0.95), 1), "max": round(ordered[-1], 1)}


def position_at(trace: list[list], t_ms: float) -> float | None:
    """A page's position at ``t_ms``: the median of its readings near it, each carried to ``t_ms``."""
    carried = [position + (0.0 if still else rate * (t_ms - at) / 1000.0)
               for at, position, still, rate, *_ in trace if abs(at - t_ms) <= WINDOW_MS]
    return statistics.median(carried) if carried else None


def has_version_from(trace: list[list], version: int) -> float:
    """When a page first showed ``version`` (its readings carry the engine's version); inf if never."""
    return next((reading[0] for reading in trace if len(reading) > 4 and reading[4] >= version), float("inf"))


def analyse(traces: list[list[list]], state: RoomState, start_ms: float, end_ms: float) -> dict:
    """Agreement over one command's window, on a grid of instants.

    "After the start" is the part of the settling time that a viewer sees as sync: from the
    moment every page has the new version and the room's (scheduled) start has come, to
    ``SETTLE_S`` after the command; the time before that is delivery. It begins a reading window
    late, so that no page's median mixes readings from before its start with readings after it.
    """
    grid, spread_at_read, offset_at_read = [], None, None
    started_ms = max([state.anchor_ms] + [has_version_from(trace, state.version) for trace in traces])
    t = start_ms
    while t <= end_ms:
        positions = [position_at(trace, t) for trace in traces]
        if all(p is not None for p in positions):
            expected = state.position_at(t)
            gaps = [abs(a - b) * 1000 for a, b in itertools.combinations(positions, 2)]
            offsets = [abs(p - expected) * 1000 for p in positions]
            grid.append((t, gaps, offsets))
            if spread_at_read is None and t >= start_ms + READ_AFTER_S * 1000:
                spread_at_read = max(gaps, default=0.0)
                offset_at_read = max(offsets)
        t += GRID_MS
    converged_s = None
    for t, gaps, offsets in reversed(grid):
        if max(gaps + offsets) > AGREEMENT_MS:
            break
        converged_s = round((t - start_ms) / 1000, 2)
    steady = [(gaps, offsets) for t, gaps, offsets in grid if t >= start_ms + SETTLE_S * 1000]
    after_start = [max(gaps, default=0.0) for t, gaps, _ in grid
                   if started_ms + WINDOW_MS <= t < start_ms + SETTLE_S * 1000]
    return {"spread_at_read_ms": None if spread_at_read is None else round(spread_at_read, 1),
            "room_offset_at_read_ms": None if offset_at_read is None else round(offset_at_read, 1),
            "within_20ms_after_s": converged_s,
            "after_start_pairwise_max_ms": round(max(after_start), 1) if after_start else None,
            "pairwise_ms": [g for _, gaps, _ in grid for g in gaps],
            "offsets_ms": [o for *_, offs in grid for o in offs],
            "pairwise_steady_ms": [g for gaps, _ in steady for g in gaps],
            "offsets_steady_ms": [o for _, offs in steady for o in offs]}


def plan(seconds: float, every: float, rng: random.Random) -> list[dict]:
    """play, then seek and rate changes in turn, one every ``every`` seconds."""
    commands = [{"type": "play", "position": 0.0}]
    rates = itertools.cycle([1.5, 1.0])
    for index in range(1, int(seconds // every)):
        # Seeks stay early enough that 10 s at rate 1.5 does not reach the demo's end (60 s).
        commands.append({"type": "seek", "position": round(rng.uniform(2.0, 25.0), 3)} if index % 2
                        else {"type": "rate", "rate": next(rates)})
    return commands


def measure(browser, server: LiveServer, base_url: str, transports: list[str], args: argparse.Namespace,
            slow: set[int] | None = None) -> dict:
    """One room: the pages of ``transports`` (those in ``slow`` CPU-throttled; all of them when None)."""
    api = f"{server.url}/api/rooms"
    name = f"accuracy {'+'.join(transports)} {time.time():.0f}"
    slug = httpx.post(api, json={"name": name}, timeout=30).json()["room"]
    pages = [open_viewer(browser, base_url, slug, transport, name=f"bench {i} {transport}",
                         skew_ms=args.skew_ms if i == 1 else 0.0,
                         cpu_throttle=args.cpu_throttle if slow is None or i in slow else 1.0)
             for i, transport in enumerate(transports)]
    commands = []
    try:
        for page in pages:
            page.wait_for_function("() => window.vsync?.clock.synced && window.vsync.transport?.status === 'open'"
                                   " && vsync.engine.video.readyState >= 3", timeout=30_000)
        pages[0].wait_for_timeout(1_600)  # one presence round: the start lead learns the round trips
        for page in pages:
            page.evaluate(RECORDER_JS)
        before = [page.evaluate(TAKE_TRACE_JS) for page in pages]
        for body in plan(args.seconds, args.command_every, random.Random(4)):
            sent_ms = time.time() * 1000.0
            body.update(client_id="c-bench", client_ms=sent_ms)
            response = httpx.post(f"{api}/{slug}/commands", json=body, timeout=30)
            response.raise_for_status()
            state = RoomState.from_dict(response.json()["state"])
            time.sleep(max(0.0, sent_ms / 1000 + args.command_every - time.time()))
            after = [page.evaluate(TAKE_TRACE_JS) for page in pages]
            result = analyse_command([a["trace"] for a in after], state, sent_ms, time.time() * 1000.0 - WINDOW_MS)
            result |= {"command": body["type"],
                       "seeks_per_page": [a["seeks"] - b["seeks"] for a, b in zip(after, before, strict=True)],
                       "nudges_per_page": [a["nudges"] - b["nudges"] for a, b in zip(after, before, strict=True)],
                       "versions_ok": all(a["version"] == state.version for a in after),
                       "pages": {f"{i}:{t}": {k: (round(v, 1) if isinstance(v, float) else v) for k, v in a.items()
                                              if k.endswith("_ms")} for i, (t, a) in enumerate(zip(transports, after,
                                                                                                 strict=True))}}
            if args.keep_traces:
                result["traces"] = [a["trace"] for a in after]
                result["engine_traces"] = [[x for x in a["engine_trace"] if x["at"] >= sent_ms - 500] for a in after]
                result["state"] = state.to_dict()
                result["sent_ms"] = sent_ms
            commands.append(result)
            print(f"  {'+'.join(transports)} {body['type']:<5} spread@{READ_AFTER_S}s {result['spread_at_read_ms']} "
                  f"room {result['room_offset_at_read_ms']} within20 {result['within_20ms_after_s']} s "
                  f"after-start max {result['after_start_pairwise_max_ms']} "
                  f"seeks {result['seeks_per_page']} nudges {result['nudges_per_page']} "
                  f"lead {result['start_lead_ms']} accepted after {result['accepted_after_ms']} "
                  f"pages {json.dumps(result['pages'])}", flush=True)
            before = after
    finally:
        for page in pages:
            page.context.close()
    return summarise(commands)


def analyse_command(traces: list[list[list]], state: RoomState, sent_ms: float, end_ms: float) -> dict:
    """One command's figures, read from when the room changed: on this 2-core machine a throttled
    page's busy-waiting (module docstring) delayed the server's accepting the POST by up to 2.4 s."""
    return analyse(traces, state, state.changed_ms, end_ms) | {
        "start_lead_ms": round(state.anchor_ms - state.changed_ms, 1),
        "accepted_after_ms": round(state.changed_ms - sent_ms, 1)}


def summarise(commands: list[dict]) -> dict:
    """A room's result: its commands without the per-instant series, and those pooled into quantiles."""
    pooled: dict[str, list[float]] = {key: [] for key in SERIES}
    for command in commands:
        for key in SERIES:
            pooled[key] += command.pop(key)
    return {"commands": commands, **{key: quantiles(values) for key, values in pooled.items()}}


def reanalyse(data: dict, note: str) -> dict:
    """A run kept with ``--keep-traces``, analysed again by this module's analysis as it is now, its
    traces left out (they are megabytes): how a run of an older analysis or engine is compared."""
    results = {}
    for label, room in data["results"].items():
        commands = []
        for command in room["commands"]:
            state = RoomState.from_dict(command["state"])
            end_ms = max(trace[-1][0] for trace in command["traces"]) - WINDOW_MS
            kept = {key: value for key, value in command.items()
                    if key not in ("traces", "engine_traces", "state", "sent_ms")}
            commands.append(kept | analyse_command(command["traces"], state, command["sent_ms"], end_ms))
        results[label] = summarise(commands) | {"steal_pct": room.get("steal_pct")}
    return {"note": note, "args": data["args"], "load_average": data["load_average"], "results": results}


def worst(done: list[dict], key: str) -> float | None:
    return max((c[key] for c in done if c[key] is not None), default=None)


def summary_rows(results: dict) -> list[str]:
    fmt = lambda q: f"{q['p50']}/{q['p95']}/{q['max']}"  # noqa: E731
    rows = [f"{'pages':<20} {'pairwise p50/p95/max':>22} {'steady':>16} {'vs room steady':>16} {'CPU stolen':>10}"]
    for label, r in results.items():
        rows.append(f"{label:<20} {fmt(r['pairwise_ms']):>22} {fmt(r['pairwise_steady_ms']):>16} "
                    f"{fmt(r['offsets_steady_ms']):>16} {r.get('steal_pct', '?')!s:>9}%")
    rows.append(f"\n{'pages':<20} {'command':<6} {'spread@3.5s':>12} {'room@3.5s':>10} {'within 20 ms after':>19} "
                f"{'seeks/page max':>15} {'nudges/page max':>16} {'after start max':>16} {'accepted after':>15}")
    for label, r in results.items():
        for kind in ("play", "seek", "rate"):
            done = [c for c in r["commands"] if c["command"] == kind]
            if not done:
                continue
            late = [c["within_20ms_after_s"] for c in done]
            rows.append(f"{label:<20} {kind:<6} {worst(done, 'spread_at_read_ms')!s:>12} "
                        f"{worst(done, 'room_offset_at_read_ms')!s:>10} "
                        f"{'never' if None in late else max(late)!s:>19} "
                        f"{max(max(c['seeks_per_page']) for c in done):>15} "
                        f"{max(max(c['nudges_per_page']) for c in done):>16} "
                        f"{worst(done, 'after_start_pairwise_max_ms')!s:>16} {worst(done, 'accepted_after_ms')!s:>15}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    parser.add_argument("--layout", choices=["per-transport", "mixed"], default="per-transport",
                        help="--pages pages per transport, or one room with one page per transport")
    parser.add_argument("--pages", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--command-every", type=float, default=10.0)
    parser.add_argument("--cpu-throttle", type=float, default=1.0, help="Chromium CPU slowdown (4: mid-tier mobile)")
    parser.add_argument("--throttled", choices=["all", "one"], default="all",
                        help="with --layout mixed: throttle every page, or one page at a time (a room per transport)")
    parser.add_argument("--skew-ms", type=float, default=3_700.0, help="clock skew of the second page (mixed)")
    parser.add_argument("--delay-ms", type=float, default=100.0, help="one-way delay of the proxy (0: no proxy)")
    parser.add_argument("--jitter-ms", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep-traces", action="store_true", help="with --json: every page's readings too")
    parser.add_argument("--reanalyse", type=Path, metavar="RUN",
                        help="run nothing: analyse a --keep-traces run again (traces left out of --json)")
    parser.add_argument("--note", default="", help="with --reanalyse: what the run was, kept in the output")
    args = parser.parse_args()
    if args.reanalyse:
        again = reanalyse(json.loads(args.reanalyse.read_text()), args.note)
        print("\n".join(summary_rows(again["results"])))
        if args.json:
            args.json.write_text(json.dumps(again, indent=2))
        return
    assert CHROMIUM.exists(), f"needs Debian's chromium at {CHROMIUM}"
    if args.layout == "per-transport":
        args.skew_ms = 0.0

    env = server_env(Path(tempfile.mkdtemp(prefix="vsync-accuracy-")))
    migrate(env)
    server = LiveServer(env=env).start()
    proxy = None
    if args.delay_ms > 0:
        proxy = DelayProxy(upstream_port=server.port, delay_ms=args.delay_ms, jitter_ms=args.jitter_ms).start()
    base_url = proxy.url if proxy else server.url
    transports = args.transports.split(",")
    groups: dict[str, tuple[list[str], set[int] | None]]
    if args.layout == "per-transport":
        groups = {t: ([t] * args.pages, None) for t in transports}
    elif args.throttled == "one" and args.cpu_throttle != 1.0:
        groups = {f"mixed, {t} slow": (transports, {i}) for i, t in enumerate(transports)}
    else:
        groups = {"mixed": (transports, None)}
    results, load = {}, [os.getloadavg()[0]]
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                for label, (group, slow) in groups.items():
                    before = psutil.cpu_times()
                    results[label] = measure(browser, server, base_url, group, args, slow)
                    results[label]["steal_pct"] = steal_pct(before, psutil.cpu_times())
                    load.append(os.getloadavg()[0])
            finally:
                browser.close()
    finally:
        if proxy:
            proxy.stop()
        server.stop()

    throttled = "one page at a time" if len(groups) > 1 and args.layout == "mixed" else "every page"
    print(f"\n{args.layout}, CPU throttle {args.cpu_throttle:g}x ({throttled}), {args.seconds:.0f} s, a command every "
          f"{args.command_every:.0f} s, network {args.delay_ms:.0f} ms ± {args.jitter_ms:.0f} ms each way, "
          f"load average {min(load):.1f}-{max(load):.1f}")
    print("\n".join(summary_rows(results)))
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "load_average": load,
                                         "results": results}, indent=2))


if __name__ == "__main__":
    main()
