"""Where media comes from: turn a URL someone brings into the Media a room plays."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

from rooms.state import InvalidCommand, Media

DEMO_MEDIA = Media(url=f"{settings.MEDIA_URL}demo.webm", title="Demo: test pattern with burned-in time",
                   duration=60.0, source="demo")


def resolve_media(url: str) -> tuple[Media, float | None]:
    """Resolve ``url`` to playable media and when its stream URL expires (None: never)."""
    url = url.strip()
    if url.startswith(settings.MEDIA_URL):
        source = "demo" if url == DEMO_MEDIA.url else "upload"
        return Media(url=url, title=url.rsplit("/", 1)[-1], source=source), None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidCommand("only http and https URLs are supported", "url")
    return Media(url=url, title=parts.path.rsplit("/", 1)[-1] or parts.hostname, source="direct"), None
