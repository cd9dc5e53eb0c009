// The room page: one viewer, composed from membership, the clock, a transport, the sync
// engine, the controls, presence, members, chat, the queue, subtitles and stats.
import { ChatPanel } from "./chat.js";
import { Clock } from "./clock.js";
import { Controls } from "./controls.js";
import { wireMedia } from "./media.js";
import { MemberList } from "./members.js";
import { OwnerPanel } from "./owner.js";
import { Presence } from "./presence.js";
import { QueuePanel } from "./queue.js";
import { Membership, tabClientId } from "./session.js";
import { renderStats, statsRows } from "./stats.js";
import { Subtitles } from "./subtitles.js";
import { Engine } from "./sync.js";
import { openTransport } from "./transports.js";

const STATS_INTERVAL_MS = 500;
const config = JSON.parse(document.getElementById("vsync-config").textContent);
const $ = (id) => document.getElementById(id);
const video = $("video");

const clientId = tabClientId();
const membership = new Membership({ slug: config.slug, clientId });
const nickname = $("nickname");
nickname.value = localStorage.getItem("vsync.name") || `Guest ${clientId.slice(2, 6)}`;
nickname.addEventListener("change", () => { localStorage.setItem("vsync.name", nickname.value.trim()); presence.send(); });

// open: anyone; hosts: the owner and hosts; locked: nobody but the server's admin.
let roomControl = config.control || "open";
let roomSettings = { name: config.name, control: roomControl, listed: config.listed ?? true, has_password: Boolean(config.has_password) };

const clock = new Clock();
const engine = new Engine({
  video, clock,
  onState: (state) => onRoomState(state),
  onAutoplayBlocked: () => showOverlay("Sound is off because the browser blocked autoplay: press m to unmute."),
});
let transport = null;

function showOverlay(text) {
  const overlay = $("overlay");
  overlay.textContent = text;
  overlay.hidden = false;
  clearTimeout(showOverlay.timer);
  showOverlay.timer = setTimeout(() => { overlay.hidden = true; }, 6000);
}

function showConnection(status) {
  const conn = $("conn");
  conn.dataset.state = status;
  const labels = { connecting: "connecting…", open: `live · ${transport.name}`, reconnecting: "reconnecting…", closed: "offline" };
  conn.textContent = transport?.denied ? "not connected" : labels[status] || status;
  if (status === "open") chat.catchUp(); // whatever the gap held
}

function useTransport(name) {
  transport?.stop();
  transport = openTransport(name, {
    slug: config.slug,
    auth: membership,
    chat: chat.feed,
    onState: (state) => engine.receive(state),
    onStatus: (status) => showConnection(status),
    onReconnect: () => clock.sync(),
    onDenied: (status, error) => membershipEnded(status, error),
  });
  transport.start(engine.version); // resume: only newer versions are applied anyway
  const url = new URL(location.href);
  url.searchParams.set("transport", name);
  history.replaceState(null, "", url);
  presence?.send();
}

// --- who may control playback --------------------------------------------------------

const canControl = () => (roomControl === "open" ? true : roomControl === "hosts" ? membership.moderates : false);
const controlReason = () => (roomControl === "locked"
  ? "An admin locked this room: playback follows the room."
  : "Only the owner and hosts control playback in this room: you follow along.");

function updateControlAccess() {
  const allowed = canControl();
  for (const id of ["c-play", "c-seek", "c-rate", "media-url", "media-submit", "upload"]) $(id).disabled = !allowed;
  for (const label of document.querySelectorAll("#media-row label.upload")) label.classList.toggle("disabled", !allowed);
  $("player").classList.toggle("follow-only", !allowed);
  $("control-note").hidden = allowed;
  $("control-note").textContent = allowed ? "" : controlReason();
  queue.setEnabled(allowed, allowed ? "" : controlReason());
}

