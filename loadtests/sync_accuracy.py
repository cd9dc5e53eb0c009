"""Sync accuracy: how far apart real browsers on one transport show the same room.

Run by hand (not part of the test suite):

    .venv/bin/python -m loadtests.sync_accuracy --seconds 60 --pages 3

Starts its own server, optionally behind a delay proxy, opens ``--pages`` Chromium
pages per transport, plays for ``--seconds`` with a seek every ``--seek-every``
seconds, samples every page's video position four times a second (corrected to one
instant), and reports per transport the distribution of the pairwise drift and of
the offset from the room's position. "steady" leaves out the few seconds after each
seek in which the pages are still converging.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from rooms.state import RoomState
from tests.e2e.proxy import DelayProxy
from tests.e2e.support import CHROMIUM, CHROMIUM_ARGS, open_viewer, read_positions
from tests.support.servers import LiveServer, migrate, server_env

SAMPLE_INTERVAL_S = 0.25
# Samples this soon after a command show convergence, not steady-state agreement.
SETTLE_S = 3.0


def quantiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "p50": round(pick(0.5), 1), "p95": round(pick(0.95), 1), "max": round(ordered[-1], 1)}


def measure(browser, server: LiveServer, base_url: str, transport: str, args: argparse.Namespace) -> dict:
    api = f"{server.url}/api/rooms"
    slug = httpx.post(api, json={"name": f"accuracy {transport} {time.time():.0f}"}).json()["room"]
    pages = [open_viewer(browser, base_url, slug, transport, name=f"bench {i}") for i in range(args.pages)]
    pairwise, offsets, pairwise_steady, offsets_steady = [], [], [], []
    try:
        for page in pages:
            page.wait_for_function("() => window.vsync?.clock.synced && window.vsync.transport?.status === 'open'"
                                   " && vsync.engine.video.readyState >= 3", timeout=20_000)
        pages[0].wait_for_timeout(1_600)  # one presence round: the start lead learns the round trips

        def command(**body: object) -> None:
            body.update(client_id="c-bench", client_ms=time.time() * 1000.0)
            httpx.post(f"{api}/{slug}/commands", json=body).raise_for_status()

        command(type="play", position=0.0)
        started = last_command = time.monotonic()
        rng = random.Random(4)
        while time.monotonic() - started < args.seconds:
            if time.monotonic() - last_command >= args.seek_every:
                command(type="seek", position=round(rng.uniform(2.0, 40.0), 3))
                last_command = time.monotonic()
            state = RoomState.from_dict(httpx.get(f"{api}/{slug}/state").json())
            instant, readings = read_positions(pages)
            if all(r["version"] == state.version for r in readings) and instant >= state.anchor_ms:
                expected = state.position_at(instant)
                steady = time.monotonic() - last_command >= SETTLE_S
                for a, b in itertools.combinations(readings, 2):
                    gap = abs(a["position"] - b["position"]) * 1000
                    pairwise.append(gap)
                    if steady:
                        pairwise_steady.append(gap)
                for reading in readings:
                    off = abs(reading["position"] - expected) * 1000
                    offsets.append(off)
                    if steady:
                        offsets_steady.append(off)
            pages[0].wait_for_timeout(SAMPLE_INTERVAL_S * 1000)
        seeks = [p.evaluate("() => vsync.engine.seeks") for p in pages]
    finally:
        for page in pages:
            page.context.close()
    return {"pairwise_ms": quantiles(pairwise), "pairwise_steady_ms": quantiles(pairwise_steady),
            "offset_ms": quantiles(offsets), "offset_steady_ms": quantiles(offsets_steady),
            "engine_seeks_per_page": seeks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transports", default="poll,longpoll,sse,ws")
    parser.add_argument("--pages", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seek-every", type=float, default=10.0)
    parser.add_argument("--delay-ms", type=float, default=100.0, help="one-way delay of the proxy (0: no proxy)")
    parser.add_argument("--jitter-ms", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    assert CHROMIUM.exists(), f"needs Debian's chromium at {CHROMIUM}"

    env = server_env(Path(tempfile.mkdtemp(prefix="vsync-accuracy-")))
    migrate(env)
    server = LiveServer(env=env).start()
    proxy = None
    if args.delay_ms > 0:
        proxy = DelayProxy(upstream_port=server.port, delay_ms=args.delay_ms, jitter_ms=args.jitter_ms).start()
    base_url = proxy.url if proxy else server.url
    results = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                for transport in args.transports.split(","):
                    results[transport] = measure(browser, server, base_url, transport, args)
                    print(transport, json.dumps(results[transport]), flush=True)
            finally:
                browser.close()
    finally:
        if proxy:
            proxy.stop()
        server.stop()

    print(f"\n{args.pages} pages per transport, {args.seconds:.0f} s of play, a seek every {args.seek_every:.0f} s, "
          f"network {args.delay_ms:.0f} ms ± {args.jitter_ms:.0f} ms each way")
    print(f"{'transport':<10} {'pairwise p50/p95/max (ms)':>28} {'steady p50/p95/max':>22} {'vs room':>20} "
          f"{'vs room steady':>20}")
    for transport, r in results.items():
        fmt = lambda q: f"{q['p50']}/{q['p95']}/{q['max']}"  # noqa: E731
        print(f"{transport:<10} {fmt(r['pairwise_ms']):>28} {fmt(r['pairwise_steady_ms']):>22} "
              f"{fmt(r['offset_ms']):>20} {fmt(r['offset_steady_ms']):>20}")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "results": results},
                                        indent=2))


if __name__ == "__main__":
    main()
