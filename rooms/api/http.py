"""What every JSON endpoint shares: error bodies, the body limit, the CSRF rule, who is asking
(``client_address``, ``member_token``, ``room_endpoint``) and how a Result is answered.

CSRF: the API is exempt from Django's cookie-token check, so curl, locust and
other non-browser clients need no token. Browsers are protected by the Origin
header instead: every browser sends it on a cross-site POST, and a POST whose
Origin names a host outside ALLOWED_HOSTS (or CSRF_TRUSTED_ORIGINS) is refused
with 403 before anything runs. Requests without Origin are not from a browser
page on another site, so they cannot ride a viewer's cookies.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from rooms.access import Access, AccessDenied, member_cookie_name, room_access
from rooms.api import origins
from rooms.commands import MAX_BODY_BYTES, parse_json
from rooms.conf import conf
from rooms.limits import retry_after_header
from rooms.results import Result
from rooms.state import InvalidCommand

RoomView = Callable[..., HttpResponse]
# A Result's kind as an HTTP status: the contract's table, written once.
RESULT_STATUS = {"accepted": 200, "stale": 409, "invalid": 400, "denied": 403, "unauthorized": 401,
                 "not_found": 404, "limited": 429, "too_large": 413, "failed": 502}


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


def origin_allowed(request: HttpRequest) -> bool:
    """No Origin (not a browser), the request's own full origin, or a trusted one (rooms.api.origins)."""
    host = request.META.get("HTTP_HOST") or f"{request.META.get('SERVER_NAME', '')}:{request.get_port()}"
    return origins.origin_allowed(request.headers.get("Origin"), scheme=request.scheme or "http", host=host)


def api_write(max_body: int = MAX_BODY_BYTES) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Guard a state-changing JSON endpoint: Origin check and body size limit (413)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if (refusal := _write_refusal(request, max_body)) is not None:
                return refusal
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def result_response(result: Result, *, status: int | None = None) -> HttpResponse:
    """The HTTP answer to a Result, as the contract's tables say (``status`` overrides 200, e.g. 201)."""
    if result.kind == "accepted":
        body = result.payload if result.payload is not None else {"accepted": True, "state": _state(result)}
        return json_response(body, status=status or 200, Cache_Control="no-store")
    if result.kind == "stale":
        return json_response({"accepted": False, "reason": "stale", "state": _state(result)}, status=409,
                             Cache_Control="no-store")
    response = json_error(RESULT_STATUS[result.kind], result.error, result.field)
    if result.retry_after_s is not None:
        response["Retry-After"] = retry_after_header(result.retry_after_s)
    return response


def _state(result: Result) -> dict[str, Any] | None:
    return result.state.to_dict() if result.state is not None else None


def json_body(request: HttpRequest) -> Any:
    """The request's decoded JSON body; raises InvalidCommand (400) when it is not JSON."""
    return parse_json(request.body)


def client_address(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or X-Forwarded-For's last hop when REMOTE_ADDR is a trusted proxy.

    Only the last hop: it is the one our proxy appended; any earlier ones came from the client.
    """
    remote: str | None = request.META.get("REMOTE_ADDR") or None
    forwarded: str = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if remote and forwarded and _in(remote, conf.TRUSTED_PROXIES):
        last = forwarded.rsplit(",", 1)[-1].strip()
        if _is_ip(last):
            return last
    return remote if remote and _is_ip(remote) else None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _in(address: str, networks: Iterable[str]) -> bool:
    ip = ipaddress.ip_address(address)
    for network in networks:
        try:
            if ip in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False


def member_token(request: HttpRequest, slug: str) -> str | None:
    """The member (or owner) token a request carries: ``Authorization: Bearer``, ``?token=``, or the room's cookie."""
    authorization = request.headers.get("Authorization", "")
    if authorization[:7].lower() == "bearer " and authorization[7:].strip():
        return authorization[7:].strip()
    return request.GET.get("token") or request.COOKIES.get(member_cookie_name(slug)) or None


def room_endpoint(*, max_body: int | None = MAX_BODY_BYTES) -> Callable[[RoomView], RoomView]:
    """An endpoint of one room: the POST guards of ``api_write`` (``max_body=None``: the view limits its own
    body, as the upload does), then ``room_access``; the view gets ``(request, slug, access)``."""

    def decorate(view: RoomView) -> RoomView:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method == "POST":
                if (refusal := _write_refusal(request, max_body)) is not None:
                    return refusal
            try:
                access = room_access(slug=slug, token=member_token(request, slug), address=client_address(request))
            except AccessDenied as exc:
                return json_error(exc.status, exc.error)
            return view(request, slug, access, *args, **kwargs)

        return wrapper

    return decorate


def _write_refusal(request: HttpRequest, max_body: int | None) -> HttpResponse | None:
    if not origin_allowed(request):
        return json_error(403, "cross-origin request refused")
    if max_body is None:
        return None
    length = request.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > max_body:
        return json_error(413, f"body is larger than {max_body} bytes")
    if len(request.body) > max_body:
        return json_error(413, f"body is larger than {max_body} bytes")
    return None


def answer_json_body(request: HttpRequest, slug: str, access: Access,
                     submit: Callable[..., Result]) -> HttpResponse:
    """Decode the request's JSON body and hand it to an intake function; its Result is the answer."""
    try:
        data = json_body(request)
    except InvalidCommand as exc:
        return json_error(400, exc.error, exc.field)
    return result_response(submit(slug=slug, access=access, data=data))
