// The sync engine: applies room states to a <video>, monotonically, and keeps it on
// the room's trajectory. It never sends anything: only gestures (controls.js) do,
// so applying a received state can never echo back as a command.

// Drift control, measured with loadtests/sync_accuracy.py (see README):
export const DRIFT = {
  // Start nudging above this drift, stop below DEADBAND_EXIT_MS: the gap keeps the
  // rate from flapping on measurement noise. At room rate 1 nudges resample and the
  // median drift is steady to a fraction of a ms, so the band is narrow; at other rates
  // the stretcher makes currentTime wander (±5 ms) and each nudge restarts it.
  DEADBAND_MS: 2.5,
  DEADBAND_EXIT_MS: 1,
  DEADBAND_STRETCHED_MS: 5,
  DEADBAND_STRETCHED_EXIT_MS: 2,
  // Close the drift over about this long: fast enough to converge within a couple
  // of seconds after a late delivery, slow enough that nobody sees it.
  CORRECTION_S: 0.5,
  // Tempo changes up to 10% are not noticed with pitch preserved; seeking is.
  NUDGE_MAX: 0.1,
  // Right after a new state or a start (CATCH_UP_MS) the picture has just changed and the
  // drift is a known deficit (a version heard late, a start that landed late), not noise: it
  // is closed up to this much faster, with the pitch kept. Measured at a 6x CPU slowdown: a
  // start landed 100 ms late and a rate change heard 500 ms late left 250 ms, which NUDGE_MAX
  // took 1.5-2.5 s to close and a seek on that page froze the picture for 0.3-0.9 s.
  NUDGE_MAX_CATCH_UP: 0.25,
  // A drift that a nudge at the rate allowed (NUDGE_MAX, or NUDGE_MAX_CATCH_UP) would take
  // longer than this to close is not nudged: stop, stand on the frame where the room will be once
  // this page can be there, and start again on time (a planned start, judged and learned from like
  // a scheduled one). So 200 ms in steady play. Measured: at a 4x CPU slowdown a start landed
  // 180-290 ms late, which nudging at NUDGE_MAX took over 3 s to close. (Syncplay seeks from 1.5 s;
  // Jellyfin seeks and nudges from 60 ms and its users reported stutter.)
  NUDGE_HORIZON_S: 2,
};
// Sampling and following are timed by the clock, not by counting ticks: a page whose main
// thread is starved (a phone, or Chromium's CPU throttling) gets its timers late and seldom.
const TICK_MS = 100;
// The position is sampled this often and the drift is the median of the samples of the last
// DRIFT_WINDOW_MS, each carried to the present at the rate the video played (so a starved
// page's few, old samples do not lag behind a nudge and overshoot): while the pitch-preserving
// stretcher runs (room rate != 1) Chromium's currentTime wanders a few ms either way.
const SAMPLE_MS = 25;
const DRIFT_WINDOW = 8;
const DRIFT_WINDOW_MS = 250;
// Nudges move in steps of this much: every rate assignment restarts the stretcher.
const NUDGE_STEP = 0.005;
// Below this change the rate is left alone: every assignment wakes the audio stretcher.
const RATE_EPSILON = 0.002;
// A paused video this far from the room's position is moved there.
const PAUSED_TOLERANCE_MS = 2;
// How long a seek takes (currentTime set to "seeked"): a first guess, then learned from every
// seek. A planned start leaves this much (and a margin) for the seek before play() is due.
const SEEK_LATENCY_INITIAL_MS = 120;
const SEEK_LATENCY_MAX_MS = 1_000;
const SEEK_LEARN_GAIN = 0.4;
const SEEK_MARGIN = 0.3;
// play() takes a while to get the media clock moving (decoder and audio sink start): call
// it this much before the planned start. Then learned from how late each start really
// was: the "playing" event comes long before the clock runs at speed (measured in headless
// Chromium: the event after about 10 ms, the clock 50-60 ms behind after 200 ms). With the
// timers' lateness taken out, pages learned 80-98 ms within three or four starts, unthrottled
// and at a 4x and 6x CPU slowdown alike (sync_accuracy); from 60 ms their first starts landed
// 10-40 ms late.
const START_LATENCY_INITIAL_MS = 90;
const START_LATENCY_MAX_MS = 400;
// A start is judged on the drift between these two moments after it (the clock ramps up over
// the first 150 ms or so), and nothing is corrected before the judgement. A starved page may
// have no sample by then: it waits for one, up to START_GIVE_UP_MS.
const START_RAMP_MS = 200;
const START_JUDGED_MS = 320;
const START_GIVE_UP_MS = 1_500;
const START_LEARN_GAIN = 0.5;
// One start's lesson is clipped to this: on a page starved at random, one wild start must
// not throw the next one as far the other way (measured at 4x CPU slowdown under a loaded
// machine: without it the learned latency swung between 100 and 600 ms).
const START_LEARN_CLIP_MS = 80;
// How far planned starts typically land off (a running mean of |landed|): a drift is worth
// a seek and a planned start only if it is well beyond that (else nudge).
const START_ERROR_INITIAL_MS = 40;
const START_ERROR_GAIN = 0.3;
const SEEK_OVER_START_ERROR = 2.5;
// Timers fire late on a busy page: a planned start leaves at least this much besides the latencies.
const TIMER_SLACK_MS = 20;
// How late this page's timers fire, learned from the sampling ticker from the first second on:
// a planned play() is armed that much early. Measured at a 6x CPU slowdown: start timers fired
// 30-105 ms late, and every start landed that much behind until the start-up latency had
// learned it (a few starts, each clipped).
const TIMER_LATE_GAIN = 0.05;
const TIMER_LATE_MAX_MS = 200;
// How long after a new state or a start a drift counts as a known deficit (DRIFT.NUDGE_MAX_CATCH_UP).
const CATCH_UP_MS = 2_000;
// Even on an idle page one long timer fired 0-25 ms late (unthrottled, measured): the start timer is
// armed this much earlier still, and the last stretch is waited out in tasks that yield to the page
// (a MessageChannel), looking at the clock each time.
const FINAL_APPROACH_MS = 30;
// A paused page that would start at most this late without seeking starts at once and nudges
// the rest: on a slow page a seek costs more than it saves.
const LATE_START_NUDGE_MS = 60;
// Every seek freezes the picture, for long on a slow page: a new state allows this many, and
// then one more every SEEK_REFILL_MS (a page starved at random cannot be planned for, but a page
// that keeps stalling must not stay hundreds of ms behind either: on a loaded two-core machine
// Chromium stalled playback for 200-800 ms every 2-5 s with all the media buffered, faster than
// a nudge at NUDGE_MAX wins it back).
const SEEKS_PER_STATE = 2;
const SEEK_REFILL_MS = 2_500;
// ... and beyond this drift a seek is always worth it: nudging it away would take over 5 s
// (after a server restart the e2e pages were 0.9-1.9 s behind, on media fetched again).
const LAST_RESORT_SEEK_MS = 500;
const HAVE_FUTURE_DATA = 3;
// The engine's own account of what it did, newest last (vsync.engine.trace): read by the
// e2e tests when pages disagree, and by anyone debugging a page.
const TRACE_LENGTH = 200;
const TRACE_DRIFT_EVERY_MS = 250;

