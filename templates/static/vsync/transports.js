// Four ways to receive the same room states (and the room's chat), behind one interface:
//   const t = openTransport(name, {slug, onState, onStatus, onReconnect, auth, onDenied, chat});
//   t.start(sinceVersion); t.stop(); await t.send(command); await t.sendPresence(report);
//   await t.sendChat({client_id, text});
// Every adapter resumes from the last version it saw and reconnects with backoff and jitter.
// `auth` ({headers(), token}) proves membership; when the server ends it (401/403, or the
// WebSocket's 4401/4403/4404) the adapter stops for good and calls onDenied(status, error):
// reconnecting would only be refused again. `chat` ({after(), onEvent(event)}) receives
// {kind: "message", message} | {kind: "delete", id} | {kind: "reset"}.

// Short polling every quarter second: the room's start lead covers this interval.
const POLL_INTERVAL_MS = 250;
const LONG_POLL_TIMEOUT_S = 25;
// Reconnect backoff: doubles from 250 ms up to 8 s, with "equal jitter" so a
// restarted server is not hit by every viewer in the same instant.
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 8_000;
// A command acknowledgement that takes this long is lost with its socket.
const ACK_TIMEOUT_MS = 5_000;
// WebSocket close codes after which reconnecting is pointless (CONTRACT v2): the token is
// not valid (4401), the member was kicked or banned (4403), the room is gone (4404).
const WS_DENIED = { 4401: 401, 4403: 403, 4404: 404 };
const DENIED_STATUSES = new Set([401, 403, 404]);
const NO_AUTH = { headers: () => ({}), token: null };

export const TRANSPORT_NAMES = ["poll", "longpoll", "sse", "ws"];

export function backoffMs(attempt) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
});

async function postJson(url, body, headers = {}) {
  const response = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch { /* empty body */ }
  return { status: response.status, body: data };
}

class Adapter {
  constructor(name, { slug, onState, onStatus = () => {}, onReconnect = () => {}, auth = NO_AUTH,
                      onDenied = () => {}, chat = null }) {
    this.name = name;
    this.slug = slug;
    this.onState = onState;
    this.onStatus = onStatus;
    this.onReconnect = onReconnect;
    this.auth = auth;
    this.onDenied = onDenied;
    this.chat = chat;
    this.denied = null;
    this.version = 0;
    this.attempt = 0;
    // How much later than a push transport this one can see a change: the start lead
    // the server derives from presence must cover it, so it is added to the reported round trip.
    this.pickupDelayMs = 0;
    this.reconnects = 0;
    this.status = "connecting";
    this.stopped = true;
  }

  get api() { return `/api/rooms/${encodeURIComponent(this.slug)}`; }

  // EventSource and WebSocket cannot set headers: the room's cookie covers them, and the
  // token in the query keeps this page's own identity when another tab of the same browser
  // joined the room as someone else (one cookie per room is shared by all tabs).
  _withToken(url) {
    const token = this.auth.token;
    if (!token) return url;
    return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
  }

  _get(url, extraHeaders = {}) {
    return fetch(url, { headers: { ...this.auth.headers(), ...extraHeaders }, cache: "no-store", signal: this.abort.signal });
  }

  // The server ended this page's membership: stop, say why once, never reconnect.
  _deny(status, error) {
    if (this.denied) return;
    this.denied = { status, error };
    this.stop();
    this.onDenied(status, error);
  }

  async _denyFrom(response) {
    const body = await response.json().catch(() => ({}));
    this._deny(response.status, body?.error || `HTTP ${response.status}`);
  }

  start(sinceVersion = 0) {
    this.version = Math.max(this.version, sinceVersion);
    this.stopped = false;
    this.abort = new AbortController();
    this._setStatus("connecting");
    this.run();
  }

  stop() {
    this.stopped = true;
    this.abort?.abort();
    this._setStatus("closed");
  }

  // Commands, presence and chat go over HTTP unless the transport has a better channel.
  send(command) { return postJson(`${this.api}/commands`, command, this.auth.headers()); }

  async sendPresence(report) {
    const { status, body } = await postJson(`${this.api}/presence`, report, this.auth.headers());
    return status === 200 ? body : null;
  }

  sendChat(message) { return postJson(`${this.api}/chat`, message, this.auth.headers()); }

