// The chat panel: the room's messages in id order, none twice, arriving over the page's
// transport (transports.js hands them over as {kind: "message" | "delete" | "reset"}).
// Text is always set with textContent: a message is never parsed as HTML.

// The server keeps at most this many per answer (CONTRACT v2 "chat").
const HISTORY_LIMIT = 100;
// Polling transports learn of deletions by re-reading the newest messages this often.
const RECONCILE_MS = 10_000;
// Within this many pixels of the end the log counts as "at the bottom" and follows new messages.
const BOTTOM_SLACK_PX = 24;
// What a moderator's "Mute" does: long enough to calm a flood, short enough to forget.
const MUTE_S = 300;
const TEXT_MAX = 500;
// A long evening's chat stays light: beyond this many, the oldest leave the page.
const SHOWN_MAX = 500;

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

export class ChatPanel {
  // membership: session.js Membership; getTransport(): the live adapter; say(text): a notice
  constructor({ root, membership, getTransport, say }) {
    this.membership = membership;
    this.getTransport = getTransport;
    this.say = say;
    const $ = (selector) => root.querySelector(selector);
    this.log = $("#chat-log");
    this.form = $("#chat-form");
    this.input = $("#chat-input");
    this.sendButton = $("#chat-send");
    this.unreadButton = $("#chat-unread");
    this.status = $("#chat-status");
    this.counter = $("#chat-count");
    this.items = new Map(); // id -> {li, message}
    this.lastId = 0;
    this.unread = 0;
    this._bind();
  }

  get api() { return this.membership.api; }

  // What a transport needs: where the page is in the log, and where to hand events.
  get feed() {
    return { after: () => this.lastId, onEvent: (event) => this.onEvent(event) };
  }