export class Engine {
  constructor({ video, clock, onState = () => {}, onAutoplayBlocked = () => {} }) {
    this.video = video;
    this.clock = clock;
    this.onState = onState;
    this.onAutoplayBlocked = onAutoplayBlocked;
    this.state = null;
    this.version = 0;
    this.versionsReceived = 0;
    this.lastLatencyMs = null;
    this.driftMs = null;
    this.seeks = 0;
    this.nudges = 0; // times a nudge began (the drift left the dead band)
    this.lastSeekTookMs = null;
    this.nudging = false;
    this.seekLatencyMs = SEEK_LATENCY_INITIAL_MS;
    this.startLatencyMs = START_LATENCY_INITIAL_MS;
    this.lastStartMs = null; // how far off the room the last planned start landed
    this.timerLateMs = 0;
    this._lastTickAt = null;
    this._catchUpUntil = 0;
    this.startErrorMs = START_ERROR_INITIAL_MS;
    // The start this page is working towards: {startAt (server ms), target (s), issuedAt, late}.
    this._plan = null;
    this._startTimer = null;
    this._planCount = 0;
    this._approaching = null; // a MessageChannel, for the last stretch before a planned play()
    this._seekStartedAt = null;
    video.addEventListener("loadedmetadata", () => this._follow());
    video.addEventListener("seeked", () => this._seeked());
    for (const name of ["waiting", "stalled", "playing"]) {
      video.addEventListener(name, () => this._note(name, { ready: video.readyState }));
    }
    // Playback that stops for want of data or decoded frames: a start it hits teaches nothing.
    video.addEventListener("waiting", () => { if (this._plan?.issuedAt) this._plan.stalled = true; });
    this._samples = [];
    // Seeks this page may still make (a bucket: SEEKS_PER_STATE for a new state, refilled).
    this._seekTokens = SEEKS_PER_STATE;
    this._seekTokensAt = 0;
    this._lastFollowAt = 0;
    this.trace = [];
    this._lastDriftNote = 0;
    this._ticker = setInterval(() => this._tick(), SAMPLE_MS);
  }

