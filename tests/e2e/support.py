"""Helpers for real-browser tests and the sync-accuracy benchmark: opening viewers, reading positions."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]


def open_viewer(browser: Browser, base_url: str, slug: str, transport: str, *, skew_ms: float = 0.0,
                name: str | None = None) -> Page:
    """A room page in its own context (own cache and storage), optionally with a skewed clock."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
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
    page.goto(f"{base_url}/r/{slug}?transport={transport}")
    return page


READ_JS = """() => { const v = document.querySelector('video');
  return {position: v.currentTime, paused: v.paused, rate: v.playbackRate, version: window.vsync.engine.version,
          drift_ms: window.vsync.engine.driftMs, offset_ms: window.vsync.clock.offsetMs}; }"""


def read_positions(pages: list[Page]) -> tuple[float, list[dict]]:
    """Every page's video position, corrected to one instant (server time; the server runs on this machine).

    A reading is stamped at the midpoint of its evaluate round trip; the fastest of three is kept.
    """
    readings = []
    for page in pages:
        best = None
        for _ in range(3):
            before = time.time() * 1000.0
            value = page.evaluate(READ_JS)
            after = time.time() * 1000.0
            if best is None or after - before < best[2]:
                best = (value, (before + after) / 2, after - before)
        readings.append(best)
    instant = readings[0][1]
    corrected = []
    for value, at_ms, _ in readings:
        advance = 0.0 if value["paused"] else value["rate"] * (instant - at_ms) / 1000.0
        corrected.append({**value, "position": value["position"] + advance})
    return instant, corrected


def wait_until(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")
