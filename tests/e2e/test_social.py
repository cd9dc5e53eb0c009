"""Watching together in a real browser: chat over each page's transport, the queue, subtitles."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.test_owner import WAIT_MS, create_room, open_page
from tests.support.servers import ROOT, LiveServer

pytestmark = pytest.mark.e2e

DEMO_FILE = ROOT / "rooms" / "media" / "demo" / "demo.webm"
# Markup in a message must arrive as text: if it were parsed, there would be a <b> in the log.
HOSTILE_TEXT = "<b>bold?</b> & <img src=x onerror=alert(1)>"
SUBTITLE_LINE = "Both of us read this line"
SRT = f"1\n00:00:05,000 --> 00:00:40,000\n{SUBTITLE_LINE}\n"


def chat_texts(page: Page) -> list[str]:
    return page.eval_on_selector_all("#chat-log .chat-text", "nodes => nodes.map(n => n.textContent)")


def wait_for_chat(page: Page, text: str) -> None:
    page.wait_for_function("(text) => [...document.querySelectorAll('#chat-log .chat-text')]"
                           ".some(n => n.textContent === text)", arg=text, timeout=WAIT_MS)


def test_a_chat_message_typed_in_one_page_appears_in_the_others(browser: Browser, e2e_server: LiveServer,
                                                               artifacts: Path):
    slug, token = create_room(e2e_server, "Chatty")
    ws = open_page(browser, e2e_server, slug, "ws", name="Wes", owner_token=token)
    sse = open_page(browser, e2e_server, slug, "sse", name="Sue")
    poll = open_page(browser, e2e_server, slug, "poll", name="Paul")
    try:
        ws.fill("#chat-input", HOSTILE_TEXT)
        ws.press("#chat-input", "Enter")
        for page in (ws, sse, poll):
            wait_for_chat(page, HOSTILE_TEXT)
            assert page.locator("#chat-log b, #chat-log img").count() == 0
        assert ws.input_value("#chat-input") == ""
        assert sse.locator("#chat-log .chat-name").last.inner_text() == "Wes"

        poll.fill("#chat-input", "from short polling")
        poll.press("#chat-input", "Enter")
        sse.fill("#chat-input", "from SSE")
        sse.click("#chat-send")
        for page in (ws, sse, poll):
            wait_for_chat(page, "from short polling")
            wait_for_chat(page, "from SSE")
        # Every page shows the same log in the same order, none twice.
        assert chat_texts(ws) == chat_texts(sse) == chat_texts(poll)
        assert len(chat_texts(ws)) == 3

        # The owner deletes a message: it leaves every pushed page.
        message = ws.locator("#chat-log li", has_text="from SSE")
        message.get_by_role("button", name="Delete: message from Sue").click()
        sse.wait_for_function("() => ![...document.querySelectorAll('#chat-log .chat-text')]"
                              ".some(n => n.textContent === 'from SSE')", timeout=WAIT_MS)
        assert "from SSE" not in chat_texts(ws)
        sse.screenshot(path=str(artifacts / "room-chat.png"))

        # A muted member's message is refused, and the page says why.
        ws.locator("#chat-log li", has_text="from short polling").get_by_role(
            "button", name="Mute 5 min: message from Paul").click()
        ws.wait_for_function("() => document.querySelector('#chat-status').textContent.includes('muted')",
                             timeout=WAIT_MS)
        poll.fill("#chat-input", "can anyone hear me")
        poll.press("#chat-input", "Enter")
        poll.wait_for_function("() => document.querySelector('#chat-status').classList.contains('error')",
                               timeout=WAIT_MS)
        assert poll.input_value("#chat-input") == "can anyone hear me"  # kept, so nothing typed is lost
    finally:
        for page in (ws, sse, poll):
            page.context.close()


def test_unread_count_while_scrolled_up(browser: Browser, e2e_server: LiveServer):
    slug, _ = create_room(e2e_server, "Unread")
    reader = open_page(browser, e2e_server, slug, "poll", name="Reader")
    writer = open_page(browser, e2e_server, slug, "longpoll", name="Writer")
    try:
        for index in range(5):
            writer.fill("#chat-input", f"line {index}\nsecond line\nthird line")
            writer.press("#chat-input", "Enter")
            wait_for_chat(reader, f"line {index}\nsecond line\nthird line")
        reader.evaluate("() => { document.querySelector('#chat-log').scrollTop = 0; }")
        writer.fill("#chat-input", "while you were up there")
        writer.press("#chat-input", "Enter")
        reader.wait_for_selector("#chat-unread", state="visible", timeout=WAIT_MS)
        assert reader.inner_text("#chat-unread") == "1 new message ↓"
        reader.click("#chat-unread")
        reader.wait_for_selector("#chat-unread", state="hidden", timeout=WAIT_MS)
    finally:
        reader.context.close()
        writer.context.close()


def test_the_queue_advances_both_pages_to_the_next_item_together(browser: Browser, e2e_server: LiveServer,
                                                                 artifacts: Path):
    slug, token = create_room(e2e_server, "Queue")
    host = open_page(browser, e2e_server, slug, "ws", name="Hana", owner_token=token)
    guest = open_page(browser, e2e_server, slug, "longpoll", name="Gil")
    try:
        host.fill("#queue-url", "/media/demo.webm")
        host.click("#queue-form button")
        host.set_input_files("#queue-upload", str(DEMO_FILE))
        for page in (host, guest):
            page.wait_for_function("() => document.querySelectorAll('#queue-list li.queue-item').length === 2",
                                   timeout=WAIT_MS * 2)
        assert guest.evaluate("() => vsync.engine.state.queue.map(item => item.source)") == ["demo", "upload"]
        # Reorder by keyboard: the upload moves up to play first.
        host.locator("#queue-list li.queue-item").nth(1).focus()
        host.keyboard.press("Alt+ArrowUp")
        guest.wait_for_function("() => vsync.engine.state.queue[0]?.source === 'upload'", timeout=WAIT_MS)
        # And by drag: the demo back on top; then the keyboard once more, down this time.
        items = host.locator("#queue-list li.queue-item")
        items.nth(1).drag_to(items.nth(0))
        guest.wait_for_function("() => vsync.engine.state.queue[0]?.source === 'demo'", timeout=WAIT_MS)
        host.wait_for_function("() => vsync.engine.state.queue[0]?.source === 'demo'", timeout=WAIT_MS)
        host.locator("#queue-list li.queue-item").nth(0).focus()
        host.keyboard.press("Alt+ArrowDown")
        guest.wait_for_function("() => vsync.engine.state.queue[0]?.source === 'upload'", timeout=WAIT_MS)
        demo_item = guest.locator("#queue-list li.queue-item", has_text="Demo: test pattern")
        assert "1:00" in demo_item.locator(".queue-meta").inner_text()  # the item's duration
        host.screenshot(path=str(artifacts / "room-queue.png"), full_page=True)

        host.evaluate("() => vsync.controls.actions.play()")
        host.click("#queue-next")
        for page in (host, guest):
            page.wait_for_function("() => vsync.engine.state.media.source === 'upload' && "
                                   "vsync.engine.state.queue.length === 1 && vsync.engine.state.playing",
                                   timeout=WAIT_MS)
        version = host.evaluate("() => vsync.engine.version")
        assert guest.evaluate("() => vsync.engine.version") == version
        # Both play the new item from its start, together.
        for page in (host, guest):
            page.wait_for_function("() => { const v = document.querySelector('video'); return !v.paused && "
                                   "v.currentTime > 0.5 && v.currentSrc.includes('/media/') && "
                                   "!v.currentSrc.endsWith('demo.webm'); }", timeout=WAIT_MS)
        positions = [page.evaluate("() => document.querySelector('video').currentTime") for page in (host, guest)]
        assert abs(positions[0] - positions[1]) < 0.5, positions
    finally:
        host.context.close()
        guest.context.close()


def test_a_subtitle_line_is_visible_in_both_pages_at_the_same_media_time(browser: Browser, e2e_server: LiveServer,
                                                                         artifacts: Path, tmp_path: Path):
    slug, token = create_room(e2e_server, "Subtitles")
    one = open_page(browser, e2e_server, slug, "ws", name="Uma", owner_token=token)
    two = open_page(browser, e2e_server, slug, "sse", name="Ted")
    srt = tmp_path / "english.srt"
    srt.write_text(SRT, encoding="utf-8")
    try:
        one.set_input_files("#subtitle-file", str(srt))
        one.fill("#subtitle-form input[name=label]", "English")
        one.fill("#subtitle-form input[name=lang]", "en")
        one.click("#subtitle-form button[type=submit]")
        # The uploader sees its track chosen; the other viewer picks it from the CC menu.
        two.wait_for_function("() => document.querySelectorAll('#subtitle-select option').length === 2",
                              timeout=WAIT_MS)
        assert two.input_value("#subtitle-select") == "off"
        two.select_option("#subtitle-select", label="English")
        one.evaluate("() => vsync.controls.actions.seek(10)")
        for page in (one, two):
            page.wait_for_function(f"""() => document.querySelector('#captions').textContent === {SUBTITLE_LINE!r}
                                      && Math.abs(document.querySelector('video').currentTime - 10) < 0.05""",
                                   timeout=WAIT_MS)
            assert page.is_visible("#captions")
        one.screenshot(path=str(artifacts / "subtitles-one.png"))
        two.screenshot(path=str(artifacts / "subtitles-two.png"))

        # The choice is this viewer's and survives a reload; "off" hides the line.
        two.reload()
        two.wait_for_function(f"() => document.querySelector('#captions').textContent === {SUBTITLE_LINE!r}",
                              timeout=WAIT_MS)
        two.select_option("#subtitle-select", "off")
        assert two.is_hidden("#captions")
        assert one.is_visible("#captions")
    finally:
        one.context.close()
        two.context.close()
