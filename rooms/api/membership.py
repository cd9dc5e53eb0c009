"""Membership over HTTP: join (a member token and its cookie), the owner's settings and roles, kicks."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from rooms.access import Access, member_cookie_name
from rooms.api.http import (
    answer_json_body,
    api_write,
    client_address,
    json_body,
    json_error,
    member_token,
    result_response,
    room_endpoint,
)
from rooms.intake import settings_submit
from rooms.membership import join_submit, kick_submit, roles_submit
from rooms.state import InvalidCommand

# The cookie outlives a browser restart, not a season: a member who left comes back as itself
# for a while. The token is revoked at once by a kick whatever the cookie says.
MEMBER_COOKIE_MAX_AGE_S = 7 * 24 * 3600


@csrf_exempt
@require_POST
@api_write()
def room_join(request: HttpRequest, slug: str) -> HttpResponse:
    """``/join``: no access check first: joining is how a client gets access."""
    try:
        data = json_body(request)
    except InvalidCommand as exc:
        return json_error(400, exc.error, exc.field)
    result = join_submit(slug=slug, data=data, token=member_token(request, slug), address=client_address(request))
    response = result_response(result)
    if result.accepted and result.payload is not None:
        response.set_cookie(member_cookie_name(slug), result.payload["member_token"], max_age=MEMBER_COOKIE_MAX_AGE_S,
                            path="/", httponly=True, samesite="Lax", secure=request.is_secure())
    return response


@require_POST
@room_endpoint()
def room_settings(request: HttpRequest, slug: str, access: Access) -> HttpResponse:
    return answer_json_body(request, slug, access, settings_submit)


@require_POST
@room_endpoint()
def room_roles(request: HttpRequest, slug: str, access: Access) -> HttpResponse:
    return answer_json_body(request, slug, access, roles_submit)


@require_POST
@room_endpoint()
def room_kick(request: HttpRequest, slug: str, access: Access) -> HttpResponse:
    return answer_json_body(request, slug, access, kick_submit)
