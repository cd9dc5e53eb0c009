// The lab: one room through all four transports side by side, each with its own
// engine and live latency figures: the classic four-tab demonstration as a page.
import { Clock } from "./clock.js";
import { Presence } from "./presence.js";
import { Membership } from "./session.js";
import { renderStats } from "./stats.js";
import { Engine } from "./sync.js";
import { openTransport } from "./transports.js";

const STATS_INTERVAL_MS = 500;
// Latency histogram bins (ms): an update within 50 ms is "instant", past 1 s is a problem.
const BINS = [25, 50, 100, 200, 400, 800, 1600, Infinity];
const config = JSON.parse(document.getElementById("vsync-config").textContent);
const clock = new Clock();
const labId = `c-lab-${crypto.randomUUID().slice(0, 6)}`;

const quantile = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null);
const ms = (value) => (value === null || !Number.isFinite(value) ? "–" : `${value.toFixed(1)} ms`);

class LabViewer {
  constructor(cell) {
    this.cell = cell;
    this.name = cell.dataset.transport;
    this.latencies = [];
    this.conn = cell.querySelector('[data-role="conn"]');
    // Each player is a member of its own (the owner, in the owner's browser): its presence
    // reports must carry its own token.
    this.membership = new Membership({ slug: config.slug, clientId: `${labId}-${this.name}` });
    const membership = this.membership;
    this.engine = new Engine({
      video: cell.querySelector("video"), clock,
      onState: () => { if (this.engine.lastLatencyMs !== null) this.latencies.push(this.engine.lastLatencyMs); },
    });
    this.transport = openTransport(this.name, {
      slug: config.slug,
      auth: membership,
      onDenied: (status, error) => { this.conn.dataset.state = "closed"; this.conn.textContent = `refused: ${error}`; },
      onState: (state) => this.engine.receive(state),
      onStatus: (status) => { this.conn.dataset.state = status; this.conn.textContent = status; },
      onReconnect: () => clock.sync(),
    });
    this.presence = new Presence({
      slug: config.slug, getTransport: () => this.transport, fetchMembers: (url, init) => membership.fetch(url, init),
      report: () => ({ client_id: membership.clientId, name: `lab · ${this.name}`, transport: this.name,
                       rtt_ms: clock.rttMs, status: this.engine.status, drift_ms: this.engine.driftMs }),
    });
  }

  start() {
    this.engine.receive(config.state);
    this.transport.start(this.engine.version);
    this.presence.start();
  }

  render() {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    renderStats(this.cell.querySelector('[data-role="stats"]'), [
      ["Latency last", ms(this.engine.lastLatencyMs)],
      ["p50 / p95", `${ms(quantile(sorted, 0.5))} / ${ms(quantile(sorted, 0.95))}`],
      ["Max", ms(sorted.length ? sorted[sorted.length - 1] : null)],
      ["Drift", ms(this.engine.driftMs)],
      ["Versions", String(this.engine.versionsReceived)],
      ["Reconnects", String(this.transport.reconnects)],
    ]);
    this._histogram(this.cell.querySelector('[data-role="histogram"]'));
  }

  _histogram(canvas) {
    const counts = BINS.map(() => 0);
    for (const value of this.latencies) counts[BINS.findIndex((edge) => value < edge)] += 1;
    const context = canvas.getContext("2d");
    const { width, height } = canvas;
    const most = Math.max(1, ...counts);
    const bar = width / BINS.length;
    context.clearRect(0, 0, width, height);
    context.font = "10px system-ui, sans-serif";
    context.textAlign = "center";
    BINS.forEach((edge, i) => {
      const h = ((height - 16) * counts[i]) / most;
      context.fillStyle = "#6ea8fe";
      context.fillRect(i * bar + 3, height - 14 - h, bar - 6, h);
      context.fillStyle = "#9aa4b2";
      context.fillText(edge === Infinity ? "more" : `<${edge}`, i * bar + bar / 2, height - 3);
    });
  }
}

const viewers = [...document.querySelectorAll(".lab-cell")].map((cell) => new LabViewer(cell));
const room = () => viewers.find((v) => v.transport.status === "open")?.engine ?? viewers[0].engine;

async function command(type, fields) {
  const { membership } = viewers[0];
  const response = await membership.fetch(`/api/rooms/${encodeURIComponent(config.slug)}/commands`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ type, client_id: membership.clientId, client_ms: clock.now(), ...fields }),
  });
  // The answer's state is not applied here: each player must get it over its own
  // transport, or the latency figures would measure nothing.
  if (!response.ok && response.status !== 409) console.warn("vsync lab command refused", await response.text());
}

document.getElementById("lab-play").addEventListener("click", () => {
  const engine = room();
  command(engine.state?.playing ? "pause" : "play", { position: engine.positionAt() });
});
document.getElementById("lab-back").addEventListener("click", () => command("seek", { position: Math.max(0, room().positionAt() - 5) }));
document.getElementById("lab-fwd").addEventListener("click", () => command("seek", { position: room().positionAt() + 5 }));

window.vsync = { clock, viewers };
const [, ...joins] = await Promise.all([clock.start(), ...viewers.map((v) => v.membership.join({ name: `lab · ${v.name}` }))]);
const refused = joins.find((join) => !join.ok);
if (refused) {
  for (const viewer of viewers) { viewer.conn.dataset.state = "closed"; viewer.conn.textContent = refused.error; }
  throw new Error(`vsync lab: ${refused.error}`);
}
for (const viewer of viewers) viewer.start();
setInterval(() => { for (const viewer of viewers) viewer.render(); }, STATS_INTERVAL_MS);
