"""What a playback-rate change costs in Chromium, with and without pitch preservation.

Run by hand (not part of the test suite):

    .venv/bin/python -m loadtests.rate_probe

Opens one room page, plays, stops the sync engine, then steps ``video.playbackRate``
through a plan (1 -> 1.05 -> 1 -> 0.95 -> 1 -> 1.5 -> 1) and samples ``currentTime``
every 10 ms. For each step it reports how far the video fell behind (or ran ahead of)
the position that the rates set would give, measured over the step, and how much
``currentTime`` wandered around its own trend while that rate held. The sync engine's
choice (resample for nudges at room rate 1, see ``templates/static/vsync/sync.js``)
rests on these figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from tests.e2e.support import CHROMIUM, CHROMIUM_ARGS, open_viewer
from tests.support.servers import LiveServer, migrate, server_env

PLAN = [(1.0, 600), (1.05, 800), (1.0, 800), (0.95, 800), (1.0, 800), (1.5, 800), (1.0, 800)]

SAMPLE_JS = """async ([plan, preservePitch]) => {
  vsync.engine.destroy();
  vsync.engine._follow = () => {};
  const v = document.querySelector('video');
  v.preservesPitch = preservePitch;
  const out = [];
  for (const [rate, ms] of plan) {
    v.playbackRate = rate;
    const end = performance.now() + ms;
    while (performance.now() < end) {
      await new Promise((r) => setTimeout(r, 10));
      out.push([performance.now(), v.currentTime, rate]);
    }
  }
  return out;
}"""


def deviations(samples: list[list[float]]) -> list[tuple[float, float]]:
    """(rate, ms behind the ideal position) per sample, the ideal integrating the rates set."""
    t0, c0, _ = samples[0]
    ideal, previous_t, previous_rate = c0, t0, samples[0][2]
    out = []
    for t, position, rate in samples:
        ideal += previous_rate * (t - previous_t) / 1000.0
        previous_t, previous_rate = t, rate
        out.append((rate, (position - ideal) * 1000.0))
    return out


def steps(samples: list[list[float]]) -> list[dict]:
    """Per step of the plan: the loss over the step, and the wander of currentTime within it."""
    devs = deviations(samples)
    out, start = [], 0
    for index in range(1, len(devs) + 1):
        if index == len(devs) or devs[index][0] != devs[start][0]:
            chunk = [d for _, d in devs[start:index]]
            before = devs[start - 1][1] if start else chunk[0]
            settled = chunk[len(chunk) // 3:]  # after the change has worked through
            out.append({"rate": devs[start][0], "loss_ms": round(statistics.median(settled) - before, 1),
                        "wander_ms": round(max(settled) - min(settled), 1)})
            start = index
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    assert CHROMIUM.exists(), f"needs Debian's chromium at {CHROMIUM}"
    env = server_env(Path(tempfile.mkdtemp(prefix="vsync-rate-probe-")))
    migrate(env)
    server = LiveServer(env=env).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            for preserve in (True, False):
                for repeat in range(args.repeats):
                    slug = httpx.post(f"{server.url}/api/rooms", json={"name": f"rate probe {time.time()}"}
                                      ).json()["room"]
                    page = open_viewer(browser, server.url, slug, "ws")
                    page.wait_for_function("() => window.vsync?.clock.synced && vsync.engine.video.readyState >= 3",
                                           timeout=20_000)
                    httpx.post(f"{server.url}/api/rooms/{slug}/commands",
                               json={"type": "play", "position": 0.0, "client_id": "c-probe",
                                     "client_ms": time.time() * 1000.0}).raise_for_status()
                    page.wait_for_timeout(1_500)
                    result = steps(page.evaluate(SAMPLE_JS, [PLAN, preserve]))
                    page.context.close()
                    print(f"preservesPitch={str(preserve).lower():5} #{repeat + 1}: " + "  ".join(
                        f"{r['rate']}: {r['loss_ms']:+.1f} ms (±{r['wander_ms'] / 2:.1f})" for r in result[1:]),
                        flush=True)
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
