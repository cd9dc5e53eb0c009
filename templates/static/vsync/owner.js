// The owner's panel: the room's name, who controls playback (everyone, or owner and
// hosts), whether the lobby lists it, and its password. Each change is one
// POST /settings; the form then shows what the server answered, never what was asked.

export class OwnerPanel {
  // membership: session.js; settings: {name, control, listed, has_password};
  // onSettings(settings): the page reacts (title, controls); say(text, isError)
  constructor({ root, membership, settings, onSettings }) {
    this.root = root;
    this.membership = membership;
    this.onSettings = onSettings;
    const $ = (selector) => root.querySelector(selector);
    this.form = $("#owner-form");
    this.name = $("#owner-name");
    this.listed = $("#owner-listed");
    this.passwordForm = $("#password-form");
    this.password = $("#owner-password");
    this.passwordState = $("#password-state");
    this.remove = $("#password-remove");
    this.status = $("#owner-status");
    this.settings = { ...settings };
    this._fill();
    this.name.addEventListener("change", () => {
      const name = this.name.value.trim();
      if (name && name !== this.settings.name) this.save({ name });
    });
    this.listed.addEventListener("change", () => this.save({ listed: this.listed.checked }));
    for (const radio of root.querySelectorAll('input[name="control"]')) {
      radio.addEventListener("change", () => { if (radio.checked) this.save({ control: radio.value }); });
    }
    this.passwordForm.addEventListener("submit", (event) => {
      event.preventDefault();
      if (this.password.value) this.save({ password: this.password.value }, "The password is set: new viewers need it.");
    });
    this.remove.addEventListener("click", () => this.save({ password: null }, "The password is removed."));
  }

  show(visible) { this.root.hidden = !visible; }

  async save(change, done = "Saved.") {
    this._say("Saving…");
    const { status, body } = await this.membership.postJson("/settings", change);
    if (status === 200) {
      // The answer never carries the password, only (if the server says) whether there is one.
      if ("password" in change) this.settings.has_password = change.password !== null;
      Object.assign(this.settings, pick(body, ["name", "control", "listed", "has_password"]));
      if ("password" in change) this.password.value = "";
      this._say(done);
      this.onSettings(this.settings);
    } else {
      this._say(body?.error || `Not saved (${status}).`, true);
    }
    this._fill();
  }

  _fill() {
    const s = this.settings;
    if (document.activeElement !== this.name) this.name.value = s.name ?? "";
    this.listed.checked = Boolean(s.listed);
    for (const radio of this.root.querySelectorAll('input[name="control"]')) radio.checked = radio.value === s.control;
    this.passwordState.textContent = s.has_password
      ? "This room has a password: only people who know it (or already joined) can watch."
      : "No password: anyone with the link can watch.";
    this.remove.disabled = !s.has_password;
  }

  _say(text, isError = false) {
    this.status.textContent = text;
    this.status.classList.toggle("error", isError);
  }
}

function pick(object, keys) {
  const picked = {};
  for (const key of keys) if (object && key in object) picked[key] = object[key];
  return picked;
}
