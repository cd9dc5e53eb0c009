// The member list: name, role, transport, status and drift of everyone in the room, and
// for the owner and hosts the buttons that moderate them (grant/revoke host, kick, ban).
// Rows are kept per client_id and updated in place, so a focused button survives the
// list's refresh every presence beat.

const ROLE_LABEL = { owner: "owner", host: "host", viewer: "viewer" };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setText(node, text) { if (node.textContent !== text) node.textContent = text; }

function formatDrift(drift) {
  if (drift === null || drift === undefined || !Number.isFinite(drift)) return "";
  return `${drift >= 0 ? "+" : ""}${drift.toFixed(0)} ms`;
}

export class MemberList {
  // actions: {role(clientId, role), kick(clientId, ban)}; me(): {clientId, role}
  constructor({ list, me, actions }) {
    this.list = list;
    this.me = me;
    this.actions = actions;
    this.rows = new Map();
    this.members = [];
    list.addEventListener("click", (event) => this._click(event));
  }

  render(members) {
    this.members = members;
    const { clientId, role: myRole } = this.me();
    const seen = new Set();
    let previous = null;
    for (const member of members) {
      seen.add(member.client_id);
      let row = this.rows.get(member.client_id);
      if (!row) { row = this._row(member.client_id); this.rows.set(member.client_id, row); }
      this._fill(row, member, clientId, myRole);
      const wanted = previous ? previous.nextSibling : this.list.firstChild;
      if (wanted !== row.li) this.list.insertBefore(row.li, wanted);
      previous = row.li;
    }
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) { row.li.remove(); this.rows.delete(id); }
    }
    this.list.querySelector(".members-empty")?.remove();
    if (!members.length) this.list.append(el("li", "muted members-empty", "Nobody yet"));
  }

  _row(clientId) {
    const li = el("li", "member");
    li.dataset.clientId = clientId;
    const row = {
      li, dot: el("span", "dot"), name: el("span", "member-name"), role: el("span", "role"),
      transport: el("span", "tag"), status: el("span", "member-status"), drift: el("span", "member-drift"),
      tools: el("span", "member-tools"),
    };
    row.dot.setAttribute("aria-hidden", "true");
    row.drift.title = "drift from the room position";
    li.append(row.dot, row.name, row.role, row.transport, row.status, row.drift, row.tools);
    return row;
  }

  _fill(row, member, selfId, myRole) {
    const you = member.client_id === selfId;
    row.li.dataset.status = member.status || "";
    row.li.dataset.role = member.role || "viewer";
    setText(row.name, `${member.name || "anonymous"}${you ? " (you)" : ""}`);
    const role = ROLE_LABEL[member.role] || "";
    setText(row.role, role);
    row.role.hidden = !role || role === "viewer";
    row.role.dataset.role = member.role || "";
    setText(row.transport, member.transport || "");
    row.transport.hidden = !member.transport;
    setText(row.status, member.status || "");
    setText(row.drift, formatDrift(member.drift_ms));
    // Which buttons this viewer may use on that member (the server checks again).
    const target = member.role || "viewer";
    const canModerate = !you && target !== "owner" && (myRole === "owner" || myRole === "host");
    const tools = [];
    if (canModerate && myRole === "owner") {
      tools.push(target === "host" ? ["role", "viewer", "Revoke host"] : ["role", "host", "Make host"]);
    }
    if (canModerate) tools.push(["kick", "", "Kick"], ["ban", "", "Ban"]);
    const signature = tools.map((t) => t.join(":")).join("|");
    if (row.tools.dataset.signature === signature) return;
    row.tools.dataset.signature = signature;
    row.tools.replaceChildren(...tools.map(([action, value, label]) => {
      const button = el("button", `btn tiny${action === "ban" ? " danger" : ""}`, label);
      button.type = "button";
      button.dataset.action = action;
      button.dataset.value = value;
      button.setAttribute("aria-label", `${label}: ${member.name || member.client_id}`);
      return button;
    }));
  }

  async _click(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const clientId = button.closest("li").dataset.clientId;
    const name = this.members.find((m) => m.client_id === clientId)?.name || clientId;
    const { action, value } = button.dataset;
    if (action === "ban" && !confirm(`Ban ${name} from this room? They cannot come back.`)) return;
    button.disabled = true;
    try {
      if (action === "role") await this.actions.role(clientId, value);
      else await this.actions.kick(clientId, action === "ban");
    } finally {
      button.disabled = false;
    }
  }
}
