// Server time, NTP-style: bursts of /api/time exchanges. Neither leg of an exchange
// can take less than no time, so each sample pins the offset to within half its round
// trip of its own reading; the estimate is the middle of what all recent samples allow
// together (the intersection of their bounds), which narrows with every sample instead
// of waiting for one lucky exchange. Every room computation uses clock.now(), never the
// local clock directly.

// A burst long enough that one exchange usually dodges queueing on both legs.
const BURST = 8;
const RESYNC_BURST = 5;
const REFINE_SAMPLES = 20;
// Crystal drift is tens of ppm: 30 s between re-syncs keeps it under 2 ms.
const RESYNC_MS = 30_000;
// A sample's bound widens with its age by the local crystal's possible drift (50 ppm).
const AGING_MS_PER_S = 0.05;
// The samples that take part in the estimate.
const KEEP_SAMPLES = 40;
const KEEP_MS = 120_000;

export const localMs = () => performance.timeOrigin + performance.now();

export class Clock {
  constructor({ url = "/api/time" } = {}) {
    this.url = url;
    this.offsetMs = 0;
    this.rttMs = null;
    this.uncertaintyMs = null;
    this.synced = false;
    this._samples = [];
    this.listeners = new Set();
    this._syncing = null;
  }

  now() {
    return localMs() + this.offsetMs;
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  start() {
    this._timer = setInterval(() => this.sync(RESYNC_BURST), RESYNC_MS);
    // One more exchange a second for a while: each is another chance at a round
    // trip with no queueing on either leg, which is what bounds the offset error.
    let refinements = REFINE_SAMPLES;
    this._refiner = setInterval(() => { if (--refinements <= 0) clearInterval(this._refiner); this.sync(1); }, 1000);
    return this.sync(BURST);
  }

  stop() {
    clearInterval(this._timer);
    clearInterval(this._refiner);
  }

  async sample() {
    const t0 = localMs();
    const response = await fetch(this.url, { cache: "no-store" });
    // Stamp the answer when its headers arrive: the body may trail in a later
    // packet, which would make the return leg look longer than it was.
    const t1 = localMs();
    const body = await response.json();
    return { rttMs: t1 - t0, offsetMs: body.server_ms - (t0 + t1) / 2, at: t1 };
  }

  // A burst of exchanges, one at a time so they do not queue behind each other.
  sync(count = BURST) {
    if (this._syncing) return this._syncing;
    this._syncing = (async () => {
      let taken = 0;
      for (let i = 0; i < count; i++) {
        try {
          const sample = await this.sample();
          this._samples.push(sample);
          taken += 1;
        } catch {
          break; // offline: keep what we have, the transport reconnect triggers another sync
        }
      }
      if (taken) this._estimate();
      this._syncing = null;
      return this.synced;
    })();
    return this._syncing;
  }

  _estimate() {
    const now = localMs();
    this._samples = this._samples.filter((s) => now - s.at <= KEEP_MS).slice(-KEEP_SAMPLES);
    let lower = -Infinity;
    let upper = Infinity;
    for (const sample of this._samples) {
      const slack = sample.rttMs / 2 + ((now - sample.at) / 1000) * AGING_MS_PER_S;
      lower = Math.max(lower, sample.offsetMs - slack);
      upper = Math.min(upper, sample.offsetMs + slack);
    }
    if (lower > upper) {
      // The bounds contradict each other: a clock was set. Start over from the newest sample.
      this._samples = this._samples.slice(-1);
      this._estimate();
      return;
    }
    // The round trip reported (and covered by the room's start lead) is the median of the
    // samples kept: one refinement exchange alone, on a busy page, can be several times it.
    const rtts = this._samples.map((sample) => sample.rttMs).sort((a, b) => a - b);
    this.rttMs = rtts[rtts.length >> 1];
    this.offsetMs = (lower + upper) / 2;
    this.uncertaintyMs = (upper - lower) / 2;
    this.synced = true;
    for (const listener of this.listeners) listener(this);
  }
}
