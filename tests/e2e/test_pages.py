"""The lobby and the lab in a real browser, with screenshots as test artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.e2e.support import open_viewer, wait_until
from tests.support.servers import LiveServer

pytestmark = pytest.mark.e2e

# The lab's four players on one page agree this closely; read from 3 s after the seek until the
# deadline (a loaded machine stalls playback now and then: see tests/e2e/test_sync.py).
LAB_AGREEMENT_MS = 40.0
LAB_DEADLINE_S = 12.0


def test_lobby_shows_rooms_with_their_members(browser: Browser, e2e_server: LiveServer, make_room,
                                              artifacts: Path):
    room = make_room("Lobby check")
    viewer = open_viewer(browser, e2e_server.url, room.slug, "poll", name="Ada")
    viewer.wait_for_function("() => window.vsync?.presence.members.length === 1", timeout=10_000)
    lobby = browser.new_page(viewport={"width": 1280, "height": 720})
    try:
        lobby.goto(f"{e2e_server.url}/")
        lobby.wait_for_selector(f"a[href='/r/{room.slug}']")
        lobby.wait_for_function(f"() => document.querySelector(\"a[href='/r/{room.slug}']\")"
                                ".closest('li').textContent.includes('1 watching')", timeout=8_000)
        lobby.screenshot(path=str(artifacts / "lobby.png"))
        viewer.screenshot(path=str(artifacts / "room-members.png"))
    finally:
        lobby.close()
        viewer.context.close()


def test_lab_plays_the_room_through_all_four_transports(browser: Browser, e2e_server: LiveServer, make_room,
                                                        artifacts: Path):
    room = make_room("Lab check")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(f"{e2e_server.url}/r/{room.slug}/lab")
        page.wait_for_function("() => window.vsync?.viewers.every(v => v.transport.status === 'open')",
                               timeout=15_000)
        page.click("#lab-play")
        page.wait_for_timeout(2_500)
        page.click("#lab-fwd")
        page.wait_for_timeout(3_000)
        versions = page.evaluate("() => vsync.viewers.map(v => v.engine.version)")
        latencies = page.evaluate("() => vsync.viewers.map(v => v.latencies.length)")
        assert versions == [room.state().version] * 4
        assert all(count >= 2 for count in latencies), latencies  # every transport delivered both updates
        readings: list[list[float]] = []

        def agreeing() -> bool:
            positions = page.evaluate("() => vsync.viewers.map(v => v.engine.video.currentTime)")
            readings.append(positions)
            return (max(positions) - min(positions)) * 1000 <= LAB_AGREEMENT_MS

        try:
            wait_until(agreeing, LAB_DEADLINE_S, interval=0.3, message="the lab's players to agree")
        except AssertionError as error:
            raise AssertionError(f"{error}; last positions {readings[-3:]}") from None
        page.screenshot(path=str(artifacts / "lab.png"), full_page=True)
    finally:
        page.close()


@pytest.mark.parametrize("width", [390, 1280])
def test_room_page_fits_the_screen_with_every_panel(browser: Browser, e2e_server: LiveServer, make_room,
                                                   artifacts: Path, width: int):
    """Phone and desktop: nothing wider than the screen, the player's controls on one row, every panel there."""
    room = make_room(f"Fits {width}")
    room.command(type="enqueue", url="/media/demo.webm")
    context = browser.new_context(viewport={"width": width, "height": 844 if width < 600 else 900})
    context.add_init_script("localStorage.setItem('vsync.name', 'Ada');")
    page = context.new_page()
    try:
        page.goto(f"{e2e_server.url}/r/{room.slug}?transport=poll")
        page.wait_for_function("() => window.vsync?.transport?.status === 'open'", timeout=10_000)
        page.fill("#chat-input", "a message long enough to wrap on a phone: " + "word " * 20)
        page.press("#chat-input", "Enter")
        page.wait_for_selector("#chat-log .chat-message", timeout=5_000)
        page.wait_for_selector("#queue-list li.queue-item", timeout=5_000)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        middles = page.evaluate("""() => ['#c-play', '#c-rate', '#subtitle-select', '#c-mute', '#c-full']
            .map(id => document.querySelector(id).getBoundingClientRect())
            .map(box => box.top + box.height / 2)""")
        assert max(middles) - min(middles) < 12, middles  # the controls under the seek bar share one row
        page.wait_for_selector("#stats dd", timeout=5_000)  # the figures come with the first clock samples
        for panel in ("#chat", "#members", "#queue", "#subtitle-form", "#stats"):
            assert page.is_visible(panel), panel
        page.screenshot(path=str(artifacts / f"room-{width}.png"), full_page=True)
    finally:
        context.close()
