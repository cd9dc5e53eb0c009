// Server time, NTP-style: a burst of /api/time exchanges, trust the lowest round trip.
// Every room computation uses clock.now(), never the local clock directly.

// A burst long enough that one exchange usually dodges queueing on both legs.
const BURST = 8;
const RESYNC_BURST = 5;
const REFINE_SAMPLES = 20;
// Crystal drift is tens of ppm: 30 s between re-syncs keeps it under 2 ms.
const RESYNC_MS = 30_000;
// An old sample's uncertainty grows with age, so a fresh, slightly slower sample can replace it.
const AGING_MS_PER_S = 0.05;

export const localMs = () => performance.timeOrigin + performance.now();

export class Clock {
  constructor({ url = "/api/time" } = {}) {
    this.url = url;
    this.offsetMs = 0;
    this.rttMs = null;
    this.uncertaintyMs = null;
    this.sampledAt = 0;
    this.synced = false;
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
      let best = null;
      for (let i = 0; i < count; i++) {
        try {
          const sample = await this.sample();
          if (!best || sample.rttMs < best.rttMs) best = sample;
        } catch {
          break; // offline: keep what we have, the transport reconnect triggers another sync
        }
      }
      if (best) this._consider(best);
      this._syncing = null;
      return this.synced;
    })();
    return this._syncing;
  }

  _consider(sample) {
    const age = (localMs() - this.sampledAt) / 1000;
    const current = this.uncertaintyMs === null ? Infinity : this.uncertaintyMs + age * AGING_MS_PER_S;
    if (sample.rttMs / 2 > current) return;
    this.offsetMs = sample.offsetMs;
    this.rttMs = sample.rttMs;
    this.uncertaintyMs = sample.rttMs / 2;
    this.sampledAt = sample.at;
    this.synced = true;
    for (const listener of this.listeners) listener(this);
  }
}
