"""A small website on 127.0.0.1 for media tests: a WebM file, a page with a <video>, redirects.

The page's <video> points at a signed-looking URL that changes on every request
(``?sig=<n>&expire=<epoch>``), the way YouTube's stream URLs do, so re-resolving
yields a new stream URL.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

DEMO_WEBM = Path(__file__).resolve().parents[2] / "rooms" / "media" / "demo" / "demo.webm"


@dataclass
class MediaSite:
    expire_in_s: float = 6 * 3600
    page_missing: bool = False
    delay_s: float = 0.0
    hits: dict[str, int] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> MediaSite:
        site = self
        webm = DEMO_WEBM.read_bytes()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                site.hits[path] = site.hits.get(path, 0) + 1
                if site.delay_s:
                    time.sleep(site.delay_s)
                if path == "/clip.webm":
                    self._send(200, "video/webm", webm)
                elif path == "/page.html" and not site.page_missing:
                    count = site.hits[path]
                    expire = int(time.time() + site.expire_in_s)
                    self._send(200, "text/html", (
                        "<html><head><title>Test Page</title>"
                        '<meta property="og:image" content="/thumb.jpg"></head><body>'
                        f'<video controls><source src="/clip.webm?sig={count}&amp;expire={expire}" '
                        'type="video/webm"></video></body></html>').encode())
                elif path == "/sizes.html":
                    self._send(200, "text/html", (
                        b"<html><head><title>Sizes</title></head><body><video controls>"
                        b'<source src="/clip.webm?h=1080" type="video/webm" res="1080">'
                        b'<source src="/clip.webm?h=480" type="video/webm" res="480">'
                        b'<source src="/clip.webm?h=240" type="video/webm" res="240">'
                        b"</video></body></html>"))
                elif path == "/notes.txt":
                    self._send(200, "text/plain", b"just some text, not media\n" * 40)
                elif path == "/empty.html":
                    self._send(200, "text/html", b"<html><head><title>Nothing</title></head><body>hi</body></html>")
                elif path.startswith("/redirect/"):
                    # /redirect/<scheme>/<rest>: a 302 to <scheme>://<rest>
                    scheme, _, rest = path.removeprefix("/redirect/").partition("/")
                    self.send_response(302)
                    self.send_header("Location", f"{scheme}://{rest}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._send(404, "text/plain", b"not found")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


# Fixtures for media tests (import them into a test module to use them).


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything in this process connects to an address other than loopback."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = str(address[0]).split("%", 1)[0]  # type: ignore[index]
            if not ipaddress.ip_address(host).is_loopback:
                raise AssertionError(f"the test tried to connect to {address}")

    def connect(sock: socket.socket, address: object) -> None:
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: object) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture
def media_settings(settings: object, tmp_path: Path, loopback_only: None) -> Iterator[object]:
    """127.0.0.1 allowed, uploads in a temporary folder, no background refresher, empty cache."""
    from rooms.media.sources import resolution_cache

    settings.VSYNC_MEDIA_ALLOW_HOSTS = ["127.0.0.1"]  # type: ignore[attr-defined]
    settings.VSYNC_RESOLVE_CHECK_INTERVAL_S = 0  # type: ignore[attr-defined]
    # The default: yt-dlp on a loaded runner (four xdist workers on two cores) took over 5 s.
    settings.VSYNC_RESOLVE_TIMEOUT_S = 20  # type: ignore[attr-defined]
    settings.MEDIA_ROOT = tmp_path / "media"  # type: ignore[attr-defined]
    settings.MEDIA_ROOT.mkdir()  # type: ignore[attr-defined]
    resolution_cache.clear()
    yield settings
    resolution_cache.clear()


@pytest.fixture
def media_site() -> Iterator[MediaSite]:
    site = MediaSite().start()
    yield site
    site.stop()


def create_page_room(site: MediaSite, *, playing_from: float):
    """A room playing the stream of the test site's page (resolved by yt-dlp), playing from ``playing_from`` s."""
    from rooms.media.sources import resolve_media
    from rooms.models import Room
    from rooms.services import room_create, room_server_command

    resolved = resolve_media(f"{site.url}/page.html")
    room = room_create(name="Page", media=resolved.media, media_page_url=resolved.page_url,
                       media_expires_ms=resolved.expires_ms)
    room_server_command(slug=room.slug, type="play", position=playing_from)
    return Room.objects.get(pk=room.pk)