  // Polling transports read the chat log themselves: GET /chat?after=<last id>&timeout=<s>.
  async _runChat(timeoutS, intervalMs) {
    const signal = this.abort.signal;
    let attempt = 0;
    while (!signal.aborted && this.chat) {
      try {
        const url = `${this.api}/chat?after=${this.chat.after()}&timeout=${timeoutS}`;
        const response = await this._get(url);
        // A gone room or membership shows on the state requests too; the chat loop just ends.
        if (DENIED_STATUSES.has(response.status)) return;
        if (response.status !== 200 && response.status !== 204) throw new Error(`HTTP ${response.status}`);
        attempt = 0;
        const messages = response.status === 200 ? (await response.json()).messages : [];
        for (const message of messages) this.chat.onEvent({ kind: "message", message });
        // A server that answers a waiting read at once with nothing must not make this a busy loop.
        if (intervalMs || (response.status === 200 && !messages.length)) await sleep(Math.max(intervalMs, POLL_INTERVAL_MS), signal);
      } catch {
        if (signal.aborted) return;
        await sleep(backoffMs(attempt++), signal);
      }
    }
  }

  _deliver(state) {
    if (state.version > this.version) this.version = state.version;
    this.onState(state, this.name);
  }

  _connected() {
    const wasDown = this.attempt > 0;
    this.attempt = 0;
    this._setStatus("open");
    if (wasDown) { this.reconnects += 1; this.onReconnect(this); }
  }

  async _failed() {
    this.attempt += 1;
    this._setStatus("reconnecting");
    await sleep(backoffMs(this.attempt - 1), this.abort.signal);
  }

  _setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.onStatus(status, this);
  }
}

class PollAdapter extends Adapter {
  constructor(name, options) {
    super(name, options);
    this.pickupDelayMs = POLL_INTERVAL_MS;
  }

  async run() {
    const signal = this.abort.signal;
    this._runChat(0, POLL_INTERVAL_MS);
    while (!this.stopped) {
      try {
        const headers = this.version ? { "If-None-Match": `"${this.version}"` } : {};
        const response = await this._get(`${this.api}/state`, headers);
        if (DENIED_STATUSES.has(response.status)) { await this._denyFrom(response); return; }
        if (response.status !== 200 && response.status !== 304) throw new Error(`HTTP ${response.status}`);
        this._connected();
        if (response.status === 200) this._deliver(await response.json());
        await sleep(POLL_INTERVAL_MS, signal);
      } catch {
        if (this.stopped) return;
        await this._failed();
      }
    }
  }
}

class LongPollAdapter extends Adapter {
  async run() {
    this._runChat(LONG_POLL_TIMEOUT_S, 0);
    while (!this.stopped) {
      try {
        // Until an answer proves the connection, ask with a short timeout so the
        // page can say "live" without waiting for the next change.
        const timeout = this.status === "open" ? LONG_POLL_TIMEOUT_S : 1;
        const url = `${this.api}/poll?since=${this.version}&timeout=${timeout}`;
        const response = await this._get(url);
        if (DENIED_STATUSES.has(response.status)) { await this._denyFrom(response); return; }
        if (response.status !== 200 && response.status !== 204) throw new Error(`HTTP ${response.status}`);
        this._connected();
        if (response.status === 200) this._deliver(await response.json());
      } catch {
        if (this.stopped) return;
        await this._failed();
      }
    }
  }
}

// EventSource reconnects by itself, but with a fixed delay and no way to count or
// jitter it; we close it on error and reopen with ?last_event_id= ourselves: the last
// `id:` the stream carried (it encodes the chat position too), else our version.
class SseAdapter extends Adapter {
  run() {
    if (this.stopped) return;
    // The server's ids are `<version>.<chat id>`; before the first one, say where the chat panel is
    // (a bare version would get the newest page of chat again).
    const chatAfter = this.chat?.after() || 0;
    const lastId = this.lastEventId ?? (chatAfter ? `${this.version}.${chatAfter}` : String(this.version));
    const source = new EventSource(this._withToken(`${this.api}/events?last_event_id=${encodeURIComponent(lastId)}`));
    this.source = source;
    const seen = (event) => { if (event.lastEventId) this.lastEventId = event.lastEventId; };
    source.onopen = () => this._connected();
    source.addEventListener("state", (event) => { seen(event); this._deliver(JSON.parse(event.data)); });
    source.addEventListener("chat", (event) => { seen(event); this.chat?.onEvent({ kind: "message", message: JSON.parse(event.data) }); });
    source.addEventListener("chat-delete", (event) => { seen(event); this.chat?.onEvent({ kind: "delete", id: JSON.parse(event.data).id }); });
    source.addEventListener("chat-reset", (event) => { seen(event); this.chat?.onEvent({ kind: "reset" }); });
    source.onerror = async () => {
      source.close();
      if (this.stopped || this.source !== source) return;
      // EventSource hides the status: ask the state endpoint whether we are still admitted.
      try {
        const probe = await this._get(`${this.api}/state`);
        if (DENIED_STATUSES.has(probe.status)) { await this._denyFrom(probe); return; }
      } catch { /* offline: back off and retry */ }
      if (this.stopped) return;
      await this._failed();
      this.run();
    };
  }

