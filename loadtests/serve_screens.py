"""Screenshots of make serve (issue 13): the room page and the lab through nginx over HTTPS/HTTP2.

    python -m loadtests.serve_screens              # starts the stack on a free port
    python -m loadtests.serve_screens --url https://127.0.0.1:8443

(1) /r/<slug>?transport=ws as the room's owner: live, a play command, the page follows;
docs/screens/serve-room.png. (2) /r/<slug>/lab (all four transports) plus 6 extra
EventSource streams in the same tab, 8 or more streams open at once to one origin, which
HTTP/1.1's six connections per origin would block; every request must have gone over h2;
docs/screens/serve-lab.png. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from vsync.launcher import ROOT, free_port

SCREENS = ROOT / "docs" / "screens"
START_TIMEOUT_S = 240.0
WAIT_MS = 15_000
# The lab holds 2 streams (SSE and a pending long poll): 6 more make 8 at once in one tab.
EXTRA_STREAMS = 6
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]


@contextmanager
def serve_stack() -> Iterator[str]:
    """``python -m vsync.deploy.serve`` on a free port, its data in a fresh folder; stopped with SIGTERM."""
    data_dir = Path(tempfile.mkdtemp(prefix="vsync-screens-"))
    data_dir.chmod(0o755)  # nginx's and PostgreSQL's users enter it
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY", "DEBUG", "TLS_CERT", "TLS_KEY", "HOST")}
    env.update(VSYNC_DATA_DIR=str(data_dir), PORT=str(port), WORKERS="2", LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    log = data_dir / "serve.out"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "vsync.deploy.serve"], cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "vsync: https://" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"make serve did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.5)
        yield f"https://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)


def create_room(url: str, name: str) -> tuple[str, str]:
    with httpx.Client(http2=True, verify=False, timeout=15.0) as client:
        answer = client.post(f"{url}/api/rooms", json={"name": name})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return str(body["room"]), str(body["owner_token"])


# Extra EventSource streams in the lab's tab; each records whether a `state` event arrived.
OPEN_EXTRA_JS = """([slug, count]) => {
  window.__extra = [];
  for (let i = 0; i < count; i++) {
    const entry = { states: 0, errors: 0 };
    entry.source = new EventSource(`/api/rooms/${encodeURIComponent(slug)}/events`);
    entry.source.addEventListener('state', () => { entry.states += 1; });
    entry.source.addEventListener('error', () => { entry.errors += 1; });
    window.__extra.push(entry);
  }
}"""
LAB_STATUS_JS = """() => ({
  lab: Object.fromEntries(window.vsync.viewers.map((v) => [v.name, v.transport.status])),
  versions: Object.fromEntries(window.vsync.viewers.map((v) => [v.name, v.engine.version])),
  extra: window.__extra.map((e) => ({ readyState: e.source.readyState, states: e.states, errors: e.errors })),
})"""
PROTOCOLS_JS = """() => {
  const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
  return entries.map((e) => ({ name: e.name, protocol: e.nextHopProtocol }));
}"""


def wait(page, expression: str, timeout_ms: int = WAIT_MS) -> bool:
    """Whether ``expression`` came true within the time (a failure is reported, not raised)."""
    try:
        page.wait_for_function(expression, timeout=timeout_ms)
        return True
    except PlaywrightTimeout:
        return False


def watch(page, problems: list[str]) -> None:
    """Refused WebSocket handshakes, failed requests and HTTP errors, for the summary."""
    page.on("console", lambda m: problems.append(m.text[:200]) if m.type == "error" else None)
    page.on("requestfailed", lambda r: problems.append(f"{r.url[:120]} failed: {r.failure}")
            if "/events" not in r.url and "/media/" not in r.url else None)  # closed EventSources, media ranges


def room_screen(browser, url: str, slug: str, token: str) -> dict:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, ignore_https_errors=True)
    context.add_init_script(f"localStorage.setItem('vsync.name', 'Olive');"
                            f"localStorage.setItem('vsync.owner.{slug}', {json.dumps(token)});")
    page = context.new_page()
    problems: list[str] = []
    watch(page, problems)
    try:
        page.goto(f"{url}/r/{slug}?transport=ws")
        live = wait(page, "() => window.vsync?.transport?.status === 'open'")
        wait(page, "() => window.vsync?.membership?.role === 'owner'", 5_000)
        followed = False
        if live:
            before = page.evaluate("() => window.vsync.engine.version")
            page.evaluate("() => window.vsync.controls.actions.play()")
            followed = wait(page, f"() => vsync.engine.version > {before} && vsync.engine.state.playing "
                                  "&& !document.querySelector('video').paused")
            page.wait_for_timeout(1500)  # the video moves on, the stats fill in
        result = page.evaluate("""() => ({ transport: vsync.transport?.name, status: vsync.transport?.status,
            playing: !!vsync.engine.state?.playing, version: vsync.engine.version, role: vsync.membership.role,
            current_time: document.querySelector('video').currentTime })""")
        result.update(live=live, followed=followed, problems=problems)
        result["protocols"] = sorted({e["protocol"] for e in page.evaluate(PROTOCOLS_JS)})
        SCREENS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENS / "serve-room.png"), full_page=True)
        return result
    finally:
        context.close()


def lab_screen(browser, url: str, slug: str) -> dict:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, ignore_https_errors=True)
    page = context.new_page()
    problems: list[str] = []
    watch(page, problems)
    try:
        page.goto(f"{url}/r/{slug}/lab")
        wait(page, "() => window.vsync?.viewers?.length === 4 && "
                   "window.vsync.viewers.every((v) => v.transport.status === 'open')")
        page.evaluate(OPEN_EXTRA_JS, [slug, EXTRA_STREAMS])
        wait(page, "() => window.__extra.every((e) => e.states > 0)")
        # A seek through the lab's own controls: every open transport's player follows it,
        # and so does every extra stream (its second state event).
        before = page.evaluate("() => Math.max(...window.vsync.viewers.map((v) => v.engine.version))")
        page.click("#lab-fwd")
        wait(page, f"() => window.vsync.viewers.filter((v) => v.transport.status === 'open')"
                   f".every((v) => v.engine.version > {before}) && window.__extra.every((e) => e.states > 1)")
        page.wait_for_timeout(1500)  # the stats and histograms fill in
        status = page.evaluate(LAB_STATUS_JS)
        entries = page.evaluate(PROTOCOLS_JS)
        status["protocols"] = sorted({e["protocol"] for e in entries})
        status["requests"] = len(entries)
        status["not_h2"] = [e for e in entries if e["protocol"] != "h2"]
        status["problems"] = problems
        SCREENS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENS / "serve-lab.png"), full_page=True)
        return status
    finally:
        context.close()


def run(url: str) -> int:
    slug, token = create_room(url, "Served over HTTP2")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            room = room_screen(browser, url, slug, token)
            lab = lab_screen(browser, url, slug)
        finally:
            browser.close()
    lab_open = [name for name, status in lab["lab"].items() if status == "open"]
    receiving = sum(1 for e in lab["extra"] if e["states"] > 1 and e["readyState"] == 1)
    # Held open at once in the lab's tab: its SSE stream and pending long poll, plus the extra streams.
    held = sum(1 for name in ("sse", "longpoll") if name in lab_open) + receiving
    print(f"url: {url}   room: {slug}")
    print(f"room page (?transport=ws, owner): transport {room['transport']} {room['status']}, role {room['role']}, "
          f"play followed: {room['followed']} (version {room['version']}, playing {room['playing']}, "
          f"video at {room['current_time']:.2f} s)")
    print(f"lab page: transports open {len(lab_open)}/4 {lab['lab']}; versions {lab['versions']}")
    print(f"lab tab: extra EventSource streams receiving {receiving}/{EXTRA_STREAMS}; "
          f"SSE/long-poll streams held open at once: {held}")
    print(f"protocol (nextHopProtocol): lab {lab['protocols']} over {lab['requests']} requests, "
          f"room page {room['protocols']}")
    if lab["not_h2"]:
        print(f"not over h2: {lab['not_h2']}")
    for where, problems in (("room page", room["problems"]), ("lab page", lab["problems"])):
        if problems:
            print(f"{where} errors ({len(problems)}), first: {problems[0]}")
    print(f"screenshots: {SCREENS / 'serve-room.png'}, {SCREENS / 'serve-lab.png'}")
    ok = (room["live"] and room["followed"] and len(lab_open) == 4 and receiving == EXTRA_STREAMS
          and held >= 8 and lab["protocols"] == ["h2"] and room["protocols"] == ["h2"])
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running make serve (https://host:port); default: start one")
    args = parser.parse_args()
    if args.url:
        sys.exit(run(args.url.rstrip("/")))
    with serve_stack() as url:
        code = run(url)
    sys.exit(code)


if __name__ == "__main__":
    main()
