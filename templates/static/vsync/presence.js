// Presence: tell the room who we are and how we are doing, and learn who else is here
// (members.js draws the list).

// Often enough that the `wait` policy's timeout and "away" marks are timely,
// rarely enough to cost nothing next to the state traffic.
export const PRESENCE_INTERVAL_MS = 1_500;
// A drift that moved this much since the last report goes out before the next beat (at
// most every MIN_GAP_MS), so the member list does not show a start's first moments for
// seconds after the viewer has caught up.
const DRIFT_CHANGE_MS = 10;
const MIN_GAP_MS = 500;
const NAME_MAX = 40;

export class Presence {
  // report(): {client_id, name, transport, rtt_ms, status, drift_ms}; getTransport(): the live adapter
  // fetchMembers: a fetch that proves membership (session.js), for GET .../members.
  constructor({ slug, report, getTransport, onMembers = () => {}, fetchMembers = (url, init) => fetch(url, init) }) {
    this.slug = slug;
    this.fetchMembers = fetchMembers;
    this.report = report;
    this.getTransport = getTransport;
    this.onMembers = onMembers;
    this.lastStatus = null;
    this.lastDrift = null;
    this.lastSentAt = 0;
    this.members = [];
    this.startLeadMs = null;
  }

  start() {
    this._timer = setInterval(() => this.send(), PRESENCE_INTERVAL_MS);
    // A change of status (buffering!) goes out at once, not at the next beat.
    this._watch = setInterval(() => { if (this._changed(this.report())) this.send(); }, 200);
    this.send();
  }

  stop() {
    clearInterval(this._timer);
    clearInterval(this._watch);
  }

  _changed(report) {
    if (report.status !== this.lastStatus) return true;
    if (performance.now() - this.lastSentAt < MIN_GAP_MS) return false;
    const drift = report.drift_ms ?? 0;
    return this.lastDrift !== null && Math.abs(drift - this.lastDrift) > DRIFT_CHANGE_MS;
  }

  async send() {
    const report = this.report();
    report.name = report.name.slice(0, NAME_MAX);
    this.lastStatus = report.status;
    this.lastDrift = report.drift_ms ?? 0;
    this.lastSentAt = performance.now();
    try {
      let body = await this.getTransport().sendPresence(report);
      if (!body) {
        const response = await this.fetchMembers(`/api/rooms/${encodeURIComponent(this.slug)}/members`, { cache: "no-store" });
        body = response.ok ? await response.json() : null;
      }
      if (body) {
        this.members = body.members;
        this.startLeadMs = body.start_lead_ms;
        this.onMembers(body);
      }
    } catch { /* offline: the transport shows it; the next beat retries */ }
  }
}
