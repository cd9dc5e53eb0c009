"""The room page's own features in a real browser: live transport switch, media URL box, upload."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.e2e.support import open_viewer
from tests.support.servers import ROOT, LiveServer

pytestmark = pytest.mark.e2e

DEMO_FILE = ROOT / "rooms" / "media" / "demo" / "demo.webm"


def test_switching_transport_keeps_the_room_and_its_version(browser: Browser, e2e_server: LiveServer, make_room):
    room = make_room("Switch")
    page = open_viewer(browser, e2e_server.url, room.slug, "poll")
    try:
        page.wait_for_function("() => window.vsync?.transport?.status === 'open'", timeout=10_000)
        url_before = page.url
        for transport in ("sse", "ws", "longpoll"):
            page.check(f"#transport-picker input[value={transport}]")
            page.wait_for_function(f"() => vsync.transport.name === '{transport}' && vsync.transport.status === 'open'",
                                   timeout=10_000)
            room.command(type="seek", position=float(len(transport)))
            version = room.state().version
            page.wait_for_function(f"() => vsync.engine.version === {version}", timeout=10_000)
            assert page.url.endswith(f"transport={transport}")
        assert page.url.split("?")[0] == url_before.split("?")[0]
        assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1  # never reloaded
    finally:
        page.context.close()


def test_media_url_box_shows_the_servers_error(browser: Browser, e2e_server: LiveServer, make_room):
    room = make_room("Bad URL")
    page = open_viewer(browser, e2e_server.url, room.slug, "ws")
    try:
        page.wait_for_function("() => window.vsync?.transport?.status === 'open'", timeout=10_000)
        page.fill("#media-url", "ftp://example.invalid/video.mp4")
        page.click("#media-submit")
        page.wait_for_function("() => document.querySelector('#media-status').classList.contains('error')",
                               timeout=10_000)
        assert "http" in page.inner_text("#media-status")
        assert room.state().version == 1
    finally:
        page.context.close()


def test_upload_shows_progress_and_switches_everyone(browser: Browser, e2e_server: LiveServer, make_room):
    room = make_room("Upload")
    uploader = open_viewer(browser, e2e_server.url, room.slug, "sse")
    watcher = open_viewer(browser, e2e_server.url, room.slug, "longpoll")
    try:
        for page in (uploader, watcher):
            page.wait_for_function("() => window.vsync?.transport?.status === 'open'", timeout=10_000)
        uploader.evaluate("""() => { const bar = document.querySelector('#upload-progress');
            window.progressShown = false;
            new MutationObserver(() => { window.progressShown ||= !bar.hidden; })
              .observe(bar, {attributes: true}); }""")
        uploader.set_input_files("#upload", str(DEMO_FILE))
        uploader.wait_for_function("() => vsync.engine.state.media.source === 'upload'", timeout=20_000)
        watcher.wait_for_function("() => vsync.engine.state.media.source === 'upload' && "
                                  "document.querySelector('video').readyState >= 2", timeout=20_000)
        assert room.state().changed_by == uploader.evaluate("() => vsync.clientId")
        assert uploader.evaluate("() => window.progressShown")
        assert uploader.is_hidden("#upload-progress")
    finally:
        uploader.context.close()
        watcher.context.close()


def test_a_video_that_fails_to_play_is_reported_for_re_resolution(browser: Browser, e2e_server: LiveServer,
                                                                  make_room):
    room = make_room("Broken media")
    context = browser.new_context()
    # What an expired stream URL looks like to the browser: something that is not the video.
    context.route("**/media/demo.webm", lambda route: route.fulfill(status=403, body=b"expired",
                                                                     content_type="text/plain"))
    page = context.new_page()
    try:
        with page.expect_request("**/media/error", timeout=10_000) as reported:
            page.goto(f"{e2e_server.url}/r/{room.slug}?transport=ws")
        body = reported.value.post_data_json
        assert body == {"client_id": page.evaluate("() => vsync.clientId"), "url": "/media/demo.webm"}
        assert "failed" in page.inner_text("#media-status")
    finally:
        context.close()
