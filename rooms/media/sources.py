"""Where media comes from: turn a URL someone brings into the Media a room plays.

``/media/...`` is ours (the demo or an upload). Anything else must be http(s) on a
host that passes the address check, and is resolved with yt-dlp: a media file
itself becomes source ``direct`` (the browser fetches it; it does not expire), a
page becomes source ``youtube`` with a stream URL that expires and is re-resolved
from the page URL.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.http import Http404

from rooms.conf import conf
from rooms.media import ytdlp
from rooms.media.netguard import ForbiddenAddress, UnknownHost, check_url
from rooms.media.serve import find_media_file
from rooms.state import InvalidCommand, Media

DEMO_MEDIA = Media(url=f"{settings.MEDIA_URL}demo.webm", title="Demo: test pattern with burned-in time",
                   duration=60.0, source="demo")

# Many viewers report the same expired URL at once; a resolution this recent is
# reused instead of asking the site again for each of them.
RECENT_RESOLUTION_S = 10.0
_CACHE_SIZE = 256


@dataclass(frozen=True)
class ResolvedMedia:
    """Media to play, the URL it was resolved from, and when its stream URL expires (None: never)."""

    media: Media
    page_url: str = ""
    expires_ms: float | None = None
    resolved_ms: float = 0.0

    @property
    def refreshable(self) -> bool:
        return bool(self.page_url) and self.media.source == "youtube"


class _Cache:
    """Resolutions by the URL brought, each trusted until shortly before its stream URL expires."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, ResolvedMedia] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str, now_ms: float, *, replacing: str | None) -> ResolvedMedia | None:
        with self._lock:
            entry = self._entries.get(url)
        if entry is None:
            return None
        age_s = (now_ms - entry.resolved_ms) / 1000.0
        if replacing is not None:
            return entry if age_s < RECENT_RESOLUTION_S and entry.media.url != replacing else None
        if age_s >= conf.RESOLVE_MAX_AGE_S or refresh_due(entry.expires_ms, now_ms):
            return None
        return entry

    def put(self, url: str, resolved: ResolvedMedia) -> None:
        with self._lock:
            self._entries[url] = resolved
            self._entries.move_to_end(url)
            while len(self._entries) > _CACHE_SIZE:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


resolution_cache = _Cache()


def refresh_due(expires_ms: float | None, now_ms: float) -> bool:
    """True once ``now_ms`` is within VSYNC_RESOLVE_REFRESH_MARGIN_S of the expiry."""
    return expires_ms is not None and now_ms >= expires_ms - conf.RESOLVE_REFRESH_MARGIN_S * 1000.0


def is_local_media(url: str) -> bool:
    """A URL of this server's own media (uploads, the demo): resolved without the network."""
    return url.strip().startswith(settings.MEDIA_URL)


def resolve_media(url: str, *, replacing: str | None = None) -> ResolvedMedia:
    """Resolve ``url`` to playable media, or raise InvalidCommand (field ``url``) with a short reason.

    ``replacing`` is a stream URL that failed or expires: a cached resolution is then
    used only if it is seconds old and gives another URL. Blocking; never call it on
    the event loop.
    """
    url = url.strip()
    if is_local_media(url):
        return ResolvedMedia(media=_local_media(url))
    now_ms = time.time() * 1000.0
    cached = resolution_cache.get(url, now_ms, replacing=replacing)
    if cached is not None:
        return cached
    try:
        check_url(url)
        extracted = ytdlp.extract(url)
    except ForbiddenAddress as exc:
        raise InvalidCommand(str(exc), "url") from None
    except UnknownHost:
        raise InvalidCommand("not found: the host name does not exist", "url") from None
    except OSError:
        raise InvalidCommand("network unreachable: could not connect to the site", "url") from None
    except ytdlp.ResolveError as exc:
        raise InvalidCommand(str(exc), "url") from None
    resolved = _from_extracted(url, extracted, now_ms)
    resolution_cache.put(url, resolved)
    return resolved


def _from_extracted(url: str, extracted: ytdlp.Extracted, now_ms: float) -> ResolvedMedia:
    title = extracted.title or urlsplit(url).path.rsplit("/", 1)[-1] or (urlsplit(url).hostname or "")
    if extracted.direct:
        media = Media(url=extracted.url, title=title, duration=extracted.duration, source="direct",
                      thumbnail=extracted.thumbnail)
        return ResolvedMedia(media=media, page_url=url, resolved_ms=now_ms)
    media = Media(url=extracted.url, title=title, duration=extracted.duration, source="youtube",
                  thumbnail=extracted.thumbnail)
    return ResolvedMedia(media=media, page_url=url, expires_ms=stream_expiry_ms(extracted.url, now_ms),
                         resolved_ms=now_ms)


def stream_expiry_ms(stream_url: str, now_ms: float) -> float:
    """When a resolved stream URL stops working: its ``expire`` parameter (YouTube's, epoch
    seconds) if it has one, and never later than VSYNC_RESOLVE_MAX_AGE_S from now."""
    latest = now_ms + conf.RESOLVE_MAX_AGE_S * 1000.0
    values = parse_qs(urlsplit(stream_url).query).get("expire", [])
    try:
        stated = float(values[0]) * 1000.0 if values else latest
    except ValueError:
        stated = latest
    return min(stated, latest)


def _local_media(url: str) -> Media:
    name = urlsplit(url).path.removeprefix(settings.MEDIA_URL)
    try:
        find_media_file(name)
    except Http404:
        raise InvalidCommand("no such media on this server", "url") from None
    if url == DEMO_MEDIA.url:
        return DEMO_MEDIA
    return Media(url=url, title=name.rsplit("/", 1)[-1], source="upload")