  stop() {
    this.source?.close();
    super.stop();
  }
}

class WsAdapter extends Adapter {
  constructor(name, options) {
    super(name, options);
    this.pending = new Map();
    this.nextRef = 1;
  }

  run() {
    if (this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // Resume: the server sends the current state only if it is newer than ours, and the chat
    // messages after the panel's newest (chat_after), so a reconnect loses none.
    const chatAfter = this.chat?.after() || 0;
    const params = [this.version ? `since=${this.version}` : "", chatAfter ? `chat_after=${chatAfter}` : ""].filter(Boolean);
    const since = params.length ? `?${params.join("&")}` : "";
    const socket = new WebSocket(this._withToken(`${scheme}://${location.host}/ws/rooms/${encodeURIComponent(this.slug)}${since}`));
    this.socket = socket;
    socket.onopen = () => this._connected();
    socket.onmessage = (event) => this._message(JSON.parse(event.data));
    socket.onclose = async (event) => {
      for (const [ref, entry] of this.pending) { entry.resolve(null); this.pending.delete(ref); }
      if (this.stopped || this.socket !== socket) return;
      if (WS_DENIED[event.code]) { this._deny(WS_DENIED[event.code], event.reason || `closed (${event.code})`); return; }
      await this._failed();
      this.run();
    };
  }

  stop() {
    this.socket?.close();
    super.stop();
  }

  _message(message) {
    if (message.type === "state") this._deliver(message.state);
    else if (message.type === "chat") this.chat?.onEvent({ kind: "message", message: message.message });
    else if (message.type === "chat_delete") this.chat?.onEvent({ kind: "delete", id: message.id });
    else if (message.type === "chat_reset") this.chat?.onEvent({ kind: "reset" });
    else if (message.type === "ack") {
      const entry = this.pending.get(message.ref);
      if (entry) { this.pending.delete(message.ref); entry.resolve(message); }
    } else if (message.type === "error") {
      // An error about one of our requests answers it (a refusal without an ack).
      const entry = message.ref !== undefined && this.pending.get(message.ref);
      if (entry) { this.pending.delete(message.ref); entry.resolve({ accepted: false, ...message }); }
      else console.warn("vsync ws error", message);
    }
  }

  _request(message) {
    const ref = this.nextRef++;
    return new Promise((resolve) => {
      this.pending.set(ref, { resolve });
      this.socket.send(JSON.stringify({ ...message, ref }));
      setTimeout(() => { if (this.pending.delete(ref)) resolve(null); }, ACK_TIMEOUT_MS);
    });
  }

  async send(command) {
    if (this.socket?.readyState !== WebSocket.OPEN) return super.send(command);
    const ack = await this._request({ type: "command", command });
    if (ack === null) return { status: 0, body: null };
    if (ack.accepted) return { status: 200, body: ack };
    return { status: ack.reason === "stale" ? 409 : ackStatus(ack), body: ack };
  }

  async sendChat(message) {
    if (this.socket?.readyState !== WebSocket.OPEN) return super.sendChat(message);
    const ack = await this._request({ type: "chat", ...message });
    if (ack === null) return { status: 0, body: null };
    // A server whose socket does not take chat yet: the HTTP endpoint does.
    if (ack.type === "error" && ack.field === "type") return super.sendChat(message);
    if (ack.accepted) return { status: 201, body: ack };
    return { status: ackStatus(ack), body: ack };
  }

  // Presence rides the socket; the server answers only when something is wrong,
  // so the member list comes from GET .../members (presence.js does that).
  async sendPresence(report) {
    if (this.socket?.readyState !== WebSocket.OPEN) return super.sendPresence(report);
    this.socket.send(JSON.stringify({ type: "presence", presence: report }));
    return null;
  }
}

// An ack carries no status; a refusal by policy reads as 403 so that the page treats it
// like the HTTP answer (controls disabled with the reason), anything else as 400.
function ackStatus(ack) {
  if (ack.status) return ack.status;
  return /denied|not allowed|only (the )?(owner|host)|locked|muted|banned|forbidden/i.test(ack.error || "") ? 403 : 400;
}

const ADAPTERS = { poll: PollAdapter, longpoll: LongPollAdapter, sse: SseAdapter, ws: WsAdapter };

export function openTransport(name, options) {
  const Kind = ADAPTERS[name];
  if (!Kind) throw new Error(`unknown transport ${name}`);
  return new Kind(name, options);
}