  _note(event, fields = {}) {
    const at = Math.round(this.clock.now());
    this.trace.push({ at, event, position: Math.round(this.video.currentTime * 1000) / 1000, ...fields });
    if (this.trace.length > TRACE_LENGTH) this.trace.shift();
  }

  // What this page needs, from receiving a state, to be on the frame at a given moment.
  get startupMs() {
    return this.seekLatencyMs * (1 + SEEK_MARGIN) + this.startLatencyMs + this._timerSlackMs;
  }

  get _timerSlackMs() {
    return Math.max(TIMER_SLACK_MS, this.timerLateMs);
  }

  // Apply a state if it is newer than anything seen; returns whether it was.
  receive(state) {
    if (!state || state.version <= this.version) return false;
    // The first state is the page's starting point: its age is not a delivery latency.
    if (this.version > 0) this.lastLatencyMs = this.clock.now() - state.changed_ms;
    this.version = state.version;
    this.versionsReceived += 1;
    const previous = this.state;
    const mediaChanged = !previous || previous.media.url !== state.media.url;
    // A version that leaves the trajectory alone (the queue changed, say) keeps a start in
    // progress and the drift samples.
    const sameCourse = !mediaChanged && previous.playing === state.playing && previous.position === state.position
      && previous.anchor_ms === state.anchor_ms && previous.rate === state.rate;
    this.state = state;
    this._note("state", { version: state.version, playing: state.playing, anchor_in_ms: Math.round(state.anchor_ms - this.clock.now()) });
    if (mediaChanged) this._load(state.media.url);
    if (!sameCourse) {
      this._dropPlan();
      this._samples = [];
      this._seekTokens = SEEKS_PER_STATE;
      this._seekTokensAt = this.clock.now();
      this._catchUpUntil = this.clock.now() + CATCH_UP_MS;
      this._follow();
    }
    this.onState(state);
    return true;
  }

  // Where the room is at server time t (the contract's formula).
  positionAt(t = this.clock.now()) {
    const s = this.state;
    if (!s) return 0;
    let position = s.position;
    if (s.playing && t >= s.anchor_ms) position += (s.rate * (t - s.anchor_ms)) / 1000;
    const duration = this._duration();
    return duration !== null ? Math.min(position, duration) : position;
  }

  get buffering() {
    const s = this.state;
    if (!s || !this.video.src) return false;
    // Waiting for a start (the room's or this page's own planned one) is not buffering.
    if (s.playing && (this.clock.now() < s.anchor_ms || (this._plan && this._plan.issuedAt === null))) return false;
    return this.video.readyState < HAVE_FUTURE_DATA || this.video.seeking;
  }

  get status() {
    if (document.hidden) return "away";
    if (this.buffering) return "buffering";
    return this.state?.playing ? "playing" : "paused";
  }

  destroy() {
    clearInterval(this._ticker);
    this._dropPlan();
  }

  _duration() {
    const d = this.state?.media.duration;
    if (d !== null && d !== undefined) return d;
    return Number.isFinite(this.video.duration) ? this.video.duration : null;
  }

