"""Resolve a page URL with yt-dlp's Python API, fetching only through the address guard.

yt-dlp is given exactly one request handler, a urllib handler that speaks http and
https only (no file:, data:, ftp:), ignores proxies, and opens every connection,
redirects included, through ``netguard.guarded_connection``.
"""

from __future__ import annotations

import functools
import http.client
import logging
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from yt_dlp import YoutubeDL
from yt_dlp.networking._urllib import (
    HTTPCookieProcessor,
    HTTPDefaultErrorHandler,
    HTTPErrorProcessor,
    HTTPHandler,
    ProxyHandler,
    RedirectHandler,
    UnknownHandler,
    UrllibRH,
)
from yt_dlp.networking.exceptions import HTTPError, RequestError, TransportError
from yt_dlp.utils import UnsupportedError, YoutubeDLError

from rooms.conf import conf
from rooms.media.netguard import ForbiddenAddress, UnknownHost, guarded_connection

logger = logging.getLogger(__name__)

# Resolutions run on their own small pool: never on the event loop, and a hung site
# occupies at most these threads (each request is also bounded by socket_timeout).
POOL_WORKERS = 4
_POOL = ThreadPoolExecutor(max_workers=POOL_WORKERS, thread_name_prefix="ytdlp")
# A resolution waits for a free worker only if one is free now: queueing behind four hung
# sites would hold the caller's thread (and its request) for minutes. Busy: 503 at once.
_SLOTS = threading.BoundedSemaphore(POOL_WORKERS)
BUSY_RETRY_AFTER_S = 5


class ResolverBusy(Exception):
    """Every yt-dlp worker is busy; the caller answers 503 with Retry-After."""

    retry_after_s = BUSY_RETRY_AFTER_S


# What a direct link may be: formats browsers play (the type yt-dlp derives from the
# URL or the Content-Type).
MEDIA_EXTENSIONS = frozenset({"webm", "mp4", "m4v", "m4a", "mov", "mkv", "ogv", "ogg", "oga", "opus", "mp3",
                              "flac", "wav", "aac"})


class _QuietLog:
    """yt-dlp reports every failure as an ERROR line; the caller turns it into a 400 instead."""

    def debug(self, message: str) -> None:
        logger.debug("%s", message)

    info = warning = error = debug


class ResolveError(Exception):
    """Resolution failed; ``str()`` is a short message a person can act on."""


@dataclass(frozen=True)
class Extracted:
    url: str
    title: str
    duration: float | None
    thumbnail: str
    direct: bool  # the URL itself is a media file (yt-dlp's generic extractor said so)


def _guarded_http_connection(http_class: type[http.client.HTTPConnection], *args: Any,
                             **kwargs: Any) -> http.client.HTTPConnection:
    connection = http_class(*args, **kwargs)
    connection._create_connection = guarded_connection  # type: ignore[attr-defined]
    return connection


class _GuardedHTTPHandler(HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(_guarded_http_connection, http.client.HTTPConnection), req)

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(_guarded_http_connection, http.client.HTTPSConnection), req,
                            context=self._context)


class GuardedRH(UrllibRH):
    """yt-dlp's urllib handler, limited to http(s), direct connections, checked addresses."""

    _SUPPORTED_URL_SCHEMES = ("http", "https")
    _SUPPORTED_PROXY_SCHEMES = ()
    RH_NAME = "vsync-guarded"

    def __init__(self, **kwargs: Any) -> None:
        kwargs["enable_file_urls"] = False
        super().__init__(**kwargs)

    def _get_proxies(self, request: Any) -> dict[str, str]:
        return {}  # a proxy would resolve the host itself, out of reach of the address check

    def _create_instance(self, proxies: Any, cookiejar: Any, legacy_ssl_support: Any = None) -> Any:
        opener = urllib.request.OpenerDirector()
        for handler in (ProxyHandler({}),
                        _GuardedHTTPHandler(context=self._make_sslcontext(legacy_ssl_support=legacy_ssl_support)),
                        HTTPCookieProcessor(cookiejar), UnknownHandler(), HTTPDefaultErrorHandler(),
                        HTTPErrorProcessor(), RedirectHandler()):
            opener.add_handler(handler)
        opener.addheaders = []
        return opener


class GuardedYoutubeDL(YoutubeDL):
    @functools.cached_property
    def _request_director(self) -> Any:
        return self.build_request_director([GuardedRH])


def format_selector(max_height: int) -> str:
    """A progressive format (audio and video in one file) over plain http(s), at most ``max_height``.

    ``?`` admits unknown values: a direct file or an HTML5 <video> has no codec
    information. If nothing fits under the cap, the smallest progressive one above it.
    """
    progressive = "[vcodec!=?none][acodec!=?none][protocol^=http][protocol!*=dash]"
    return f"b[height<=?{max_height}]{progressive}/w{progressive}"


