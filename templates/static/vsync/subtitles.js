// Subtitles: one <track> per entry of the room's `media.subtitles`, a per-viewer choice
// (off or one track, kept across reloads), and an upload form for .vtt/.srt files.
// The page draws the cues itself (track mode "hidden", its own caption box): the browser's
// own rendering would sit under the custom controls and cannot be styled.

const OFF = "off";

export class Subtitles {
  // membership: session.js; say(text, isError); onState(state): a state an answer carried
  constructor({ video, captions, select, form, membership, say, onState }) {
    this.video = video;
    this.captions = captions;
    this.select = select;
    this.form = form;
    this.membership = membership;
    this.say = say;
    this.onState = onState;
    this.storageKey = `vsync.subtitles.${membership.slug}`;
    this.entries = [];
    this._signature = null;
    select.addEventListener("change", () => {
      this._remember(select.value);
      this._apply();
    });
    form.addEventListener("submit", (event) => { event.preventDefault(); this._upload(); });
  }

  // A new state: rebuild the tracks only when the media or its subtitles changed.
  render(state) {
    const media = state?.media;
    const entries = media?.subtitles ?? [];
    const signature = JSON.stringify([media?.url, entries]);
    if (signature === this._signature) return;
    this._signature = signature;
    this.entries = entries;
    for (const track of this.video.querySelectorAll("track")) track.remove();
    this.tracks = entries.map((entry, index) => {
      const track = document.createElement("track");
      track.kind = "subtitles";
      track.src = entry.url;
      track.label = entry.label || entry.lang || `Track ${index + 1}`;
      if (entry.lang) track.srclang = entry.lang;
      track.dataset.url = entry.url;
      this.video.append(track);
      track.track.mode = "disabled";
      track.track.addEventListener("cuechange", () => this._draw());
      return track;
    });
    const options = [new Option("Subtitles off", OFF)];
    entries.forEach((entry, index) => options.push(new Option(this.tracks[index].label, entry.url)));
    this.select.replaceChildren(...options);
    this.select.disabled = entries.length === 0;
    this.select.value = this._chosen();
    this._apply();
  }

  // The remembered choice, matched to this media's tracks: the same file, else the same
  // label and language, else the same language; nothing remembered or matched: off.
  _chosen() {
    let wanted = null;
    try { wanted = JSON.parse(localStorage.getItem(this.storageKey)); } catch { /* none */ }
    if (!wanted || wanted === OFF) return OFF;
    const match = this.entries.find((e) => e.url === wanted.url)
      || this.entries.find((e) => e.label === wanted.label && e.lang === wanted.lang)
      || (wanted.lang && this.entries.find((e) => e.lang === wanted.lang));
    return match ? match.url : OFF;
  }

  _remember(value) {
    const entry = this.entries.find((e) => e.url === value);
    localStorage.setItem(this.storageKey, JSON.stringify(entry ? { url: entry.url, label: entry.label, lang: entry.lang } : OFF));
  }

  _apply() {
    const chosen = this.select.value;
    for (const track of this.tracks ?? []) track.track.mode = track.dataset.url === chosen ? "hidden" : "disabled";
    this._draw();
  }

  _draw() {
    const lines = [];
    for (const track of this.tracks ?? []) {
      if (track.track.mode !== "hidden") continue;
      // getCueAsHTML() parses WebVTT (entities, <i>, <b>), not HTML; we keep only its text.
      for (const cue of track.track.activeCues ?? []) lines.push(cue.getCueAsHTML?.().textContent ?? cue.text);
    }
    const text = lines.join("\n");
    if (this.captions.textContent !== text) this.captions.textContent = text;
    this.captions.hidden = text === "";
  }

  _upload() {
    const file = this.form.querySelector('input[type="file"]').files[0];
    if (!file) { this.say("Choose a .vtt or .srt file first.", true); return; }
    const data = new FormData(this.form);
    data.append("client_id", this.membership.clientId);
    const button = this.form.querySelector('button[type="submit"]');
    button.disabled = true;
    this.say(`Uploading ${file.name}…`);
    this.membership.fetch(`${this.membership.api}/subtitles`, { method: "POST", body: data })
      .then(async (response) => {
        const body = await response.json().catch(() => ({}));
        if (body.state) this.onState(body.state);
        if (response.status === 200) {
          this.say(`Subtitles added: ${file.name}`);
          this.form.reset();
          // Whoever adds a track wants to see it: choose it for this viewer.
          const added = body.state?.media.subtitles?.at(-1);
          if (added) {
            this._remember(added.url);
            this.render(body.state); // no-op if the transport already brought this state
            this.select.value = this._chosen();
            this._apply();
          }
        } else {
          this.say(body.error || `The server said ${response.status}.`, true);
        }
      })
      .catch(() => this.say("Upload failed: the connection broke.", true))
      .finally(() => { button.disabled = false; });
  }
}