let shownRole;
function setRole(role) {
  membership.role = role;
  if (role === shownRole) return;
  shownRole = role;
  const badge = $("role-badge");
  badge.hidden = !role || role === "viewer";
  badge.textContent = role || "";
  badge.dataset.role = role || "";
  owner.show(membership.isOwner);
  // In an owned room the buffering policy is the owner's to set (the server says 403 to others).
  const policyLocked = Boolean(config.owned) && !membership.isOwner;
  for (const field of document.querySelectorAll("#policy-form select, #policy-form input")) field.disabled = policyLocked;
  $("policy-note").hidden = !policyLocked;
  chat.refreshTools();
  updateControlAccess();
}

function setControl(control) {
  if (!control || control === roomControl) return;
  roomControl = control;
  updateControlAccess();
}

// Only these gestures send commands; applying a received state never does.
async function command(type, fields) {
  if (!canControl()) { showOverlay(controlReason()); return { status: 403, body: { error: controlReason() } }; }
  const body = { type, client_id: clientId, client_ms: clock.now(), ...fields };
  const { status, body: answer } = await transport.send(body);
  if (answer?.state) engine.receive(answer.state);
  if (status === 0) showOverlay("The command may not have arrived: the connection dropped.");
  else if (status === 403) {
    // The room changed under us (hosts-only now, or our role was revoked): say so, follow.
    if (roomControl === "open") setControl("hosts");
    showOverlay(answer?.error || controlReason());
  } else if (status >= 400 && status !== 409) showOverlay(answer?.error || `The server refused (${status}).`);
  return { status, body: answer };
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

// --- panels ----------------------------------------------------------------------------

const say = (element) => (text, isError = false) => {
  element.textContent = text;
  element.classList.toggle("error", isError);
};

const chat = new ChatPanel({ root: $("chat"), membership, getTransport: () => transport, say: showOverlay });
chat.startReconciling(() => transport && !transport.denied && (transport.name === "poll" || transport.name === "longpoll"));

const queue = new QueuePanel({
  root: $("queue"), command, membership, say: say($("queue-status")), now: () => clock.now(),
  onState: (state) => engine.receive(state),
});

const subtitles = new Subtitles({
  video, captions: $("captions"), select: $("subtitle-select"), form: $("subtitle-form"), membership,
  say: say($("subtitle-status")), onState: (state) => engine.receive(state),
});

function onRoomState(state) {
  queue.render(state.queue ?? []);
  subtitles.render(state);
}

const owner = new OwnerPanel({
  root: $("owner-panel"), membership, settings: roomSettings,
  onSettings: (settings) => {
    roomSettings = settings;
    $("room-title").textContent = settings.name;
    document.title = `${settings.name} · vsync`;
    setControl(settings.control);
  },
});

async function moderate(path, body, done) {
  const { status, body: answer } = await membership.postJson(path, body);
  if (status === 200) { showOverlay(done); presence.send(); } else showOverlay(answer?.error || `Refused (${status}).`);
}

const members = new MemberList({
  list: $("members"),
  me: () => ({ clientId, role: membership.role }),
  actions: {
    role: (id, role) => moderate("/roles", { client_id: id, role }, role === "host" ? "They are a host now." : "They are a viewer now."),
    kick: (id, ban) => moderate("/kick", { client_id: id, ban }, ban ? "Banned." : "Kicked."),
  },
});

const presence = new Presence({
  slug: config.slug,
  getTransport: () => transport,
  fetchMembers: (url, init) => membership.fetch(url, init),
  report: () => ({
    client_id: clientId, name: nickname.value.trim(), transport: transport.name,
    rtt_ms: clock.rttMs === null ? null : clock.rttMs + transport.pickupDelayMs, status: engine.status, drift_ms: engine.driftMs === null ? null : Math.round(engine.driftMs * 10) / 10,
    // How long this device needs from a state to being on its frame (seek + start-up): for
    // the server to cover in the start lead (the slowest member's).
    startup_ms: Math.round(engine.startupMs),
  }),
  onMembers: (body) => {
    const me = body.members.find((m) => m.client_id === clientId);
    if (me?.role) setRole(me.role);
    if (body.control) setControl(body.control);
    members.render(body.members);
    if (document.activeElement?.closest("#policy-form")) return;
    $("policy").value = body.buffering_policy;
    $("policy-timeout").value = body.buffering_timeout_s;
  },
});

$("policy").value = config.buffering_policy;
$("policy-timeout").value = config.buffering_timeout_s;
$("policy-form").addEventListener("change", async () => {
  const body = { buffering_policy: $("policy").value, buffering_timeout_s: Number($("policy-timeout").value) };
  const { status, body: answer } = await membership.postJson("/policy", body);
  if (status !== 200) showOverlay(answer?.error || "The policy was not changed.");
});

for (const radio of document.querySelectorAll('#transport-picker input[name="transport"]')) {
  radio.addEventListener("change", () => { if (radio.checked && !transport?.denied) useTransport(radio.value); });
}

// The share link is the room's address alone: never a token, never this page's transport.
const share = $("share-link");
share.value = `${location.origin}/r/${config.slug}`;
$("share-copy").addEventListener("click", async () => {
  try { await navigator.clipboard.writeText(share.value); $("share-copy").textContent = "Copied"; }
  catch { share.select(); }
  setTimeout(() => { $("share-copy").textContent = "Copy link"; }, 1500);
});

wireMedia({
  slug: config.slug, clientId, clock, engine, form: $("media-form"), input: $("media-url"), upload: $("upload"),
  progress: $("upload-progress"), status: $("media-status"), headers: () => membership.headers(),
});

// --- joining, the password gate, and the end of a membership ---------------------------

function askPassword(error) {
  $("gate").hidden = false;
  $("room-grid").hidden = true;
  $("gate-error").hidden = !error;
  $("gate-error").textContent = error || "";
  $("gate-password").focus();
  return new Promise((resolve) => {
    $("gate-form").onsubmit = async (event) => {
      event.preventDefault();
      const button = $("gate-form").querySelector("button");
      button.disabled = true;
      const result = await membership.join({ name: nickname.value.trim(), password: $("gate-password").value });
      button.disabled = false;
      if (result.ok) {
        $("gate").hidden = true;
        $("room-grid").hidden = false;
        resolve(true);
      } else {
        $("gate-error").textContent = result.error;
        $("gate-error").hidden = false;
        $("gate-password").select();
      }
    };
  });
}

function showEnded(text, canRejoin) {
  $("ended").hidden = false;
  $("ended-text").textContent = text;
  $("ended-rejoin").hidden = !canRejoin;
}

// 403 before connecting: a password room (ask for it) or a ban (say so, stop).
async function enter() {
  const result = await membership.join({ name: nickname.value.trim() });
  if (result.ok) return true;
  if (result.status === 403 && (config.has_password || /password/i.test(result.error))) return askPassword();
  showEnded(`You cannot watch this room: ${result.error}`, result.status !== 403);
  return false;
}

function membershipEnded(status, error) {
  presence.stop();
  $("conn").dataset.state = "closed";
  $("conn").textContent = "not connected";
  // Over short polling a kick shows only as a revoked token (401); so does this client_id
  // joining again in another tab, which is why the page asks before joining again.
  const why = status === 403 ? "A moderator removed you from this room."
    : status === 404 ? "This room no longer exists."
      : "You were removed from this room (or it was opened again as you in another tab).";
  showEnded(`${why} (${error})`, status !== 404);
}

$("ended-rejoin").addEventListener("click", async () => {
  $("ended").hidden = true;
  if (!(await enter())) return;
  useTransport(transport.name);
  presence.start();
});

function connect() {
  setRole(membership.role);
  updateControlAccess();
  chat.load();
  useTransport(config.transport);
  presence.start();
}

window.vsync = {
  clientId, clock, engine, controls, presence, membership, chat, queue, subtitles, useTransport,
  get transport() { return transport; },
};

engine.receive(config.state);
const [, admitted] = await Promise.all([clock.start(), enter()]);
if (admitted) connect();
setInterval(() => { if (transport) renderStats($("stats"), statsRows({ transport, clock, engine })); }, STATS_INTERVAL_MS);
document.addEventListener("visibilitychange", () => { if (transport && !transport.denied) presence.send(); });