  _tick() {
    const at = performance.now();
    if (this._lastTickAt !== null && !document.hidden) {
      const late = Math.min(TIMER_LATE_MAX_MS, Math.max(0, at - this._lastTickAt - SAMPLE_MS));
      this.timerLateMs += TIMER_LATE_GAIN * (late - this.timerLateMs);
    }
    this._lastTickAt = at;
    this._sample();
    if (performance.now() - this._lastFollowAt >= TICK_MS) this._follow();
  }

  // Record the drift while the video plays steadily on the room's trajectory.
  _sample() {
    const s = this.state;
    const video = this.video;
    if (!s?.playing || video.paused || video.seeking || video.readyState < HAVE_FUTURE_DATA) return;
    const now = this.clock.now();
    if (now < s.anchor_ms) return;
    const plan = this._plan;
    if (plan && (plan.issuedAt === null || now < plan.startAt + START_RAMP_MS)) return;
    this._samples.push({ at: now, driftMs: (video.currentTime - this.positionAt(now)) * 1000, rate: video.playbackRate });
    if (now - this._lastDriftNote >= TRACE_DRIFT_EVERY_MS) {
      this._lastDriftNote = now;
      this._note("drift", { drift_ms: Math.round(this._samples.at(-1).driftMs), rate: video.playbackRate });
    }
    while (this._samples.length > DRIFT_WINDOW || (this._samples.length > 1 && now - this._samples[0].at > DRIFT_WINDOW_MS)) {
      this._samples.shift();
    }
  }

  // The median of the recent samples, each carried to `now` at the rate the video played.
  _smoothedDrift(now, raw) {
    if (this._samples.length === 0) return raw;
    const rate = this.state.rate;
    const carried = this._samples.map((x) => x.driftMs + (x.rate - rate) * (now - x.at)).sort((a, b) => a - b);
    return carried[carried.length >> 1];
  }

  _load(url) {
    this.video.src = url;
    this.video.load();
  }

  // Bring the video onto the room's trajectory.
  _follow() {
    this._lastFollowAt = performance.now();
    const s = this.state;
    const video = this.video;
    if (!s || video.readyState === 0) return;
    const now = this.clock.now();
    const expected = this.positionAt(now);
    const raw = (video.currentTime - expected) * 1000;
    this.driftMs = s.playing && !video.paused ? this._smoothedDrift(now, raw) : raw;

    if (!s.playing) {
      this._dropPlan();
      this._setRate(s.rate);
      if (!video.paused) video.pause();
      if (Math.abs(this.driftMs) > PAUSED_TOLERANCE_MS && !video.seeking) this._seek(s.position);
      return;
    }
    const duration = this._duration();
    if (duration !== null && expected >= duration - 0.05) {
      this._dropPlan();
      if (!video.paused) video.pause(); // the end: play() would start over from 0
      return;
    }
    const plan = this._plan;
    if (plan && plan.issuedAt === null) {
      this._hold(plan);
      return;
    }
    if (plan) {
      if (now < plan.startAt + START_JUDGED_MS) return; // the start is still ramping up
      if (!this._judgeStart(plan, now)) return;
    }
    if (now < s.anchor_ms) {
      this._planStart(now, s.anchor_ms);
      return;
    }
    if (video.paused) {
      this._planStart(now, now);
      return;
    }
    if (video.seeking || video.readyState < HAVE_FUTURE_DATA) return;
    this._correct(s, now);
  }

