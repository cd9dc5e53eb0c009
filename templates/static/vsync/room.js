// The room page: one viewer, composed from the clock, a transport, the sync engine,
// the controls, presence and stats.
import { Clock } from "./clock.js";
import { Controls } from "./controls.js";
import { wireMedia } from "./media.js";
import { Presence, renderMembers } from "./presence.js";
import { renderStats, statsRows } from "./stats.js";
import { Engine } from "./sync.js";
import { openTransport } from "./transports.js";

const STATS_INTERVAL_MS = 500;
const config = JSON.parse(document.getElementById("vsync-config").textContent);
const $ = (id) => document.getElementById(id);
const video = $("video");

const clientId = sessionStorage.getItem("vsync.client_id") || `c-${crypto.randomUUID().slice(0, 8)}`;
sessionStorage.setItem("vsync.client_id", clientId);
const nickname = $("nickname");
nickname.value = localStorage.getItem("vsync.name") || `Guest ${clientId.slice(2, 6)}`;
nickname.addEventListener("change", () => { localStorage.setItem("vsync.name", nickname.value.trim()); presence.send(); });

const clock = new Clock();
const engine = new Engine({
  video, clock,
  onAutoplayBlocked: () => showOverlay("Sound is off because the browser blocked autoplay: press m to unmute."),
});
let transport = null;

function showOverlay(text) {
  const overlay = $("overlay");
  overlay.textContent = text;
  overlay.hidden = false;
  setTimeout(() => { overlay.hidden = true; }, 6000);
}

function showConnection(status) {
  const conn = $("conn");
  conn.dataset.state = status;
  const labels = { connecting: "connecting…", open: `live · ${transport.name}`, reconnecting: "reconnecting…", closed: "offline" };
  conn.textContent = labels[status] || status;
}

function useTransport(name) {
  transport?.stop();
  transport = openTransport(name, {
    slug: config.slug,
    onState: (state) => engine.receive(state),
    onStatus: (status) => showConnection(status),
    onReconnect: () => clock.sync(),
  });
  transport.start(engine.version); // resume: only newer versions are applied anyway
  const url = new URL(location.href);
  url.searchParams.set("transport", name);
  history.replaceState(null, "", url);
  presence?.send();
}

// Only these gestures send commands; applying a received state never does.
async function command(type, fields) {
  const body = { type, client_id: clientId, client_ms: clock.now(), ...fields };
  const { status, body: answer } = await transport.send(body);
  if (answer?.state) engine.receive(answer.state);
  if (status === 0) showOverlay("The command may not have arrived: the connection dropped.");
  else if (status >= 400 && status !== 409) showOverlay(answer?.error || `The server refused (${status}).`);
}

const duration = () => engine.state?.media.duration ?? (Number.isFinite(video.duration) ? video.duration : Infinity);
const controls = new Controls({
  root: $("player"), video,
  actions: {
    play: () => command("play", { position: engine.positionAt() >= duration() ? 0 : engine.positionAt() }),
    pause: () => command("pause", { position: engine.positionAt() }),
    seek: (position) => command("seek", { position: Math.max(0, Math.min(position, duration())) }),
    rate: (rate) => command("rate", { rate }),
    position: () => engine.positionAt(),
    playing: () => Boolean(engine.state?.playing),
    rateValue: () => engine.state?.rate ?? 1,
  },
});

const presence = new Presence({
  slug: config.slug,
  getTransport: () => transport,
  report: () => ({
    client_id: clientId, name: nickname.value.trim(), transport: transport.name,
    rtt_ms: clock.rttMs === null ? null : clock.rttMs + transport.pickupDelayMs, status: engine.status, drift_ms: engine.driftMs === null ? null : Math.round(engine.driftMs * 10) / 10,
  }),
  onMembers: (body) => {
    renderMembers($("members"), body.members, clientId);
    if (document.activeElement?.closest("#policy-form")) return;
    $("policy").value = body.buffering_policy;
    $("policy-timeout").value = body.buffering_timeout_s;
  },
});

$("policy").value = config.buffering_policy;
$("policy-timeout").value = config.buffering_timeout_s;
$("policy-form").addEventListener("change", async () => {
  const body = { buffering_policy: $("policy").value, buffering_timeout_s: Number($("policy-timeout").value) };
  const response = await fetch(`/api/rooms/${encodeURIComponent(config.slug)}/policy`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!response.ok) showOverlay((await response.json().catch(() => ({}))).error || "The policy was not changed.");
});

for (const radio of document.querySelectorAll('#transport-picker input[name="transport"]')) {
  radio.addEventListener("change", () => { if (radio.checked) useTransport(radio.value); });
}

const share = $("share-link");
share.value = `${location.origin}/r/${config.slug}`;
$("share-copy").addEventListener("click", async () => {
  try { await navigator.clipboard.writeText(share.value); $("share-copy").textContent = "Copied"; }
  catch { share.select(); }
  setTimeout(() => { $("share-copy").textContent = "Copy link"; }, 1500);
});

wireMedia({
  slug: config.slug, clientId, clock, engine, form: $("media-form"), input: $("media-url"), upload: $("upload"),
  progress: $("upload-progress"), status: $("media-status"),
});

window.vsync = { clientId, clock, engine, controls, presence, useTransport, get transport() { return transport; } };

await clock.start();
engine.receive(config.state);
useTransport(config.transport);
presence.start();
setInterval(() => renderStats($("stats"), statsRows({ transport, clock, engine })), STATS_INTERVAL_MS);
document.addEventListener("visibilitychange", () => presence.send());
