"""The sync engine (templates/static/vsync/sync.js) alone, in Chromium, on a model video.

The room-page tests judge the engine on real media through the transports; these pin two of its
rules where a real video's noise would hide them: a page learns how late its timers fire (and plans
starts with it), and a known deficit is caught up faster than a drift found in steady play.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page

from tests.support.servers import LiveServer

pytestmark = pytest.mark.e2e

# A video whose clock runs at playbackRate in real time; seeks take 50 ms.
MODEL = """
window.ModelVideo = class extends EventTarget {
  constructor(position) {
    super();
    Object.assign(this, { _pos: position, _at: performance.now(), _rate: 1, paused: true, seeking: false,
                          readyState: 4, preservesPitch: true, duration: 60, src: "", muted: false, rates: [] });
  }
  _now() { return this.paused ? this._pos : this._pos + this._rate * (performance.now() - this._at) / 1000; }
  _rebase() { this._pos = this._now(); this._at = performance.now(); }
  get currentTime() { return this._now(); }
  set currentTime(value) {
    this._pos = value; this._at = performance.now(); this.seeking = true;
    setTimeout(() => { this.seeking = false; this.dispatchEvent(new Event("seeked")); }, 50);
  }
  get playbackRate() { return this._rate; }
  set playbackRate(rate) { this._rebase(); this._rate = rate; this.rates.push([rate, this.preservesPitch]); }
  play() { this._rebase(); this.paused = false; return Promise.resolve(); }
  pause() { this._rebase(); this.paused = true; }
  load() {}
  jump(ms) { this._rebase(); this._pos += ms / 1000; }
};
window.roomState = (version, position, anchorMs, rate = 1) => ({
  room: "model", version, playing: true, position, anchor_ms: anchorMs, rate, changed_by: null, changed_ms: anchorMs,
  media: { url: "/media/model.webm", title: "Model", duration: 60, source: "direct" } });
"""


@pytest.fixture
def page(browser: Browser, e2e_server: LiveServer) -> Page:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{e2e_server.url}/")
    page.evaluate(MODEL)
    page.evaluate("""async () => {
        const { Engine, DRIFT } = await import('/static/vsync/sync.js');
        window.DRIFT = DRIFT;
        window.makeEngine = (video) => new Engine({ video, clock: { now: () => Date.now() } });
    }""")
    return page


def test_a_page_learns_how_late_its_timers_fire_and_leaves_that_for_a_start(page: Page):
    learned = page.evaluate("""async () => {
        const calm = makeEngine(new ModelVideo(0));
        const busy = makeEngine(new ModelVideo(0));
        await new Promise((done) => setTimeout(done, 1_500));
        const calmLate = calm.timerLateMs;
        // The main thread busy for 40 ms out of every 60, as on a starved phone.
        const hog = setInterval(() => { const until = performance.now() + 40; while (performance.now() < until); }, 60);
        const quiet = busy.timerLateMs;
        await new Promise((done) => setTimeout(done, 2_500));
        clearInterval(hog);
        const result = { calmLate, quiet, busyLate: busy.timerLateMs, startup: busy.startupMs,
                         startupWithout: busy.seekLatencyMs * 1.3 + busy.startLatencyMs };
        calm.destroy(); busy.destroy();
        return result;
    }""")
    assert learned["busyLate"] > learned["calmLate"] + 10, learned
    # About how late (the hog holds the thread 40 ms at a time), not the 200 ms cap.
    assert learned["busyLate"] < 100, learned
    # A planned start leaves the page's timer lateness besides its seek and start-up latency.
    assert learned["startup"] == pytest.approx(learned["startupWithout"] + max(20, learned["busyLate"]), abs=1), learned


def test_a_deficit_just_handed_over_is_caught_up_faster_than_one_found_in_steady_play(page: Page):
    rates = page.evaluate("""async () => {
        const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
        const video = new ModelVideo(0);
        const engine = makeEngine(video);
        // Playing, and the room's state arrives saying the room is 150 ms further on (a rate
        // change heard late, say): a deficit handed over with the state.
        video.play();
        const now = Date.now();
        engine.receive(roomState(1, 10, now - 1_000));  // the first state: the page's starting point
        await sleep(2_600);  // on the trajectory, past the catch-up window
        const settled = engine.driftMs;
        video.rates.length = 0;
        video.jump(-150);
        engine.receive(roomState(2, 10 + (Date.now() - (now - 1_000)) / 1000, Date.now()));
        await sleep(300);
        const caughtUp = { rates: video.rates.slice(), drift: engine.driftMs };
        await sleep(2_700);  // the catch-up window has passed
        const closed = engine.driftMs;
        video.rates.length = 0;
        video.jump(-150);  // the same deficit in steady play (a stall, say): nudged, not caught up
        await sleep(300);
        const steady = { rates: video.rates.slice(), drift: engine.driftMs };
        engine.destroy();
        return { settled, caughtUp, closed, steady, max: DRIFT.NUDGE_MAX, catchUp: DRIFT.NUDGE_MAX_CATCH_UP };
    }""")
    assert abs(rates["settled"]) < 5, rates
    fastest = max(rate for rate, _ in rates["caughtUp"]["rates"])
    assert fastest == pytest.approx(1 + rates["catchUp"], abs=0.006), rates
    # Faster than a nudge may go, and with the pitch kept.
    assert all(pitch for rate, pitch in rates["caughtUp"]["rates"] if rate > 1 + rates["max"] + 1e-9), rates
    assert abs(rates["closed"]) < 5, rates
    steady = [rate for rate, _ in rates["steady"]["rates"]]
    assert steady and max(steady) <= 1 + rates["max"] + 1e-9, rates
