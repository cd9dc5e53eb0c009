// The stats panel: how well this viewer is synchronised, and over what.

const fmt = (value, digits = 0, unit = " ms") =>
  value === null || value === undefined || !Number.isFinite(value) ? "–" : `${value.toFixed(digits)}${unit}`;

export function statsRows({ transport, clock, engine }) {
  return [
    ["Transport", `${transport.name} (${transport.status})`],
    ["Clock offset", clock.synced ? `${fmt(clock.offsetMs, 1)} ± ${fmt(clock.uncertaintyMs, 1)}` : "syncing…"],
    ["Round trip", fmt(clock.rttMs, 1)],
    ["Drift", fmt(engine.driftMs, 1)],
    ["Playback rate", engine.video.playbackRate.toFixed(3) + "×"],
    ["Last start", fmt(engine.lastStartMs, 1)],
    // This device's own latencies, learned from every start and seek: a planned start leaves them.
    ["Start-up latency", fmt(engine.startLatencyMs, 0)],
    ["Seek latency", fmt(engine.seekLatencyMs, 0)],
    ["Timer lateness", fmt(engine.timerLateMs, 0)],
    ["Last update latency", fmt(engine.lastLatencyMs, 1)],
    ["Versions received", String(engine.versionsReceived)],
    ["Version", String(engine.version)],
    ["Reconnects", String(transport.reconnects)],
  ];
}

export function renderStats(list, rows) {
  const html = rows.map(([term, value]) => `<div><dt>${term}</dt><dd>${value}</dd></div>`).join("");
  if (list.innerHTML !== html) list.innerHTML = html;
}
