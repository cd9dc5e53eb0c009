"""Django middleware: JSON errors on every /api/ path, 503 on a full disk, CSP and nosniff on every response.

Django answers 404, 405 and unhandled exceptions with HTML pages (or, with DEBUG on, a
traceback). An API client should get ``{"error": ...}`` whatever DEBUG says, and an
operator a request id in the log line that matches the answer.
"""

from __future__ import annotations

import errno
import json
import logging
import uuid
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from rooms.media.ytdlp import ResolverBusy

logger = logging.getLogger("vsync.errors")

# No inline scripts or styles anywhere in templates/ (the client is ES modules under
# static/); media and thumbnails come from wherever a room's media URL points.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; "
    "media-src 'self' https: http: blob:; connect-src 'self' ws: wss:; font-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# Django's admin sets a few style attributes in its markup.
ADMIN_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
API_PREFIX = "/api/"
_MESSAGES = {400: "bad request", 403: "forbidden", 404: "no such endpoint", 405: "method not allowed",
             413: "request body too large", 500: "internal server error"}


# PostgreSQL restarting or unreachable: worth a retry in a moment, and nothing was written
# (each request's writes are one transaction, so a lost connection rolls them back).
DATABASE_RETRY_AFTER_S = 2


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def is_database_down(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (not a bad query: that is a bug, a 500)."""
    return isinstance(exc, (OperationalError, InterfaceError))


class SecurityHeaders:
    """CSP on every page, nosniff on every response (SecurityMiddleware sets it too; this covers error pages)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        policy = ADMIN_CONTENT_SECURITY_POLICY if request.path.startswith("/admin/") else CONTENT_SECURITY_POLICY
        response.headers.setdefault("Content-Security-Policy", policy)
        return response


class ApiJsonErrors:
    """Under /api/: an HTML error answer becomes ``{"error", "request_id"}``; exceptions are logged with that id.

    A full disk (ENOSPC while writing) or a database that is down (a PostgreSQL restart) is 503
    with Retry-After on any path, so a client knows to retry later.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith(API_PREFIX) and response.status_code >= 400 and not _is_json(response):
            error = _MESSAGES.get(response.status_code, response.reason_phrase)
            return self._json(request, response.status_code, error, response)
        return response

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        request_id = _request_id(request)
        if is_disk_full(exc):
            logger.error("disk full answering %s %s (request %s): %s", request.method, request.path, request_id, exc)
            return self._json(request, 503, "the server's disk is full; nothing was changed, try again later",
                              retry_after="60")
        if is_database_down(exc):
            logger.error("database unavailable answering %s %s (request %s): %s", request.method, request.path,
                         request_id, exc)
            return self._json(request, 503, "the database is unavailable; nothing was changed, try again shortly",
                              retry_after=str(DATABASE_RETRY_AFTER_S))
        if isinstance(exc, ResolverBusy):
            return self._json(request, 503, str(exc), retry_after=str(exc.retry_after_s))
        if not request.path.startswith(API_PREFIX):
            return None  # pages keep Django's handling (the debug page with DEBUG on)
        logger.exception("unhandled error answering %s %s (request %s)", request.method, request.path, request_id)
        return self._json(request, 500, "internal server error")

    def _json(self, request: HttpRequest, status: int, error: str, original: HttpResponse | None = None,
              retry_after: str | None = None) -> HttpResponse:
        request_id = _request_id(request)
        response = HttpResponse(json.dumps({"error": error, "request_id": request_id}), status=status,
                                content_type="application/json")
        response["X-Request-ID"] = request_id
        if original is not None and original.has_header("Allow"):
            response["Allow"] = original["Allow"]
        if retry_after:
            response["Retry-After"] = retry_after
        if status >= 500:
            logger.error("%s answered %s %s (request %s)", status, request.method, request.path, request_id)
        return response


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").startswith("application/json")


def _request_id(request: HttpRequest) -> str:
    current = getattr(request, "vsync_request_id", None)
    if current is None:
        supplied = request.headers.get("X-Request-ID", "")
        current = supplied if supplied.isalnum() and len(supplied) <= 64 else uuid.uuid4().hex
        request.vsync_request_id = current  # type: ignore[attr-defined]
    return current
