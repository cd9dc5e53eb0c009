"""Rooms that people own, in a real browser: the owner's panel, hosts-only control, passwords, kicks."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.support.servers import LiveServer

pytestmark = pytest.mark.e2e

# Each wait is bounded: a change reaches every page within a presence beat (1.5 s) or a push.
WAIT_MS = 8_000
HOSTS_ONLY_NOTE = "Only the owner and hosts"


def create_room(server: LiveServer, name: str, **fields: object) -> tuple[str, str]:
    """A new room over the API: (slug, owner_token)."""
    answer = httpx.post(f"{server.url}/api/rooms", json={"name": name, **fields})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return body["room"], body["owner_token"]


def open_page(browser: Browser, server: LiveServer, slug: str, transport: str, *, name: str,
              owner_token: str | None = None, wait_open: bool = True) -> Page:
    """A room page in its own browser context; with owner_token it is the creator's browser."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(f"localStorage.setItem('vsync.name', {name!r});")
    if owner_token:
        context.add_init_script(f"localStorage.setItem('vsync.owner.{slug}', {owner_token!r});")
    page = context.new_page()
    page.goto(f"{server.url}/r/{slug}?transport={transport}")
    if wait_open:
        page.wait_for_function("() => window.vsync?.transport?.status === 'open'", timeout=WAIT_MS)
    return page


def member_row(page: Page, name: str):
    return page.locator("#members li.member", has_text=name)


def test_lobby_creates_a_room_whose_creator_is_its_owner(browser: Browser, e2e_server: LiveServer):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto(f"{e2e_server.url}/")
        page.fill("#create-form input[name=name]", "Owned by the lobby")
        page.click("#create-form button[type=submit]")
        page.wait_for_url("**/r/owned-by-the-lobby*", timeout=WAIT_MS)
        page.wait_for_function("() => window.vsync?.membership.role === 'owner'", timeout=WAIT_MS)
        # The panel shows once the room's settings are read, a moment after the join.
        page.wait_for_selector("#owner-panel", state="visible", timeout=WAIT_MS)
        assert page.text_content("#role-badge") == "owner"
        # The share link is the room's address alone.
        assert page.input_value("#share-link") == f"{e2e_server.url}/r/owned-by-the-lobby"
        # A second visit in the same browser is the owner again (the token is kept per room).
        page.reload()
        page.wait_for_function("() => window.vsync?.membership.role === 'owner'", timeout=WAIT_MS)
    finally:
        context.close()


def test_hosts_only_room_disables_a_viewers_controls_until_the_owner_grants_host(
        browser: Browser, e2e_server: LiveServer, artifacts: Path):
    slug, token = create_room(e2e_server, "Hosts only")
    owner = open_page(browser, e2e_server, slug, "ws", name="Olive", owner_token=token)
    viewer = open_page(browser, e2e_server, slug, "sse", name="Vic")
    try:
        owner.wait_for_function("() => vsync.membership.role === 'owner'", timeout=WAIT_MS)
        assert viewer.is_enabled("#c-play")
        owner.click("#owner-control label:has-text('Owner and hosts')")
        owner.wait_for_function("() => document.querySelector('#owner-status').textContent === 'Saved.'",
                                timeout=WAIT_MS)
        viewer.wait_for_function("() => document.querySelector('#c-play').disabled", timeout=WAIT_MS)
        assert HOSTS_ONLY_NOTE in viewer.inner_text("#control-note")
        assert viewer.is_disabled("#media-submit")

        # The viewer still follows the room: the owner seeks, the viewer's video goes there.
        owner.evaluate("() => vsync.controls.actions.seek(20)")
        owner.wait_for_function("() => vsync.engine.state.position === 20", timeout=WAIT_MS)
        version = owner.evaluate("() => vsync.engine.version")
        viewer.wait_for_function(f"() => vsync.engine.version === {version} && "
                                 "Math.abs(document.querySelector('video').currentTime - 20) < 0.1", timeout=WAIT_MS)
        # A key press sends nothing and the server refuses the viewer's own command anyway.
        viewer.focus("#player")
        viewer.keyboard.press("Space")
        viewer.wait_for_timeout(500)
        assert viewer.evaluate("() => vsync.engine.version") == version
        refused = viewer.evaluate("""async () => (await vsync.transport.send({type: 'pause', client_id: vsync.clientId,
                                       client_ms: vsync.clock.now(), position: 1})).status""")
        assert refused == 403
        viewer.screenshot(path=str(artifacts / "room-hosts-only-viewer.png"))

        # The owner makes the viewer a host: its controls come back and it can pause the room.
        owner.evaluate("() => vsync.controls.actions.play()")
        member_row(owner, "Vic").get_by_role("button", name="Make host: Vic").click()
        viewer.wait_for_function("() => !document.querySelector('#c-play').disabled", timeout=WAIT_MS)
        assert viewer.is_hidden("#control-note")
        viewer.wait_for_function("() => vsync.engine.state.playing", timeout=WAIT_MS)
        viewer.click("#c-play")
        owner.wait_for_function("() => !vsync.engine.state.playing", timeout=WAIT_MS)
        assert owner.evaluate("() => vsync.engine.state.changed_by") == viewer.evaluate("() => vsync.clientId")
        member_row(owner, "Vic").locator(".role", has_text="host").wait_for(timeout=WAIT_MS)
        owner.screenshot(path=str(artifacts / "room-owner.png"), full_page=True)
    finally:
        owner.context.close()
        viewer.context.close()


