"""Request-body limits per route, and the read deadlines every server vsync runs under must enforce.

One table for every server: daphne (vsync.daphne_guard refuses in Twisted, before a
byte of an oversize body is stored) and any other ASGI server (``BodyLimit`` below
refuses by Content-Length at once and counts a streamed body as it arrives).
Limits are bytes of body; a route that takes no body gets the JSON API's 16 KiB.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, cast

from rooms.commands import MAX_BODY_BYTES
from rooms.conf import conf

# Multipart boundaries, part headers and the small form fields around an uploaded file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
SUBTITLE_MAX_BYTES = 1024 * 1024
# Django's own cap on a form body it parses in memory (DATA_UPLOAD_MAX_MEMORY_SIZE).
ADMIN_MAX_BYTES = 2_621_440

# A client has this long from its connection (or the end of its previous response) to
# send a request's line and headers: slowloris clients send a header byte every few
# seconds and would otherwise hold a connection for ever (Twisted's idle timeout restarts
# on every byte).
HEADER_TIMEOUT_S = float(os.environ.get("VSYNC_HEADER_TIMEOUT_S", "10"))
# A body must keep arriving at this average rate, judged over every BODY_WINDOW_S: an
# upload over a slow uplink (1 Mbit/s is 122 KiB/s) passes, one byte a second does not.
BODY_MIN_BYTES_PER_S = float(os.environ.get("VSYNC_BODY_MIN_BYTES_PER_S", str(8 * 1024)))
BODY_WINDOW_S = float(os.environ.get("VSYNC_BODY_WINDOW_S", "10"))

_SLUG = r"[a-z0-9-]{1,64}"
_UPLOAD = re.compile(rf"^/api/rooms/{_SLUG}/media/?$")
_SUBTITLES = re.compile(rf"^/api/rooms/{_SLUG}/subtitles/?$")


def body_limit(method: str, path: str) -> int:
    """The most bytes of body a request to ``path`` may carry (the path as sent, still %-encoded)."""
    if method.upper() == "POST":
        if _UPLOAD.match(path):
            return conf.UPLOAD_MAX_BYTES + MULTIPART_OVERHEAD_BYTES
        if _SUBTITLES.match(path):
            return SUBTITLE_MAX_BYTES + MULTIPART_OVERHEAD_BYTES
        if path.startswith("/admin/"):
            return ADMIN_MAX_BYTES
    return MAX_BODY_BYTES


def too_large_body(limit: int) -> bytes:
    return json.dumps({"error": f"the request body is larger than this endpoint's limit of {limit} bytes"}).encode()


class BodyLimit:
    """ASGI middleware with the same limits, for servers that stream the body (uvicorn): 413 at once.

    A request without a body is handed on untouched (no frame stays suspended under
    long polls, SSE and WebSockets); one with a body gets a counting ``receive``.
    """

    _asgi_single_callable = True  # a plain callable that returns a coroutine: tell daphne it is ASGI 3

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, scope: dict[str, Any], receive: Any = None, send: Any = None) -> Any:
        if receive is None or send is None:  # called the ASGI 2 way (uvicorn without --interface)
            return lambda receive, send: self(scope, receive, send)
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length, chunked = headers.get(b"content-length"), b"chunked" in headers.get(b"transfer-encoding", b"")
        if length is None and not chunked:
            return self.app(scope, receive, send)
        raw_path = scope.get("raw_path") or scope["path"].encode()
        limit = body_limit(scope["method"], raw_path.split(b"?", 1)[0].decode("latin-1"))
        if length is not None and (not length.isdigit() or int(length) > limit):
            return _refuse(send, limit)
        return self._counted(scope, receive, send, limit)

    async def _counted(self, scope: dict[str, Any], receive: Any, send: Any, limit: int) -> None:
        received = 0
        refused = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    return {"type": "http.disconnect"}  # the application stops; the 413 is ours
            return cast("dict[str, Any]", message)

        await self.app(scope, counting_receive, send)
        if refused:
            await _refuse(send, limit)


async def _refuse(send: Any, limit: int) -> None:
    body = too_large_body(limit)
    try:
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
    except Exception:  # the application already answered; nothing more to say
        pass