def extract(url: str) -> Extracted:
    """Resolve ``url`` with yt-dlp in a worker thread, within VSYNC_RESOLVE_TIMEOUT_S."""
    timeout = conf.RESOLVE_TIMEOUT_S
    if not _SLOTS.acquire(blocking=False):
        raise ResolverBusy("every media resolver is busy; try again in a few seconds")
    try:
        future = _POOL.submit(_extract, url, timeout, conf.MEDIA_MAX_HEIGHT)
    except BaseException:
        _SLOTS.release()
        raise
    # The slot is held until the worker is really free, even after the caller gave up waiting.
    future.add_done_callback(lambda _: _SLOTS.release())
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        raise ResolveError(f"resolving the URL took longer than {timeout:g} s") from None


def _extract(url: str, timeout: float, max_height: int) -> Extracted:
    options = {
        "quiet": True, "no_warnings": True, "noprogress": True, "skip_download": True,
        "noplaylist": True, "playlist_items": "1", "format": format_selector(max_height),
        "socket_timeout": timeout, "proxy": "", "enable_file_urls": False, "cachedir": False,
        "logger": _QuietLog(),
    }
    try:
        with GuardedYoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=False)
    except (YoutubeDLError, OSError) as exc:  # DownloadError, RequestError and what they wrap
        raise ResolveError(explain(exc)) from exc
    if info is None:
        raise ResolveError("no playable media found at this URL")
    if info.get("_type") == "playlist":
        entries = [entry for entry in info.get("entries") or [] if entry]
        if not entries:
            raise ResolveError("no playable media found at this URL")
        info = entries[0]
    stream_url = info.get("url")
    if not stream_url:
        raise ResolveError("no format that a browser can play in one file (audio and video together)")
    if info.get("direct") and str(info.get("ext") or "").lower() not in MEDIA_EXTENSIONS:
        # yt-dlp's generic extractor calls anything that is not HTML a "direct" link.
        raise ResolveError("not a media file, and not a page with a video")
    duration = info.get("duration")
    thumbnail = str(info.get("thumbnail") or "")
    if thumbnail:
        thumbnail = urljoin(str(info.get("webpage_url") or url), thumbnail)
        if urlsplit(thumbnail).scheme not in ("http", "https"):
            thumbnail = ""
    return Extracted(url=stream_url, title=str(info.get("title") or "")[:200],
                     duration=float(duration) if isinstance(duration, int | float) and duration > 0 else None,
                     thumbnail=thumbnail, direct=bool(info.get("direct")))


def explain(exc: BaseException) -> str:
    """A short human message for whatever yt-dlp raised, found by walking the chain of causes."""
    causes = _causes(exc)

    def first(kind: type[BaseException]) -> Any:
        return next((cause for cause in causes if isinstance(cause, kind)), None)

    if forbidden := first(ForbiddenAddress):
        return str(forbidden)
    if first(UnknownHost):
        return "not found: the host name does not exist"
    if first(UnsupportedError):
        return "this site is not supported"
    if any("unknown url type" in str(cause).lower() for cause in causes):
        return "only http and https URLs are supported (the site redirected elsewhere)"
    if http_error := first(HTTPError):
        if 300 <= http_error.status < 400:
            return "only http and https URLs are supported (the site redirected elsewhere)"
        if http_error.status in (404, 410):
            return "not found: the page does not exist"
        if http_error.status in (401, 403):
            return f"the site refused access (HTTP {http_error.status})"
        return f"the site answered HTTP {http_error.status}"
    if first(TransportError) or first(OSError):
        return "network unreachable: could not connect to the site"
    if (request_error := first(RequestError)) and "scheme" in str(request_error).lower():
        return "only http and https URLs are supported"
    text = str(exc)
    if "Requested format is not available" in text:
        return "no format that a browser can play in one file (audio and video together)"
    if "Unsupported URL" in text:
        return "this site is not supported"
    return "could not resolve this URL: " + text.removeprefix("ERROR: ")[:200]


def _causes(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc_info = getattr(exc, "exc_info", None)
        nxt = (exc_info[1] if exc_info and exc_info[1] is not exc else None) or getattr(exc, "cause", None)
        if not isinstance(nxt, BaseException):
            nxt = getattr(exc, "reason", None)  # urllib.error.URLError
        if not isinstance(nxt, BaseException):
            nxt = exc.__cause__ or exc.__context__
        exc = nxt
    return seen
