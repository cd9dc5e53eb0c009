// Four ways to receive the same room states, behind one interface:
//   const t = openTransport(name, {slug, onState, onStatus, onReconnect});
//   t.start(sinceVersion); t.stop(); await t.send(command); await t.sendPresence(report);
// Every adapter resumes from the last version it saw and reconnects with backoff and jitter.

// Short polling every quarter second: the room's start lead covers this interval.
const POLL_INTERVAL_MS = 250;
const LONG_POLL_TIMEOUT_S = 25;
// Reconnect backoff: doubles from 250 ms up to 8 s, with "equal jitter" so a
// restarted server is not hit by every viewer in the same instant.
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 8_000;
// A command acknowledgement that takes this long is lost with its socket.
const ACK_TIMEOUT_MS = 5_000;

export const TRANSPORT_NAMES = ["poll", "longpoll", "sse", "ws"];

export function backoffMs(attempt) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
});

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch { /* empty body */ }
  return { status: response.status, body: data };
}

class Adapter {
  constructor(name, { slug, onState, onStatus = () => {}, onReconnect = () => {} }) {
    this.name = name;
    this.slug = slug;
    this.onState = onState;
    this.onStatus = onStatus;
    this.onReconnect = onReconnect;
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

  // Commands and presence go over HTTP unless the transport has a better channel.
  send(command) { return postJson(`${this.api}/commands`, command); }

  async sendPresence(report) {
    const { status, body } = await postJson(`${this.api}/presence`, report);
    return status === 200 ? body : null;
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
    while (!this.stopped) {
      try {
        const headers = this.version ? { "If-None-Match": `"${this.version}"` } : {};
        const response = await fetch(`${this.api}/state`, { headers, cache: "no-store", signal });
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
    const signal = this.abort.signal;
    while (!this.stopped) {
      try {
        // Until an answer proves the connection, ask with a short timeout so the
        // page can say "live" without waiting for the next change.
        const timeout = this.status === "open" ? LONG_POLL_TIMEOUT_S : 1;
        const url = `${this.api}/poll?since=${this.version}&timeout=${timeout}`;
        const response = await fetch(url, { cache: "no-store", signal });
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
// jitter it; we close it on error and reopen with ?last_event_id= ourselves.
class SseAdapter extends Adapter {
  run() {
    if (this.stopped) return;
    const source = new EventSource(`${this.api}/events?last_event_id=${this.version}`);
    this.source = source;
    source.onopen = () => this._connected();
    source.addEventListener("state", (event) => this._deliver(JSON.parse(event.data)));
    source.onerror = async () => {
      source.close();
      if (this.stopped || this.source !== source) return;
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
    const socket = new WebSocket(`${scheme}://${location.host}/ws/rooms/${encodeURIComponent(this.slug)}`);
    this.socket = socket;
    socket.onopen = () => this._connected();
    socket.onmessage = (event) => this._message(JSON.parse(event.data));
    socket.onclose = async () => {
      for (const [ref, entry] of this.pending) { entry.resolve(null); this.pending.delete(ref); }
      if (this.stopped || this.socket !== socket) return;
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
    else if (message.type === "ack") {
      const entry = this.pending.get(message.ref);
      if (entry) { this.pending.delete(message.ref); entry.resolve(message); }
    } else if (message.type === "error") {
      console.warn("vsync ws error", message);
    }
  }

  async send(command) {
    if (this.socket?.readyState !== WebSocket.OPEN) return super.send(command);
    const ref = this.nextRef++;
    const ack = await new Promise((resolve) => {
      this.pending.set(ref, { resolve });
      this.socket.send(JSON.stringify({ type: "command", ref, command }));
      setTimeout(() => { if (this.pending.delete(ref)) resolve(null); }, ACK_TIMEOUT_MS);
    });
    if (ack === null) return { status: 0, body: null };
    if (ack.accepted) return { status: 200, body: ack };
    return { status: ack.reason === "stale" ? 409 : 400, body: ack };
  }

  // Presence rides the socket; the server answers only when something is wrong,
  // so the member list comes from GET .../members (presence.js does that).
  async sendPresence(report) {
    if (this.socket?.readyState !== WebSocket.OPEN) return super.sendPresence(report);
    this.socket.send(JSON.stringify({ type: "presence", presence: report }));
    return null;
  }
}

const ADAPTERS = { poll: PollAdapter, longpoll: LongPollAdapter, sse: SseAdapter, ws: WsAdapter };

export function openTransport(name, options) {
  const Kind = ADAPTERS[name];
  if (!Kind) throw new Error(`unknown transport ${name}`);
  return new Kind(name, options);
}
