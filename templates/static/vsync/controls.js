// The custom player controls. Gestures call `actions` (which send commands);
// everything else here (volume, mute, fullscreen) is local to this viewer.

// Arrow keys seek this far, as in most players.
const ARROW_SEEK_S = 5;

// Inline icons: emoji and symbol fonts are not on every machine.
const svg = (path) => `<svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" fill="currentColor">${path}</svg>`;
const ICONS = {
  play: svg('<path d="M8 5v14l11-7z"/>'),
  pause: svg('<path d="M6 5h4v14H6zM14 5h4v14h-4z"/>'),
  sound: svg('<path d="M4 9v6h4l5 4V5L8 9H4zm12.5 3a4.5 4.5 0 0 0-2.5-4v8a4.5 4.5 0 0 0 2.5-4z"/>'),
  muted: svg('<path d="M4 9v6h4l5 4V5L8 9H4zm17 .4L19.6 8 17 10.6 14.4 8 13 9.4l2.6 2.6-2.6 2.6 1.4 1.4 2.6-2.6 2.6 2.6 1.4-1.4-2.6-2.6z"/>'),
  full: svg('<path d="M4 4h6v2H6v4H4zm10 0h6v6h-2V6h-4zM4 14h2v4h4v2H4zm14 0h2v6h-6v-2h4z"/>'),
  exitFull: svg('<path d="M8 4h2v6H4V8h4zm6 0h2v4h4v2h-6zM4 14h6v6H8v-4H4zm10 0h6v2h-4v4h-2z"/>'),
};
const setIcon = (button, name) => { if (button.dataset.icon !== name) { button.innerHTML = ICONS[name]; button.dataset.icon = name; } };

export function formatTime(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) seconds = 0;
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

export class Controls {
  // actions: {play(), pause(), seek(seconds), rate(r), position(), playing(), rateValue()}
  constructor({ root, video, actions }) {
    this.root = root;
    this.video = video;
    this.actions = actions;
    const $ = (id) => root.querySelector(`#${id}`);
    this.el = {
      play: $("c-play"), seek: $("c-seek"), hover: $("c-hover"), current: $("c-current"), total: $("c-total"),
      rate: $("c-rate"), mute: $("c-mute"), volume: $("c-volume"), full: $("c-full"),
    };
    this.dragging = false;
    this._bind();
    setInterval(() => this.render(), 250);
  }

  _bind() {
    const { el, video, actions } = this;
    el.play.addEventListener("click", () => this.togglePlay());
    el.seek.addEventListener("input", () => { this.dragging = true; el.current.textContent = formatTime(+el.seek.value); });
    el.seek.addEventListener("change", () => { this.dragging = false; actions.seek(+el.seek.value); });
    el.seek.addEventListener("pointermove", (event) => this._hover(event));
    el.seek.addEventListener("pointerleave", () => { el.hover.hidden = true; });
    el.rate.addEventListener("change", () => actions.rate(+el.rate.value));
    el.mute.addEventListener("click", () => this.toggleMute());
    el.volume.addEventListener("input", () => {
      video.volume = +el.volume.value;
      video.muted = video.volume === 0;
      this.render();
    });
    el.full.addEventListener("click", () => this.toggleFullscreen());
    video.addEventListener("click", () => this.togglePlay());
    video.addEventListener("volumechange", () => this.render());
    document.addEventListener("fullscreenchange", () => this.render());
    document.addEventListener("keydown", (event) => this._key(event));
  }

  togglePlay() {
    if (this.actions.playing()) this.actions.pause();
    else this.actions.play();
  }

  toggleMute() {
    this.video.muted = !this.video.muted;
    if (!this.video.muted && this.video.volume === 0) this.video.volume = 1;
    this.render();
  }

  toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen();
    else this.root.requestFullscreen?.();
  }

  _key(event) {
    const target = event.target;
    const typing = target.closest?.("input, select, textarea, [contenteditable]") && target.id !== "c-seek";
    // Outside the player, a focused button, link or list item (the queue, members, chat) keeps its keys.
    const elsewhere = !target.closest?.("#player") && target.closest?.("button, a, summary, [tabindex]");
    if (typing || elsewhere || event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    const keys = {
      " ": () => this.togglePlay(),
      ArrowLeft: () => this.actions.seek(Math.max(0, this.actions.position() - ARROW_SEEK_S)),
      ArrowRight: () => this.actions.seek(this.actions.position() + ARROW_SEEK_S),
      Home: () => this.actions.seek(0),
      m: () => this.toggleMute(),
      f: () => this.toggleFullscreen(),
    };
    const run = keys[event.key];
    if (!run) return;
    event.preventDefault();
    run();
  }

  _hover(event) {
    const { seek, hover } = this.el;
    const box = seek.getBoundingClientRect();
    const fraction = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    hover.textContent = formatTime(fraction * +seek.max);
    hover.style.left = `${fraction * 100}%`;
    hover.hidden = false;
  }

  render() {
    const { el, video, actions } = this;
    const duration = Number.isFinite(video.duration) ? video.duration : +el.seek.max;
    const position = actions.position();
    el.seek.max = duration || 0;
    if (!this.dragging) {
      el.seek.value = position;
      el.current.textContent = formatTime(position);
    }
    el.seek.setAttribute("aria-valuetext", `${formatTime(position)} of ${formatTime(duration)}`);
    el.seek.style.setProperty("--progress", `${duration ? (100 * position) / duration : 0}%`);
    el.total.textContent = formatTime(duration);
    const playing = actions.playing();
    setIcon(el.play, playing ? "pause" : "play");
    el.play.setAttribute("aria-label", playing ? "Pause" : "Play");
    const muted = video.muted || video.volume === 0;
    setIcon(el.mute, muted ? "muted" : "sound");
    el.mute.setAttribute("aria-label", muted ? "Unmute" : "Mute");
    el.volume.value = video.muted ? 0 : video.volume;
    setIcon(el.full, document.fullscreenElement ? "exitFull" : "full");
    el.full.setAttribute("aria-label", document.fullscreenElement ? "Exit fullscreen" : "Fullscreen");
    const rate = String(actions.rateValue());
    if (![...el.rate.options].some((option) => option.value === rate)) el.rate.add(new Option(`${rate}×`, rate));
    if (document.activeElement !== el.rate) el.rate.value = rate;
  }
}
