// Choosing media for the room (a URL or an upload) and reporting playback errors,
// so the server can re-resolve an expired stream URL.

// headers(): the member token's Authorization header (session.js), sent on every request.
export function wireMedia({ slug, clientId, clock, engine, form, input, upload, progress, status, headers = () => ({}) }) {
  const api = `/api/rooms/${encodeURIComponent(slug)}`;
  const say = (text, isError = false) => {
    status.textContent = text;
    status.classList.toggle("error", isError);
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const url = input.value.trim();
    if (!url) return;
    const button = form.querySelector("button");
    button.disabled = true;
    say("resolving…");
    try {
      const response = await fetch(`${api}/commands`, {
        method: "POST", headers: { "Content-Type": "application/json", ...headers() },
        body: JSON.stringify({ type: "media", client_id: clientId, client_ms: clock.now(), url }),
      });
      const body = await response.json().catch(() => ({}));
      if (body.state) engine.receive(body.state);
      if (response.ok) { say(`Now playing: ${body.state.media.title}`); input.value = ""; }
      else say(body.error || `The server said ${response.status}`, true);
    } catch {
      say("The server cannot be reached; try again.", true);
    } finally {
      button.disabled = false;
    }
  });

  upload.addEventListener("change", () => {
    const file = upload.files[0];
    if (!file) return;
    const data = new FormData();
    data.append("file", file);
    data.append("client_id", clientId);
    data.append("client_ms", String(clock.now()));
    const request = new XMLHttpRequest();
    request.open("POST", `${api}/media`);
    for (const [name, value] of Object.entries(headers())) request.setRequestHeader(name, value);
    progress.hidden = false;
    progress.value = 0;
    say(`Uploading ${file.name}…`);
    request.upload.onprogress = (event) => { if (event.lengthComputable) progress.value = event.loaded / event.total; };
    request.onload = () => {
      progress.hidden = true;
      let body = {};
      try { body = JSON.parse(request.responseText); } catch { /* not JSON */ }
      if (body.state) engine.receive(body.state);
      if (request.status === 200) say(`Now playing: ${body.state.media.title}`);
      else say(body.error || `Upload failed (${request.status})`, true);
      upload.value = "";
    };
    request.onerror = () => { progress.hidden = true; say("Upload failed: the connection broke.", true); };
    request.send(data);
  });

  // One report per URL: the server re-resolves and publishes a new version if it can.
  const reported = new Set();
  engine.video.addEventListener("error", () => {
    const url = engine.state?.media.url;
    if (!url || reported.has(url)) return;
    reported.add(url);
    say("This media failed to play here; asking the server to resolve it again…", true);
    fetch(`${api}/media/error`, {
      method: "POST", headers: { "Content-Type": "application/json", ...headers() },
      body: JSON.stringify({ client_id: clientId, url }),
    }).catch(() => {});
  });
}