  // Plan to be on the room's trajectory from `earliest` on (the anchor, or now), or as soon
  // after it as this page can be: its seek and start-up latencies, as learned, decide.
  _planStart(now, earliest) {
    const s = this.state;
    const video = this.video;
    const startAt = (t) => Math.max(t, s.anchor_ms);
    let at = startAt(earliest);
    let target = this.positionAt(at);
    // Already on the frame and at most a little late: start at once (the judgement allows for
    // the lateness) and nudge the rest. Otherwise seek, and start when this page can be there.
    const standing = video.paused && !video.seeking && Math.abs(video.currentTime - target) * 1000 <= 1;
    const lateWithoutSeek = now + this.startLatencyMs + this._timerSlackMs - at;
    if (!standing || lateWithoutSeek > LATE_START_NUDGE_MS) {
      const ready = now + this.startupMs;
      if (ready > at) {
        at = startAt(ready);
        target = this.positionAt(at);
      }
    }
    if (!video.paused) video.pause();
    this._setRate(s.rate);
    const due = at - this.startLatencyMs;
    this._planCount += 1;
    this._plan = { id: this._planCount, startAt: at, target, issuedAt: null, late: false, due, planned: Math.max(now, due) };
    this._note("plan", { start_in_ms: Math.round(at - now), target, standing, seek_latency_ms: Math.round(this.seekLatencyMs),
                         start_latency_ms: Math.round(this.startLatencyMs), timer_late_ms: Math.round(this.timerLateMs) });
    this._hold(this._plan);
    const plan = this._plan;
    this._startTimer = setTimeout(() => this._approachStart(plan), plan.planned - now - this.timerLateMs - FINAL_APPROACH_MS);
  }

  // Before a planned start: stand on its first frame.
  _hold(plan) {
    const video = this.video;
    if (!video.paused) video.pause();
    if (!video.seeking && Math.abs(video.currentTime - plan.target) * 1000 > 1) this._seek(plan.target);
  }

  // Call play() at the planned moment: look at the clock, and yield until it has come.
  _approachStart(plan) {
    this._startTimer = null;
    if (this._plan !== plan || plan.issuedAt !== null) return; // dropped or replaced meanwhile
    if (this.clock.now() >= plan.planned) {
      this._start();
      return;
    }
    this._approaching ??= this._approachChannel();
    this._approaching.port2.postMessage(plan.id);
  }

  _approachChannel() {
    const channel = new MessageChannel();
    channel.port1.onmessage = ({ data: id }) => { if (this._plan?.id === id) this._approachStart(this._plan); };
    return channel;
  }

  _start() {
    const s = this.state;
    const plan = this._plan;
    if (!s?.playing || !plan) return;
    this._setRate(s.rate);
    // A seek still running means the start will be as late as the seek overran: nothing to
    // learn about the start-up itself from it.
    plan.late = this.video.seeking;
    plan.issuedAt = this.clock.now();
    this._note("play", { late_ms: Math.round(plan.issuedAt - plan.due), seeking: plan.late });
    this._play();
  }

  // Learn from how late (or early) this start really was, so that the next one is on time.
  // Returns whether the start is over (judged, or given up on).
  _judgeStart(plan, now) {
    if (this._samples.length === 0 && now < plan.startAt + START_GIVE_UP_MS) return false;
    this._plan = null;
    if (this._samples.length === 0) {
      this._note("stalled");
      return true; // a stall: learn nothing
    }
    const landed = this.driftMs;
    this.lastStartMs = landed;
    this._note("landed", { drift_ms: Math.round(landed), samples: this._samples.length });
    this._catchUpUntil = now + CATCH_UP_MS;
    if (plan.late || plan.stalled) return true;
    // The start-up latency is what followed play(): how late play() itself was issued (on
    // purpose, by a page standing on the frame a little late, or by a timer firing off its
    // learned lateness) is taken out.
    const deliberate = Math.max(0, plan.planned - plan.due);
    const issuedLate = plan.issuedAt - plan.due;
    const error = Math.max(-START_LEARN_CLIP_MS, Math.min(START_LEARN_CLIP_MS, -landed - issuedLate));
    this.startLatencyMs = Math.max(0, Math.min(START_LATENCY_MAX_MS, this.startLatencyMs + START_LEARN_GAIN * error));
    this.startErrorMs += START_ERROR_GAIN * (Math.abs(landed + deliberate) - this.startErrorMs);
    return true;
  }

  // Seeks this page may still make (see SEEKS_PER_STATE).
  _seekAllowance(now) {
    this._seekTokens = Math.min(SEEKS_PER_STATE, this._seekTokens + Math.max(0, now - this._seekTokensAt) / SEEK_REFILL_MS);
    this._seekTokensAt = now;
    return this._seekTokens;
  }

  _dropPlan() {
    clearTimeout(this._startTimer);
    this._startTimer = null;
    this._plan = null;
  }

