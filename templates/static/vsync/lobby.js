// The lobby: rooms with who is watching what, creating a room, joining one.
import { rememberOwnerToken } from "./session.js";

const REFRESH_MS = 3_000;
const list = document.getElementById("room-list");
const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function refresh() {
  try {
    const response = await fetch("/api/rooms", { cache: "no-store" });
    if (!response.ok) return;
    const { rooms } = await response.json();
    const html = rooms.map((room) => `<li class="room-item">
        <a class="room-link" href="/r/${encodeURIComponent(room.slug)}">
          <span class="room-name">${escapeHtml(room.name)}</span>
          <span class="room-media">${room.state.playing ? "▶" : "❚❚"} ${escapeHtml(room.state.media.title)}</span>
        </a>
        <span class="pill" title="members present">${room.members} watching</span>
        <a class="btn ghost small" href="/r/${encodeURIComponent(room.slug)}/lab">Lab</a></li>`).join("");
    list.innerHTML = html || '<li class="muted">No rooms yet: create one.</li>';
  } catch { /* keep the last list */ }
}

document.getElementById("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const error = document.getElementById("create-error");
  const body = { name: form.name.value.trim(), control: form.control.value, listed: form.listed.checked };
  if (form.media_url.value.trim()) body.media_url = form.media_url.value.trim();
  if (form.password.value) body.password = form.password.value;
  form.querySelector("button").disabled = true;
  error.hidden = true;
  try {
    const response = await fetch("/api/rooms", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (response.status === 201) {
      // Shown once by the server: whoever presents it is the owner. Kept per room in this browser.
      rememberOwnerToken(answer.room, answer.owner_token);
      location.href = `/r/${encodeURIComponent(answer.room)}`;
      return;
    }
    error.textContent = answer.error || `The server said ${response.status}`;
    error.hidden = false;
  } finally {
    form.querySelector("button").disabled = false;
  }
});

document.getElementById("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = event.target.room.value.trim();
  const slug = value.includes("/r/") ? value.split("/r/")[1].split(/[?#/]/)[0] : value.toLowerCase();
  if (slug) location.href = `/r/${encodeURIComponent(slug)}`;
});

setInterval(refresh, REFRESH_MS);
