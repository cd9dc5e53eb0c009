"""Four browsers, one per transport, through a slow, jittery network: the same frame everywhere,
on this machine's CPU and on a mid-tier phone's."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.proxy import DelayProxy
from tests.e2e.support import open_viewer, read_positions, wait_until
from tests.support.servers import LiveServer

pytestmark = pytest.mark.e2e

TRANSPORTS = ["poll", "longpoll", "sse", "ws"]
# Pages must agree this closely, with each other and with the room, after anyone acts. They are
# first read three seconds after the gesture, and again until SYNC_DEADLINE_S: on a loaded machine
# (a CI runner, two cores shared with the server and four renderers) Chromium now and then stalls
# playback with all the media buffered ("waiting" at HAVE_CURRENT_DATA), and a page must then
# come back. How fast pages agree is a figure of loadtests/sync_accuracy.py, not of this test.
AGREEMENT_MS = 20.0
SETTLE_MS = 3_000
SYNC_DEADLINE_S = 10.0
# Several seconds of skew on one page: the clock exchange must absorb it.
SKEW_MS = 7_300.0
# DevTools' "mid-tier mobile" preset slows the CPU 4x: the pages must still agree this closely
# 3.5 s after anyone acts, and get there with at most this many seeks each.
MID_TIER_MOBILE = 4.0
PHONE = "longpoll"
PHONE_AGREEMENT_MS = 50.0
PHONE_READ_AFTER_MS = 3_500
# The first reading is at 3.5 s; a stall of Chromium's playback on a loaded runner may cost one more try.
PHONE_DEADLINE_S = 1.5
PHONE_SEEKS_PER_COMMAND = 2


def assert_in_sync(pages: list[Page], room, label: str, agreement_ms: float = AGREEMENT_MS,
                   deadline_s: float = SYNC_DEADLINE_S) -> None:
    started = time.monotonic()
    while True:
        try:
            check_in_sync(pages, room, label, agreement_ms)
        except AssertionError:
            if time.monotonic() - started < deadline_s:
                time.sleep(0.3)
                continue
            for transport, page in zip(TRANSPORTS, pages, strict=True):
                print(f"{transport} engine trace (server ms, newest last):")
                for entry in page.evaluate("() => vsync.engine.trace.slice(-60)"):
                    print("   ", entry)
            raise
        print(f"{label}: in sync at the reading {time.monotonic() - started:.1f} s after the first")
        return


def check_in_sync(pages: list[Page], room, label: str, agreement_ms: float) -> None:
    state = room.state()
    instant, readings = read_positions(pages)
    expected = state.position_at(instant)
    report = {t: round((r["position"] - expected) * 1000, 1) for t, r in zip(TRANSPORTS, readings, strict=True)}
    own = {t: (round(r["drift_ms"], 1), round(r["offset_ms"], 1)) for t, r in zip(TRANSPORTS, readings, strict=True)}
    detail = f"offsets from the room position (ms) {report}; own drift, clock offset {own}"
    print(f"{label}: {detail}")
    assert all(r["version"] == state.version for r in readings), f"{label}: versions {readings} vs {state.version}"
    for (a, ra), (b, rb) in itertools.combinations(zip(TRANSPORTS, readings, strict=True), 2):
        gap_ms = abs(ra["position"] - rb["position"]) * 1000
        assert gap_ms <= agreement_ms, f"{label}: {a} and {b} differ by {gap_ms:.1f} ms; {detail}"
    for transport, reading in zip(TRANSPORTS, readings, strict=True):
        off_ms = abs(reading["position"] - expected) * 1000
        assert off_ms <= agreement_ms, f"{label}: {transport} is {off_ms:.1f} ms off the room; {detail}"


def four_members(room) -> dict | None:
    members = room.members()
    return members if len(members["members"]) == 4 else None


def settle(page: Page) -> None:
    page.wait_for_timeout(SETTLE_MS)


def test_four_transports_stay_on_one_frame_and_recover_from_a_restart(
        browser: Browser, e2e_server: LiveServer, slow_network: DelayProxy, make_room, artifacts: Path):
    room = make_room("Four transports")
    pages = [open_viewer(browser, slow_network.url, room.slug, transport, name=f"viewer {transport}",
                         skew_ms=SKEW_MS if transport == "longpoll" else 0.0)
             for transport in TRANSPORTS]
    try:
        poll, longpoll, sse, ws = pages
        for page in pages:
            page.wait_for_function("() => window.vsync?.clock.synced && window.vsync.transport?.status === 'open'",
                                   timeout=15_000)
        # The skewed page's corrected clock still reads server time.
        assert abs(longpoll.evaluate("() => vsync.clock.offsetMs") + SKEW_MS) < 50
        # Every viewer reports presence over its own transport; the start lead follows their round trips.
        members = wait_until(lambda: four_members(room), 10, message="four members")
        assert sorted(m["transport"] for m in members["members"]) == sorted(TRANSPORTS)
        assert members["start_lead_ms"] >= 200  # 100 ms each way

        gestures = 0
        poll.click("#c-play")
        gestures += 1
        settle(poll)
        assert_in_sync(pages, room, "after play")

        longpoll.focus("#player")
        longpoll.keyboard.press("ArrowRight")
        gestures += 1
        settle(poll)
        assert_in_sync(pages, room, "after seek +5 s")

        sse.select_option("#c-rate", "1.5")
        gestures += 1
        settle(poll)
        assert_in_sync(pages, room, "after rate 1.5")

        ws.click("#c-play")
        gestures += 1
        settle(poll)
        assert room.state().playing is False
        assert_in_sync(pages, room, "after pause")

        # Back to the start while paused: the demo is 60 s long, and the checks above may have taken most of it.
        ws.focus("#player")
        ws.keyboard.press("Home")
        gestures += 1
        settle(poll)
        assert room.state().position == 0.0
        assert_in_sync(pages, room, "after Home while paused")

        sse.click("#c-play")
        gestures += 1
        settle(poll)
        assert_in_sync(pages, room, "after play again")
        sse.screenshot(path=str(artifacts / "room.png"))

        # No echo: applying received states never sent a command.
        assert room.state().version == 1 + gestures

        e2e_server.restart()
        room.command(type="seek", position=30.0)
        newest = room.state().version
        wait_until(lambda: all(p.evaluate("() => vsync.engine.version") == newest for p in pages), 20,
                   message="every page to reach the newest version after the restart")
        settle(poll)
        assert_in_sync(pages, room, "after restart and seek")
        reconnects = [p.evaluate("() => vsync.transport.reconnects") for p in pages]
        assert all(count >= 1 for count in reconnects), f"reconnects per transport: {reconnects}"
    finally:
        for page in pages:
            page.context.close()


def test_a_mid_tier_phone_cpu_keeps_the_frame_of_the_room(browser: Browser, slow_network: DelayProxy, make_room):
    """One page per transport, the long-polling one on a phone's CPU (DevTools' 4x) with its clock 3.7 s off.

    One slow page, not four: DevTools' throttling busy-waits (the throttled main thread spins for
    three quarters of its time, idle or not), so four throttled pages need three cores and on a
    2-core machine measure the host (README, "Sync accuracy"). The benchmark
    (loadtests.sync_accuracy --throttled one) makes each transport's page the slow one in turn.
    """
    room = make_room("A phone among laptops")
    pages = [open_viewer(browser, slow_network.url, room.slug, transport, name=f"viewer {transport}",
                         skew_ms=3_700.0 if transport == PHONE else 0.0,
                         cpu_throttle=MID_TIER_MOBILE if transport == PHONE else 1.0)
             for transport in TRANSPORTS]
    try:
        poll, longpoll, sse, _ws = pages
        for page in pages:
            page.wait_for_function("() => window.vsync?.clock.synced && window.vsync.transport?.status === 'open'"
                                   " && vsync.engine.video.readyState >= 3", timeout=30_000)
        wait_until(lambda: four_members(room), 10, message="four members")
        longpoll.focus("#player")
        gestures = [("play", lambda: poll.click("#c-play")),
                    ("seek +5 s", lambda: longpoll.keyboard.press("ArrowRight")),
                    ("rate 1.5", lambda: sse.select_option("#c-rate", "1.5"))]
        for label, gesture in gestures:
            seeks = [p.evaluate("() => vsync.engine.seeks") for p in pages]
            gesture()
            poll.wait_for_timeout(PHONE_READ_AFTER_MS)
            assert_in_sync(pages, room, f"4x CPU slowdown on {PHONE}, {label}", PHONE_AGREEMENT_MS,
                           deadline_s=PHONE_DEADLINE_S)
            made = [p.evaluate("() => vsync.engine.seeks") - before for p, before in zip(pages, seeks, strict=True)]
            per_page = dict(zip(TRANSPORTS, made, strict=True))
            assert max(made) <= PHONE_SEEKS_PER_COMMAND, f"{label}: seeks per page {per_page}"
        latencies = longpoll.evaluate("() => [vsync.engine.startLatencyMs, vsync.engine.seekLatencyMs]")
        print(f"the phone's start-up and seek latency: {latencies} ms")
        # The stats panel shows this device's own latencies.
        stats = longpoll.inner_text("#stats")
        assert all(row in stats for row in ("Start-up latency", "Seek latency", "Timer lateness")), stats
    finally:
        for page in pages:
            page.context.close()
