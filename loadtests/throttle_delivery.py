"""How long the server and the transports take while throttled pages play: is a slow page slow, or its host?

    python -m loadtests.throttle_delivery --cpu-throttle 4 [--direct]

One room, one page per transport (Chromium's CPU throttling, through the 100 ms delay proxy
unless --direct), playing. Four commands are POSTed from outside the browser, 6 s apart; for
each it prints how long the POST took, how long a ``GET /api/time`` right after it took, and
when each page's engine first held the new version (each page checks every 20 ms), with every
page's timer lag (a 100 ms interval: p50/p95/max of how late it fired). Loopback only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from tests.e2e.proxy import DelayProxy
from tests.e2e.support import CHROMIUM, CHROMIUM_ARGS, open_viewer
from tests.support.servers import LiveServer, migrate, server_env

TRANSPORTS = ["poll", "longpoll", "sse", "ws"]
COMMANDS = [{"type": "play", "position": 0.0}, {"type": "seek", "position": 12.0}, {"type": "rate", "rate": 1.5},
            {"type": "seek", "position": 5.0}]
COMMAND_EVERY_S = 6.0
WATCH_JS = """() => {
  window.__arrivals = {};
  setInterval(() => { const v = vsync.engine.version; if (!(v in __arrivals)) __arrivals[v] = Date.now(); }, 20);
  window.__lags = [];
  let last = performance.now();
  setInterval(() => { const n = performance.now(); __lags.push(n - last - 100); last = n; }, 100);
}"""
LAGS_JS = """() => {
  const l = __lags.splice(0).sort((a, b) => a - b);
  if (!l.length) return null;
  return [l[l.length >> 1], l[Math.floor(l.length * 0.95)], l.at(-1)].map(Math.round);
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-throttle", type=float, default=4.0)
    parser.add_argument("--direct", action="store_true", help="no delay proxy")
    args = parser.parse_args()
    env = server_env(Path(tempfile.mkdtemp(prefix="vsync-throttle-")))
    migrate(env)
    server = LiveServer(env=env).start()
    proxy = None if args.direct else DelayProxy(upstream_port=server.port, delay_ms=100, jitter_ms=10).start()
    try:
        slug = httpx.post(f"{server.url}/api/rooms", json={"name": "Throttled delivery"}, timeout=30).json()["room"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            base = server.url if proxy is None else proxy.url
            pages = [open_viewer(browser, base, slug, t, cpu_throttle=args.cpu_throttle) for t in TRANSPORTS]
            for page in pages:
                page.wait_for_function("() => window.vsync?.clock.synced && vsync.transport?.status === 'open'"
                                       " && vsync.engine.video.readyState >= 3", timeout=60_000)
                page.evaluate(WATCH_JS)
            print(f"{args.cpu_throttle:g}x CPU throttling, {'direct' if proxy is None else '100 ms each way'}; "
                  f"pages {', '.join(TRANSPORTS)}")
            for body in COMMANDS:
                sent_ms = time.time() * 1000.0
                answer = httpx.post(f"{server.url}/api/rooms/{slug}/commands", timeout=60,
                                    json={**body, "client_id": "c-throttle", "client_ms": sent_ms})
                posted_ms = time.time() * 1000.0 - sent_ms
                started = time.monotonic()
                httpx.get(f"{server.url}/api/time", timeout=60)
                time_ms = (time.monotonic() - started) * 1000.0
                version = answer.json()["state"]["version"]
                time.sleep(max(0.0, sent_ms / 1000.0 + COMMAND_EVERY_S - time.time()))
                arrivals = [page.evaluate(f"() => __arrivals[{version}] ?? null") for page in pages]
                lags = [page.evaluate(LAGS_JS) for page in pages]
                print(f"{body['type']:>5}: POST {posted_ms:.0f} ms, GET /api/time {time_ms:.0f} ms; version {version} "
                      f"reached the pages after (ms) "
                      f"{[None if a is None else round(a - sent_ms) for a in arrivals]}; timer lag p50/p95/max {lags}")
            browser.close()
    finally:
        if proxy is not None:
            proxy.stop()
        server.stop()


if __name__ == "__main__":
    main()
