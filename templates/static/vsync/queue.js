// The queue panel: what plays next (the room state's `queue`), added by URL or upload,
// reordered by drag or keyboard (Alt+↑/↓ on an item, or its buttons), removed, or
// started now. Every change is a command (CONTRACT v2 "the queue"); the list is drawn
// only from the states the room sends, never from what this page asked for.
import { formatTime } from "./controls.js";

export class QueuePanel {
  // command(type, fields) -> {status, body}; membership: session.js; say(text, isError);
  // now(): server time (the upload's client_ms); onState(state): a state an answer carried
  constructor({ root, command, membership, say, now, onState }) {
    this.root = root;
    this.now = now;
    this.onState = onState;
    this.command = command;
    this.membership = membership;
    this.say = say;
    const $ = (selector) => root.querySelector(selector);
    this.list = $("#queue-list");
    this.form = $("#queue-form");
    this.input = $("#queue-url");
    this.upload = $("#queue-upload");
    this.progress = $("#queue-progress");
    this.nextButton = $("#queue-next");
    this.count = $("#queue-count");
    this.items = [];
    this.enabled = true;
    this._dragged = null;
    this._bind();
  }

  _bind() {
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this._enqueue(); });
    this.upload.addEventListener("change", () => this._upload());
    this.nextButton.addEventListener("click", () => this._run("next", {}));
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button) return;
      const id = Number(button.closest("li").dataset.id);
      const index = this.items.findIndex((item) => item.id === id);
      if (button.dataset.action === "remove") this._run("dequeue", { item: id });
      else if (button.dataset.action === "up") this._move(id, index - 1);
      else if (button.dataset.action === "down") this._move(id, index + 1);
    });
    this.list.addEventListener("keydown", (event) => {
      const li = event.target.closest("li[data-id]");
      if (!li || event.target !== li || !this.enabled) return;
      const id = Number(li.dataset.id);
      const index = this.items.findIndex((item) => item.id === id);
      if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
        event.preventDefault();
        this._move(id, index + (event.key === "ArrowUp" ? -1 : 1));
      } else if (event.key === "Delete") {
        event.preventDefault();
        this._run("dequeue", { item: id });
      } else if (event.key === "ArrowUp" || event.key === "ArrowDown") {
        event.preventDefault();
        li[event.key === "ArrowUp" ? "previousElementSibling" : "nextElementSibling"]?.focus();
      }
    });
    this.list.addEventListener("dragstart", (event) => {
      const li = event.target.closest("li[data-id]");
      if (!li || !this.enabled) { event.preventDefault(); return; }
      this._dragged = Number(li.dataset.id);
      li.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", li.dataset.id);
    });
    this.list.addEventListener("dragover", (event) => {
      if (this._dragged === null) return;
      event.preventDefault();
      const over = event.target.closest("li[data-id]");
      for (const li of this.list.children) li.classList.toggle("drop-target", li === over);
    });
    this.list.addEventListener("drop", (event) => {
      event.preventDefault();
      const over = event.target.closest("li[data-id]");
      const id = this._dragged;
      this._endDrag();
      if (id === null || !over) return;
      const to = this.items.findIndex((item) => item.id === Number(over.dataset.id));
      if (to >= 0) this._move(id, to);
    });
    this.list.addEventListener("dragend", () => this._endDrag());
  }

  _endDrag() {
    this._dragged = null;
    for (const li of this.list.children) li.classList.remove("dragging", "drop-target");
  }

  // The room may be hosts-only: then the panel reads but does not write.
  setEnabled(enabled, reason = "") {
    this.enabled = enabled;
    for (const control of this.root.querySelectorAll("input, button")) control.disabled = !enabled;
    this.root.querySelector("label.upload")?.classList.toggle("disabled", !enabled);
    this.root.title = enabled ? "" : reason;
    this.render(this.items, true);
  }

  render(queue = [], force = false) {
    const signature = JSON.stringify(queue) + this.enabled;
    if (!force && signature === this._signature) return;
    this._signature = signature;
    this.items = queue;
    const focusedId = document.activeElement?.closest?.("#queue-list li")?.dataset.id;
    this.count.textContent = queue.length ? String(queue.length) : "";
    this.nextButton.disabled = !this.enabled || queue.length === 0;
    if (!queue.length) {
      const empty = document.createElement("li");
      empty.className = "muted queue-empty";
      empty.textContent = "Nothing queued. Add a URL or a file and it plays after this one.";
      this.list.replaceChildren(empty);
      return;
    }
    this.list.replaceChildren(...queue.map((item, index) => this._row(item, index, queue.length)));
    if (focusedId) this.list.querySelector(`li[data-id="${CSS.escape(focusedId)}"]`)?.focus();
  }

  _row(item, index, total) {
    const li = document.createElement("li");
    li.className = "queue-item";
    li.dataset.id = String(item.id);
    li.tabIndex = 0;
    li.draggable = this.enabled;
    li.setAttribute("aria-label", `${index + 1}. ${item.title || item.url}${this.enabled ? ": Alt+arrows move it, Delete removes it" : ""}`);
    const handle = document.createElement("span");
    handle.className = "queue-handle";
    handle.setAttribute("aria-hidden", "true");
    handle.textContent = "⋮⋮";
    const text = document.createElement("span");
    text.className = "queue-text";
    const title = document.createElement("span");
    title.className = "queue-title";
    title.textContent = item.title || item.url;
    title.title = item.url;
    const meta = document.createElement("span");
    meta.className = "queue-meta";
    meta.textContent = [item.duration ? formatTime(item.duration) : "", item.source || ""].filter(Boolean).join(" · ");
    text.append(title, meta);
    const tools = document.createElement("span");
    tools.className = "queue-tools";
    for (const [action, label, symbol, disabled] of [
      ["up", "Move up", "↑", index === 0], ["down", "Move down", "↓", index === total - 1], ["remove", "Remove", "✕", false],
    ]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn tiny ghost";
      button.dataset.action = action;
      button.textContent = symbol;
      button.tabIndex = -1; // the item itself takes the keys; the buttons are for pointers
      button.disabled = disabled || !this.enabled;
      button.setAttribute("aria-label", `${label}: ${item.title || item.url}`);
      tools.append(button);
    }
    li.append(handle, text, tools);
    return li;
  }

  _move(id, to) {
    if (to < 0 || to >= this.items.length) return;
    this._run("move", { item: id, to });
  }

  async _run(type, fields) {
    const { status, body } = await this.command(type, fields);
    if (status >= 400) this.say(body?.error || `The server said ${status}.`, true);
    return status;
  }

  async _enqueue() {
    const url = this.input.value.trim();
    if (!url) return;
    const button = this.form.querySelector("button");
    button.disabled = true;
    this.say("resolving…");
    try {
      const { status, body } = await this.command("enqueue", { url });
      if (status === 200) { this.input.value = ""; this.say(`Queued: ${body.state.queue?.at(-1)?.title ?? url}`); }
      else if (status === 0) this.say("The server cannot be reached; try again.", true);
      else this.say(body?.error || `The server said ${status}.`, true);
    } finally {
      button.disabled = !this.enabled;
    }
  }

  _upload() {
    const file = this.upload.files[0];
    if (!file) return;
    const data = new FormData();
    data.append("file", file);
    data.append("queue", "1");
    data.append("client_id", this.membership.clientId);
    data.append("client_ms", String(this.now()));
    const request = new XMLHttpRequest();
    request.open("POST", `${this.membership.api}/media`);
    for (const [name, value] of Object.entries(this.membership.headers())) request.setRequestHeader(name, value);
    this.progress.hidden = false;
    this.progress.value = 0;
    this.say(`Uploading ${file.name} to the queue…`);
    request.upload.onprogress = (event) => { if (event.lengthComputable) this.progress.value = event.loaded / event.total; };
    request.onload = () => {
      this.progress.hidden = true;
      let body = {};
      try { body = JSON.parse(request.responseText); } catch { /* not JSON */ }
      if (body.state) this.onState(body.state);
      if (request.status === 200) this.say(`Queued: ${file.name}`);
      else this.say(body.error || `Upload failed (${request.status})`, true);
      this.upload.value = "";
    };
    request.onerror = () => { this.progress.hidden = true; this.say("Upload failed: the connection broke.", true); };
    request.send(data);
  }
}
