"""Presence over HTTP: report and read the member list, and edit the buffering policy (v1)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET, require_POST

from rooms.access import Access
from rooms.api.http import answer_json_body, json_error, json_response, room_endpoint
from rooms.intake import members_body, policy_submit, presence_submit
from rooms.models import Room


@require_POST
@room_endpoint()
def room_presence(request: HttpRequest, slug: str, access: Access) -> HttpResponse:
    return answer_json_body(request, slug, access, presence_submit)


@require_GET
@room_endpoint()
def room_members_list(request: HttpRequest, slug: str, access: Access) -> HttpResponse:
    room = Room.objects.filter(slug=slug).first()
    if room is None:
        return json_error(404, f"no room {slug!r}")
    return json_response(members_body(room), Cache_Control="no-store")


@require_POST
@room_endpoint()
def room_policy(request: HttpRequest, slug: str, access: Access) -> HttpResponse:
    """v1: anybody may change a room's buffering policy, unless it is locked; in a room with an owner, the owner."""
    return answer_json_body(request, slug, access, policy_submit)