  _bind() {
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.send(); });
    this.input.addEventListener("keydown", (event) => {
      // Enter sends, Shift+Enter is a new line; not while an IME is composing.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); this.send(); }
    });
    this.input.addEventListener("input", () => this._count());
    this.log.addEventListener("scroll", () => { if (this._atBottom()) this._setUnread(0); });
    this.unreadButton.addEventListener("click", () => this._scrollToEnd());
    this.log.addEventListener("click", (event) => this._moderate(event));
  }

  onEvent(event) {
    if (event.kind === "message") this.add(event.message);
    else if (event.kind === "delete") this.remove(event.id);
    else if (event.kind === "reset") this.catchUp();
  }

  // Newest history first thing, then whatever a (re)connect may have missed.
  async load() { await this._read(0, true); }

  catchUp() { return this._read(this.lastId, false); }

  async _read(after, reconcile) {
    try {
      const response = await this.membership.fetch(`${this.api}/chat?after=${after}`, { cache: "no-store" });
      if (response.status !== 200) return;
      const { messages } = await response.json();
      if (reconcile) this._reconcile(messages);
      for (const message of messages) this.add(message);
    } catch { /* offline: the next (re)connect catches up */ }
  }

  // `messages` are the newest ones (after=0): any we show from that range that is not
  // among them was deleted while we could not hear about it.
  _reconcile(messages) {
    if (messages.length >= HISTORY_LIMIT) {
      const oldest = messages[0].id;
      const present = new Set(messages.map((m) => m.id));
      for (const id of [...this.items.keys()]) if (id >= oldest && !present.has(id)) this.remove(id);
    } else {
      const present = new Set(messages.map((m) => m.id));
      for (const id of [...this.items.keys()]) if (!present.has(id)) this.remove(id);
    }
  }

  startReconciling(shouldReconcile) {
    clearInterval(this._reconciler);
    this._reconciler = setInterval(() => { if (shouldReconcile()) this._read(0, true); }, RECONCILE_MS);
  }

  add(message) {
    if (!message || !Number.isInteger(message.id) || this.items.has(message.id)) return;
    const stick = this._atBottom();
    const li = this._render(message);
    // In id order, whatever order transports and catch-ups deliver in.
    let before = null;
    for (const [id, item] of this.items) if (id > message.id && (!before || id < before.id)) before = { id, li: item.li };
    this.log.insertBefore(li, before ? before.li : null);
    this.items.set(message.id, { li, message });
    this.lastId = Math.max(this.lastId, message.id);
    if (this.items.size > SHOWN_MAX) this.remove(Math.min(...this.items.keys()));
    this.log.querySelector(".chat-empty")?.remove();
    const mine = message.client_id === this.membership.clientId;
    if (stick || mine) this._scrollToEnd();
    else this._setUnread(this.unread + 1);
  }

  // The role changed (host granted or revoked): redraw with or without moderation buttons.
  refreshTools() {
    for (const [id, item] of this.items) {
      const li = this._render(item.message);
      item.li.replaceWith(li);
      this.items.set(id, { li, message: item.message });
    }
  }

  remove(id) {
    const item = this.items.get(id);
    if (!item) return;
    item.li.remove();
    this.items.delete(id);
  }

  _render(message) {
    const li = document.createElement("li");
    li.className = "chat-message";
    li.dataset.id = String(message.id);
    li.dataset.clientId = message.client_id;
    if (message.client_id === this.membership.clientId) li.classList.add("mine");
    const head = document.createElement("div");
    head.className = "chat-head";
    const name = document.createElement("span");
    name.className = "chat-name";
    name.textContent = message.name || message.client_id;
    const time = document.createElement("time");
    time.className = "chat-time";
    const at = new Date(message.ms);
    time.dateTime = at.toISOString();
    time.textContent = timeFormat.format(at);
    head.append(name, time);
    if (this.membership.moderates && message.client_id !== this.membership.clientId) {
      const tools = document.createElement("span");
      tools.className = "chat-tools";
      for (const [action, label] of [["delete", "Delete"], ["mute", "Mute 5 min"]]) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "btn tiny ghost";
        button.dataset.action = action;
        button.textContent = label;
        button.setAttribute("aria-label", `${label}: message from ${name.textContent}`);
        tools.append(button);
      }
      head.append(tools);
    }
    const text = document.createElement("p");
    text.className = "chat-text";
    text.textContent = message.text;
    li.append(head, text);
    return li;
  }

  async send() {
    const text = this.input.value.trim();
    if (!text) return;
    if (text.length > TEXT_MAX) { this._status(`At most ${TEXT_MAX} characters.`, true); return; }
    this.sendButton.disabled = true;
    try {
      const { status, body } = await this.getTransport().sendChat({ client_id: this.membership.clientId, text });
      if (body?.message) this.add(body.message);
      if (status === 200 || status === 201) { this.input.value = ""; this._count(); this._status(""); }
      else if (status === 0) this._status("Not sent: the connection dropped. Try again.", true);
      else if (status === 429) this._status("Slow down a little: too many messages.", true);
      else this._status(body?.error || `Not sent (${status}).`, true);
    } finally {
      this.sendButton.disabled = false;
      this.input.focus();
    }
  }

  async _moderate(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const li = button.closest("li");
    const id = Number(li.dataset.id);
    button.disabled = true;
    try {
      if (button.dataset.action === "delete") {
        // DELETE is the natural verb; POST .../delete is the form-friendly alias.
        let response = await this.membership.fetch(`${this.api}/chat/${id}`, { method: "DELETE" });
        if (response.status === 404 || response.status === 405) {
          response = await this.membership.fetch(`${this.api}/chat/${id}/delete`, { method: "POST" });
        }
        if (response.ok) this.remove(id);
        else this._status((await response.json().catch(() => ({}))).error || `Not deleted (${response.status}).`, true);
      } else {
        const { status, body } = await this.membership.postJson("/mute", { client_id: li.dataset.clientId, seconds: MUTE_S });
        this._status(status === 200 ? `${li.querySelector(".chat-name").textContent} is muted for 5 minutes.`
          : body?.error || `Not muted (${status}).`, status !== 200);
      }
    } finally {
      button.disabled = false;
    }
  }

  _count() {
    const left = TEXT_MAX - this.input.value.trim().length;
    this.counter.textContent = left < 100 ? String(left) : "";
    this.counter.classList.toggle("error", left < 0);
  }

  _status(text, isError = false) {
    this.status.textContent = text;
    this.status.classList.toggle("error", isError);
  }

  _atBottom() { return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight <= BOTTOM_SLACK_PX; }

  _scrollToEnd() {
    this.log.scrollTop = this.log.scrollHeight;
    this._setUnread(0);
  }

  _setUnread(count) {
    this.unread = count;
    this.unreadButton.hidden = count === 0;
    this.unreadButton.textContent = count === 1 ? "1 new message ↓" : `${count} new messages ↓`;
  }
}
