"""Presence over HTTP: report and read the member list, and edit the buffering policy."""

from __future__ import annotations

from typing import Annotated, Literal

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET, require_POST
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rooms.api.http import answer_json_body, api_write, json_error, json_response
from rooms.commands import parse_json
from rooms.intake import members_body, submit_presence
from rooms.models import Room
from rooms.state import InvalidCommand


class PolicyChange(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    buffering_policy: Literal["wait", "ignore"] | None = None
    buffering_timeout_s: Annotated[int, Field(ge=1, le=120)] | None = None


@require_POST
@api_write()
def room_presence(request: HttpRequest, slug: str) -> HttpResponse:
    return answer_json_body(request, slug, submit_presence)


@require_GET
def room_members_list(request: HttpRequest, slug: str) -> HttpResponse:
    room = Room.objects.filter(slug=slug).first()
    if room is None:
        return json_error(404, f"no room {slug!r}")
    return json_response(members_body(room), Cache_Control="no-store")


@require_POST
@api_write()
def room_policy(request: HttpRequest, slug: str) -> HttpResponse:
    room = Room.objects.filter(slug=slug).first()
    if room is None:
        return json_error(404, f"no room {slug!r}")
    if room.control == Room.Control.LOCKED:
        return json_error(403, "this room is locked: only admins change its policy")
    try:
        data = parse_json(request.body)
        if not isinstance(data, dict):
            raise InvalidCommand("the body must be a JSON object", "body")
        change = PolicyChange.model_validate(data)
    except InvalidCommand as exc:
        return json_error(400, exc.error, exc.field)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        return json_error(400, f"{field}: {str(first['msg']).lower()}", field)
    fields = {name: value for name, value in change.model_dump().items() if value is not None}
    Room.objects.filter(pk=room.pk).update(**fields)
    room.refresh_from_db()
    return json_response({"buffering_policy": room.buffering_policy,
                          "buffering_timeout_s": room.buffering_timeout_s})
