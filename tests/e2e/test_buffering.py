"""Buffering policies with one viewer's media throttled (its media requests are held back)."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Browser, Page, Route

from tests.e2e.support import open_viewer, wait_until
from tests.support.servers import LiveServer

pytestmark = pytest.mark.e2e

TIMEOUT_S = 4


class HeldMedia:
    """Holds every media request of one page until released: the network of a viewer on a bad day."""

    def __init__(self, page_context) -> None:
        self.routes: list[Route] = []
        self.released = False
        page_context.route("**/media/**", self._hold)

    def _hold(self, route: Route) -> None:
        if self.released:
            route.continue_()
        else:
            self.routes.append(route)

    def release(self) -> None:
        self.released = True
        for route in self.routes:
            route.continue_()
        self.routes.clear()


def playing_viewer(browser: Browser, server: LiveServer, room) -> Page:
    page = open_viewer(browser, server.url, room.slug, "ws", name="steady")
    page.wait_for_function("() => window.vsync?.transport?.status === 'open' && vsync.engine.video.readyState >= 3",
                           timeout=15_000)
    page.click("#c-play")
    page.wait_for_function("() => !document.querySelector('video').paused", timeout=5_000)
    return page


def throttled_viewer(browser: Browser, server: LiveServer, room) -> tuple[Page, HeldMedia]:
    context = browser.new_context()
    held = HeldMedia(context)
    page = context.new_page()
    page.goto(f"{server.url}/r/{room.slug}?transport=sse")
    return page, held


def video_paused(page: Page) -> bool:
    return page.evaluate("() => document.querySelector('video').paused")


def test_wait_pauses_everyone_and_resumes_together_when_the_member_catches_up(
        browser: Browser, e2e_server: LiveServer, make_room):
    room = make_room("Wait and resume")
    room.policy(buffering_policy="wait", buffering_timeout_s=30)
    steady = playing_viewer(browser, e2e_server, room)
    slow, held = throttled_viewer(browser, e2e_server, room)
    try:
        wait_until(lambda: not room.state().playing, 6, message="the room to pause for the buffering member")
        hold = room.state()
        assert hold.changed_by is None  # the server paused it, not a person
        steady.wait_for_function("() => document.querySelector('video').paused", timeout=3_000)
        held.release()
        wait_until(lambda: room.state().playing, 10, message="the room to resume once nobody buffers")
        resumed = room.state()
        assert resumed.position == hold.position
        assert resumed.anchor_ms > resumed.changed_ms  # one scheduled start for everyone
        for page in (steady, slow):
            page.wait_for_function(f"() => vsync.engine.version >= {resumed.version} && "
                                   "!document.querySelector('video').paused", timeout=5_000)
    finally:
        held.release()
        steady.context.close()
        slow.context.close()


def test_wait_gives_up_on_a_silent_buffering_member_after_the_timeout(
        browser: Browser, e2e_server: LiveServer, make_room):
    room = make_room("Wait and time out")
    room.policy(buffering_policy="wait", buffering_timeout_s=TIMEOUT_S)
    steady = playing_viewer(browser, e2e_server, room)
    joined_at = time.monotonic()  # its buffering cannot begin before it joins
    slow, held = throttled_viewer(browser, e2e_server, room)
    try:
        wait_until(lambda: not room.state().playing, 6, message="the room to pause for the buffering member")
        # The buffering member goes silent (closing the page would say goodbye: "away").
        slow.context.set_offline(True)
        wait_until(lambda: room.state().playing, TIMEOUT_S + 4, message="the timeout to release the room")
        # The room waited for the member's full timeout, counted from when it began buffering.
        assert time.monotonic() - joined_at >= TIMEOUT_S
        steady.wait_for_function("() => !document.querySelector('video').paused", timeout=5_000)
    finally:
        held.release()
        steady.context.close()
        slow.context.close()


def test_ignore_lets_the_buffering_member_catch_up_alone(browser: Browser, e2e_server: LiveServer, make_room):
    room = make_room("Ignore")
    room.policy(buffering_policy="ignore")
    steady = playing_viewer(browser, e2e_server, room)
    version = room.state().version
    slow, held = throttled_viewer(browser, e2e_server, room)
    try:
        slow.wait_for_function("() => vsync.engine.status === 'buffering'", timeout=10_000)
        steady.wait_for_timeout(3_000)
        assert room.state().version == version and room.state().playing
        assert not video_paused(steady)
        held.release()
        # The late viewer joins the room where it is, not where it started.
        slow.wait_for_function("() => !document.querySelector('video').paused && "
                               "Math.abs(vsync.engine.driftMs) < 50", timeout=10_000)
    finally:
        held.release()
        steady.context.close()
        slow.context.close()
