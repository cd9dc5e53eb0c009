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
  // Beyond this a nudge would take seconds: seek instead (Syncplay: 1.5 s; Jellyfin
  // seeks and nudges from 60 ms and its users reported stutter).
  SEEK_MS: 400,
};
const TICK_MS = 100;
// The position is sampled this often and the drift is the median of the last
// DRIFT_WINDOW samples: while the pitch-preserving stretcher runs (room rate != 1)
// Chromium's currentTime wanders a few ms either way from one read to the next.
const SAMPLE_MS = 25;
const DRIFT_WINDOW = 8;
// Nudges move in steps of this much: every rate assignment restarts the stretcher.
const NUDGE_STEP = 0.005;
// Below this change the rate is left alone: every assignment wakes the audio stretcher.
const RATE_EPSILON = 0.002;
// A paused video this far from the room's position is moved there.
const PAUSED_TOLERANCE_MS = 2;
// The first guess of how long a seek while playing takes; then measured.
const SEEK_LATENCY_INITIAL_MS = 120;
// play() takes a while to get the media clock moving (decoder and audio sink start): call
// it this much before the scheduled start. Then learned from how late each start really
// was: the "playing" event comes long before the clock runs at speed (measured in headless
// Chromium: the event after about 10 ms, the clock 50-60 ms behind after 200 ms).
const START_LATENCY_INITIAL_MS = 60;
const START_LATENCY_MAX_MS = 400;
// A start is judged on the drift between these two moments after the anchor (the clock
// ramps up over the first 150 ms or so), and nothing is corrected before the judgement.
const START_RAMP_MS = 200;
const START_JUDGED_MS = 320;
const START_LEARN_GAIN = 0.8;
const HAVE_FUTURE_DATA = 3;

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
    this.lastStartMs = null; // how far off the room the last scheduled start landed
    this._startTimer = null;
    this._startIssuedAt = null;
    this._seekStartedAt = null;
    video.addEventListener("loadedmetadata", () => this._follow(true));
    video.addEventListener("seeked", () => this._seeked());
    this._samples = [];
    this._ticks = 0;
    this._ticker = setInterval(() => this._tick(), SAMPLE_MS);
  }

  // Apply a state if it is newer than anything seen; returns whether it was.
  receive(state) {
    if (!state || state.version <= this.version) return false;
    // The first state is the page's starting point: its age is not a delivery latency.
    if (this.version > 0) this.lastLatencyMs = this.clock.now() - state.changed_ms;
    this.version = state.version;
    this.versionsReceived += 1;
    const mediaChanged = !this.state || this.state.media.url !== state.media.url;
    this.state = state;
    if (mediaChanged) this._load(state.media.url);
    clearTimeout(this._startTimer);
    this._startTimer = null;
    this._startIssuedAt = null;
    this._samples = [];
    this._follow(true);
    this.onState(state);
    return true;
  }

  // Where the room is at server time t (the contract's formula).
  positionAt(t = this.clock.now()) {
    const s = this.state;
    if (!s) return 0;
    let position = s.position;
    if (s.playing && t >= s.anchor_ms) position += (s.rate * (t - s.anchor_ms)) / 1000;
    const duration = s.media.duration ?? (Number.isFinite(this.video.duration) ? this.video.duration : null);
    return duration !== null ? Math.min(position, duration) : position;
  }

  get buffering() {
    const s = this.state;
    if (!s || !this.video.src) return false;
    if (s.playing && this.clock.now() < s.anchor_ms) return false; // waiting for the start is not buffering
    return this.video.readyState < HAVE_FUTURE_DATA || this.video.seeking;
  }

  get status() {
    if (document.hidden) return "away";
    if (this.buffering) return "buffering";
    return this.state?.playing ? "playing" : "paused";
  }

  destroy() {
    clearInterval(this._ticker);
    clearTimeout(this._startTimer);
  }

  _tick() {
    this._sample();
    this._ticks += 1;
    if (this._ticks % (TICK_MS / SAMPLE_MS) === 0) this._follow(false);
  }

  // Record the drift while the video plays steadily on the room's trajectory.
  _sample() {
    const s = this.state;
    const video = this.video;
    if (!s?.playing || video.paused || video.seeking || video.readyState < HAVE_FUTURE_DATA) return;
    const now = this.clock.now();
    if (now < s.anchor_ms + (this._startIssuedAt !== null ? START_RAMP_MS : 0)) return;
    this._samples.push((video.currentTime - this.positionAt(now)) * 1000);
    if (this._samples.length > DRIFT_WINDOW) this._samples.shift();
  }

  _smoothedDrift(raw) {
    if (this._samples.length < 3) return raw;
    const sorted = [...this._samples].sort((a, b) => a - b);
    return sorted[sorted.length >> 1];
  }

  _load(url) {
    this.video.src = url;
    this.video.load();
  }

  // Bring the video onto the room's trajectory; `fresh` when the state just changed.
  _follow(fresh) {
    const s = this.state;
    const video = this.video;
    if (!s || video.readyState === 0) return;
    const now = this.clock.now();
    const expected = this.positionAt(now);
    const raw = (video.currentTime - expected) * 1000;
    this.driftMs = s.playing && !video.paused ? this._smoothedDrift(raw) : raw;

    if (!s.playing) {
      this._setRate(s.rate);
      if (!video.paused) video.pause();
      if (Math.abs(this.driftMs) > PAUSED_TOLERANCE_MS && !video.seeking) this._seek(s.position);
      return;
    }
    if (now < s.anchor_ms) {
      if (this._startIssuedAt !== null) return; // started early on purpose: see startLatencyMs
      // A scheduled start: stand on the first frame, then start on time.
      if (!video.paused) video.pause();
      this._setRate(s.rate);
      if (Math.abs(video.currentTime - s.position) * 1000 > 1 && !video.seeking) this._seek(s.position);
      if (!this._startTimer) {
        this._startTimer = setTimeout(() => this._start(), Math.max(0, s.anchor_ms - now - this.startLatencyMs));
      }
      return;
    }
    const duration = s.media.duration ?? video.duration;
    if (Number.isFinite(duration) && expected >= duration - 0.05) {
      if (!video.paused) video.pause(); // the end: play() would start over from 0
      return;
    }
    if (video.paused) {
      if (Math.abs(this.driftMs) > DRIFT.SEEK_MS / 2) this._seek(this.positionAt(now + this.seekLatencyMs));
      this._play();
      return;
    }
    if (video.seeking || video.readyState < HAVE_FUTURE_DATA) return;
    if (this._startIssuedAt !== null) {
      if (now < s.anchor_ms + START_JUDGED_MS) return; // the start is still ramping up
      this._judgeStart();
    }
    this._correct(s);
  }

  _start() {
    this._startTimer = null;
    const s = this.state;
    if (!s?.playing) return;
    this._setRate(s.rate);
    this._startIssuedAt = this.clock.now();
    this._play();
  }

  // Learn from how late (or early) this start really was, so that the next one is on time.
  _judgeStart() {
    this._startIssuedAt = null;
    if (this._samples.length < 3) return; // too little seen (a seek, a stall): learn nothing
    const late = -this.driftMs;
    this.lastStartMs = this.driftMs;
    this.startLatencyMs = Math.max(0, Math.min(START_LATENCY_MAX_MS, this.startLatencyMs + START_LEARN_GAIN * late));
  }

  _correct(s) {
    const drift = this.driftMs;
    const magnitude = Math.abs(drift);
    if (magnitude > DRIFT.SEEK_MS) {
      this._seek(this.positionAt(this.clock.now() + this.seekLatencyMs));
      this.nudging = false;
      this._setRate(s.rate);
      return;
    }
    const stretched = s.rate !== 1;
    if (magnitude > (stretched ? DRIFT.DEADBAND_STRETCHED_MS : DRIFT.DEADBAND_MS)) {
      if (!this.nudging) this.nudges += 1;
      this.nudging = true;
    }
    else if (magnitude < (stretched ? DRIFT.DEADBAND_STRETCHED_EXIT_MS : DRIFT.DEADBAND_EXIT_MS)) this.nudging = false;
    if (!this.nudging) {
      this._setRate(s.rate);
      return;
    }
    const wanted = Math.max(-DRIFT.NUDGE_MAX, Math.min(DRIFT.NUDGE_MAX, drift / 1000 / DRIFT.CORRECTION_S));
    const nudge = Math.round(wanted / NUDGE_STEP) * NUDGE_STEP;
    this._setRate(s.rate * (1 - nudge));
  }

  _setRate(rate) {
    // Chromium's pitch-preserving stretcher (WSOLA) stalls for 15-60 ms whenever the rate
    // leaves 1 and moves `currentTime` in steps of a few ms while it runs; plain resampling
    // changes rate cleanly (measured: see README). At the room rate of 1 a nudge therefore
    // resamples (a brief pitch shift of at most NUDGE_MAX); other room rates keep the pitch.
    const preservePitch = this.state !== null && this.state.rate !== 1;
    if (this.video.preservesPitch !== preservePitch) this.video.preservesPitch = preservePitch;
    if (Math.abs(this.video.playbackRate - rate) > RATE_EPSILON || (rate === this.state?.rate && this.video.playbackRate !== rate)) {
      this.video.playbackRate = rate;
    }
  }

  _seek(position) {
    this.seeks += 1;
    this._samples = [];
    this._seekStartedAt = performance.now();
    this.video.currentTime = position;
  }

  _seeked() {
    if (this._seekStartedAt === null) return;
    const took = performance.now() - this._seekStartedAt;
    this.lastSeekTookMs = took;
    if (!this.video.paused) {
      // Learn how long a seek while playing takes, so the next one lands on time.
      this.seekLatencyMs = Math.min(1000, 0.7 * this.seekLatencyMs + 0.3 * took);
    }
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