  _correct(s, now) {
    const drift = this.driftMs;
    const magnitude = Math.abs(drift);
    // A seek is worth it only beyond what a nudge closes soon and well beyond how far starts
    // land off, and always beyond LAST_RESORT_SEEK_MS.
    const catchingUp = now < this._catchUpUntil;
    const nudgeMax = catchingUp ? DRIFT.NUDGE_MAX_CATCH_UP : DRIFT.NUDGE_MAX;
    const seekBeyond = Math.min(LAST_RESORT_SEEK_MS, Math.max(nudgeMax * DRIFT.NUDGE_HORIZON_S * 1000,
                                                              SEEK_OVER_START_ERROR * this.startErrorMs));
    const seeksLeft = this._seekAllowance(now) >= 1 || magnitude > LAST_RESORT_SEEK_MS;
    if (magnitude > seekBeyond && seeksLeft) {
      this._note("replan", { drift_ms: Math.round(drift) });
      this.nudging = false;
      this._planStart(now, now);
      return;
    }
    const stretched = s.rate !== 1;
    if (magnitude > (stretched ? DRIFT.DEADBAND_STRETCHED_MS : DRIFT.DEADBAND_MS)) {
      if (!this.nudging) {
        this.nudges += 1;
        this._note("nudge", { drift_ms: Math.round(drift) });
      }
      this.nudging = true;
    } else if (this.nudging && magnitude < (stretched ? DRIFT.DEADBAND_STRETCHED_EXIT_MS : DRIFT.DEADBAND_EXIT_MS)) {
      this.nudging = false;
      this._note("in band", { drift_ms: Math.round(drift * 10) / 10 });
    }
    if (!this.nudging) {
      this._setRate(s.rate);
      return;
    }
    const wanted = Math.max(-nudgeMax, Math.min(nudgeMax, drift / 1000 / DRIFT.CORRECTION_S));
    const nudge = Math.round(wanted / NUDGE_STEP) * NUDGE_STEP;
    this._setRate(s.rate * (1 - nudge));
  }

  _setRate(rate) {
    // Chromium's pitch-preserving stretcher (WSOLA) stalls for 15-60 ms whenever the rate
    // leaves 1 and moves `currentTime` in steps of a few ms while it runs; plain resampling
    // changes rate cleanly (measured: see README). At the room rate of 1 a nudge therefore
    // resamples (a brief pitch shift of at most NUDGE_MAX); other room rates keep the pitch.
    // A catch-up beyond NUDGE_MAX keeps the pitch too.
    const preservePitch = this.state !== null && (this.state.rate !== 1 || Math.abs(rate / this.state.rate - 1) > DRIFT.NUDGE_MAX + 1e-9);
    if (this.video.preservesPitch !== preservePitch) this.video.preservesPitch = preservePitch;
    if (Math.abs(this.video.playbackRate - rate) > RATE_EPSILON || (rate === this.state?.rate && this.video.playbackRate !== rate)) {
      this.video.playbackRate = rate;
    }
  }

  _seek(position) {
    this._note("seek", { to: position });
    this.seeks += 1;
    this._seekTokens -= 1;
    this._samples = [];
    this._seekStartedAt = performance.now();
    this.video.currentTime = position;
  }

  // Learn how long a seek takes here (paused or playing: a planned start seeks while paused).
  _seeked() {
    if (this._seekStartedAt === null) return;
    const took = performance.now() - this._seekStartedAt;
    this.lastSeekTookMs = took;
    this._note("seeked", { took_ms: Math.round(took) });
    this.seekLatencyMs = Math.min(SEEK_LATENCY_MAX_MS, (1 - SEEK_LEARN_GAIN) * this.seekLatencyMs + SEEK_LEARN_GAIN * took);
    this._seekStartedAt = null;
  }

  _play() {
    const promise = this.video.play();
    promise?.catch((error) => {
      if (error.name !== "NotAllowedError") return;
      // Browsers let muted video start without a gesture; offer the sound back.
      this.video.muted = true;
      this.onAutoplayBlocked();
      this.video.play().catch(() => {});
    });
  }
}