def test_a_password_room_asks_for_the_password_before_it_connects(browser: Browser, e2e_server: LiveServer,
                                                                  artifacts: Path):
    slug, token = create_room(e2e_server, "Secret room", password="open sesame")
    guest = open_page(browser, e2e_server, slug, "ws", name="Gus", wait_open=False)
    owner = None
    try:
        guest.wait_for_selector("#gate-password", state="visible", timeout=WAIT_MS)
        assert guest.is_hidden("#room-grid")
        # Nothing of the room reached the page: no state in it, no connection opened.
        assert guest.evaluate("() => JSON.parse(document.getElementById('vsync-config').textContent).state") is None
        assert guest.evaluate("() => vsync.transport") is None
        guest.screenshot(path=str(artifacts / "room-password.png"))

        guest.fill("#gate-password", "wrong")
        guest.click("#gate-form button")
        guest.wait_for_selector("#gate-error", state="visible", timeout=WAIT_MS)
        assert guest.evaluate("() => vsync.transport") is None

        guest.fill("#gate-password", "open sesame")
        guest.click("#gate-form button")
        guest.wait_for_function("() => vsync.transport?.status === 'open' && vsync.engine.version >= 1",
                                timeout=WAIT_MS)
        assert guest.is_hidden("#gate")
        assert guest.evaluate("() => vsync.membership.role") == "viewer"

        # The owner's browser needs no password: its owner token admits it.
        owner = open_page(browser, e2e_server, slug, "poll", name="Olive", owner_token=token)
        assert owner.is_hidden("#gate")
        assert owner.evaluate("() => vsync.membership.role") == "owner"
    finally:
        guest.context.close()
        if owner:
            owner.context.close()


@pytest.mark.parametrize("transport", ["ws", "poll"])
def test_a_kicked_viewer_sees_why_and_stops_reconnecting(browser: Browser, e2e_server: LiveServer, transport: str):
    slug, token = create_room(e2e_server, f"Kick {transport}")
    owner = open_page(browser, e2e_server, slug, "sse", name="Olive", owner_token=token)
    viewer = open_page(browser, e2e_server, slug, transport, name="Kim")
    try:
        owner.on("dialog", lambda dialog: dialog.accept())
        member_row(owner, "Kim").get_by_role("button", name="Ban: Kim").click(timeout=WAIT_MS)
        viewer.wait_for_selector("#ended", state="visible", timeout=WAIT_MS)
        assert "removed" in viewer.inner_text("#ended-text")
        requests: list[str] = []
        viewer.on("request", lambda request: requests.append(request.url))
        viewer.wait_for_timeout(2_000)
        # Stopped for good: no state requests, no new sockets.
        assert not [url for url in requests if "/state" in url or "/poll" in url or "/ws/" in url], requests
        assert viewer.evaluate("() => vsync.transport.status") == "closed"
        # Banned: joining again is refused, and the page says so.
        viewer.click("#ended-rejoin")
        viewer.wait_for_function("() => document.querySelector('#ended-text').textContent.includes('cannot watch')",
                                 timeout=WAIT_MS)
    finally:
        owner.context.close()
        viewer.context.close()
