"""What every JSON endpoint shares: error bodies, the body limit and the CSRF rule.

CSRF: the API is exempt from Django's cookie-token check, so curl, locust and
other non-browser clients need no token. Browsers are protected by the Origin
header instead: every browser sends it on a cross-site POST, and a POST whose
Origin names a host outside ALLOWED_HOSTS (or CSRF_TRUSTED_ORIGINS) is refused
with 403 before anything runs. Requests without Origin are not from a browser
page on another site, so they cannot ride a viewer's cookies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.request import validate_host
from django.views.decorators.csrf import csrf_exempt

from rooms.commands import MAX_BODY_BYTES, parse_json
from rooms.state import InvalidCommand


def json_response(body: Any, status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(json.dumps(body, allow_nan=False), status=status, content_type="application/json")
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def json_error(status: int, error: str, field: str | None = None) -> HttpResponse:
    body: dict[str, Any] = {"error": error}
    if field is not None or status == 400:
        body["field"] = field
    return json_response(body, status=status)


def origin_allowed(origin: str | None) -> bool:
    """A missing Origin is a non-browser client; a present one must be one of ours."""
    if not origin:
        return True
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    host = urlsplit(origin).netloc.rsplit("@", 1)[-1]
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return validate_host(hostname, settings.ALLOWED_HOSTS)


def api_write(max_body: int = MAX_BODY_BYTES) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Guard a state-changing JSON endpoint: Origin check and body size limit (413)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not origin_allowed(request.headers.get("Origin")):
                return json_error(403, "cross-origin request refused")
            length = request.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_body:
                return json_error(413, f"body is larger than {max_body} bytes")
            if len(request.body) > max_body:
                return json_error(413, f"body is larger than {max_body} bytes")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def answer_json_body(request: HttpRequest, slug: str, submit: Callable[[str, Any], Any]) -> HttpResponse:
    """Decode the request's JSON body and hand it to an intake function; its Outcome is the answer."""
    try:
        data = parse_json(request.body)
    except InvalidCommand as exc:
        return json_error(400, exc.error, exc.field)
    outcome = submit(slug, data)
    return json_response(outcome.body, status=outcome.status, Cache_Control="no-store")
