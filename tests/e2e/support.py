"""Helpers for real-browser tests and the sync-accuracy benchmark: opening viewers, reading positions."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Browser, CDPSession, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]


def open_viewer(browser: Browser, base_url: str, slug: str, transport: str, *, skew_ms: float = 0.0,
                name: str | None = None, cpu_throttle: float = 1.0) -> Page:
    """A room page in its own context (own cache and storage), optionally with a skewed clock.

    ``cpu_throttle`` slows the page's renderer that many times (DevTools' "mid-tier mobile" is 4).
    """
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    # The machine's own wall clock, kept before any skew: readings are stamped with it.
    context.add_init_script("window.__realNow = Date.now.bind(Date);")
    if skew_ms:
        context.add_init_script(f"""(() => {{
            const skew = {skew_ms};
            const dateNow = Date.now.bind(Date), perfNow = performance.now.bind(performance);
            Date.now = () => dateNow() + skew;
            performance.now = () => perfNow() + skew;
        }})();""")
    if name:
        context.add_init_script(f"localStorage.setItem('vsync.name', {name!r});")
    page = context.new_page()
    if cpu_throttle != 1.0:
        throttle_cpu(page, cpu_throttle)
    page.goto(f"{base_url}/r/{slug}?transport={transport}")
    return page


# CDP sessions kept attached for their page's lifetime: the emulation lasts as long as its session.
_THROTTLE_SESSIONS: dict[int, CDPSession] = {}


def throttle_cpu(page: Page, rate: float) -> None:
    """Chromium's CPU throttling (Emulation.setCPUThrottlingRate), as DevTools' performance panel sets it."""
    session = _THROTTLE_SESSIONS.get(id(page))
    if session is None:
        session = _THROTTLE_SESSIONS[id(page)] = page.context.new_cdp_session(page)
        page.on("close", lambda _page: _THROTTLE_SESSIONS.pop(id(page), None))
    session.send("Emulation.setCPUThrottlingRate", {"rate": rate})


# Each page reads its video several times around one agreed wall-clock instant, stamping every
# reading with the machine's own clock in the same task that reads `currentTime`. Chromium's
# `currentTime` moves in small steps while its pitch-preserving stretcher runs (rate != 1, a
# few ms either way), so one reading per page would measure that sawtooth, not the video.
SCHEDULE_READ_JS = """([at, count, spacing]) => {
  window.__vsyncReading = null;
  const v = document.querySelector('video'), samples = [];
  const take = () => {
    samples.push({at_ms: window.__realNow(), position: v.currentTime, paused: v.paused, rate: v.playbackRate});
    if (samples.length < count) { setTimeout(take, spacing); return; }
    window.__vsyncReading = {samples, version: window.vsync.engine.version, drift_ms: window.vsync.engine.driftMs,
                             offset_ms: window.vsync.clock.offsetMs};
  };
  setTimeout(take, Math.max(0, at - window.__realNow()));
}"""
SAMPLES_PER_READ = 11
SAMPLE_SPACING_MS = 16


def read_positions(pages: list[Page]) -> tuple[float, list[dict]]:
    """Every page's video position at one instant (server time: the server runs on this machine).

    All pages sample around the same moment; each sample is carried to the instant at the rate
    the video was playing, and the median of a page's samples is its reading.
    """
    instant = time.time() * 1000.0 + 40.0 + 15.0 * len(pages)
    first = instant - SAMPLES_PER_READ // 2 * SAMPLE_SPACING_MS
    for page in pages:
        page.evaluate(SCHEDULE_READ_JS, [first, SAMPLES_PER_READ, SAMPLE_SPACING_MS])
    readings = []
    for page in pages:
        handle = page.wait_for_function("() => window.__vsyncReading", timeout=5_000)
        reading = handle.json_value()
        carried = sorted(sample["position"] + (0.0 if sample["paused"] else
                                               sample["rate"] * (instant - sample["at_ms"]) / 1000.0)
                         for sample in reading["samples"])
        last = reading["samples"][-1]
        readings.append({"position": carried[len(carried) // 2], "paused": last["paused"], "rate": last["rate"],
                         "version": reading["version"], "drift_ms": reading["drift_ms"],
                         "offset_ms": reading["offset_ms"]})
    return instant, readings


def wait_until(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")
