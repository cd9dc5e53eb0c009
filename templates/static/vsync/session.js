// Membership: who this page is in a room (client_id, member token, role), and the fetch
// that proves it. Every page joins before it connects (CONTRACT v2 "owners, roles and
// passwords"); the creator's browser keeps the room's owner token and presents it on
// every join, so it is the owner on every visit.

const ownerKey = (slug) => `vsync.owner.${slug}`;

// One client_id per tab: two tabs are two viewers (sessionStorage survives reloads).
export function tabClientId() {
  const id = sessionStorage.getItem("vsync.client_id") || `c-${crypto.randomUUID().slice(0, 8)}`;
  sessionStorage.setItem("vsync.client_id", id);
  return id;
}

export function rememberOwnerToken(slug, token) { if (token) localStorage.setItem(ownerKey(slug), token); }
export function ownerToken(slug) { return localStorage.getItem(ownerKey(slug)); }
export function forgetOwnerToken(slug) { localStorage.removeItem(ownerKey(slug)); }

export class Membership {
  constructor({ slug, clientId }) {
    this.slug = slug;
    this.clientId = clientId;
    this.token = null;
    this.role = null;
    // Set when the server has no join endpoint (a v1 server): the page works as in v1.
    this.anonymous = false;
  }

  get api() { return `/api/rooms/${encodeURIComponent(this.slug)}`; }
  get isOwner() { return this.role === "owner"; }
  get moderates() { return this.role === "owner" || this.role === "host"; }

  headers() { return this.token ? { Authorization: `Bearer ${this.token}` } : {}; }

  // fetch() with this page's member token: the room's cookie would do too, but it is
  // one per room for the whole browser, and another tab may have replaced it.
  fetch(url, init = {}) {
    return fetch(url, { ...init, headers: { ...this.headers(), ...(init.headers || {}) } });
  }

  async postJson(path, body) {
    const response = await this.fetch(`${this.api}${path}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    return { status: response.status, body: answer };
  }

  // -> {ok: true} or {ok: false, status, error}. A 403 is a password needed, wrong, or a ban.
  async join({ name, password } = {}) {
    const body = { client_id: this.clientId };
    if (name) body.name = name;
    if (password) body.password = password;
    const owner = ownerToken(this.slug);
    if (owner) body.owner_token = owner;
    let response;
    try {
      response = await fetch(`${this.api}/join`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
    } catch {
      return { ok: false, status: 0, error: "The server cannot be reached." };
    }
    const answer = await response.json().catch(() => null);
    if (response.status === 200 && answer?.member_token) {
      this.token = answer.member_token;
      this.role = answer.role;
      this.anonymous = false;
      // An owner token the server did not honour is stale (the ownership moved): drop it.
      if (owner && answer.role !== "owner") forgetOwnerToken(this.slug);
      return { ok: true };
    }
    if (response.status === 404 && !answer?.error) {
      this.anonymous = true; // no join route at all: a v1 server
      return { ok: true };
    }
    return { ok: false, status: response.status, error: answer?.error || `The server said ${response.status}.` };
  }
}
