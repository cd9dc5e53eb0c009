"""The rooms collection: list rooms with their members, create a room."""

from __future__ import annotations

from typing import Annotated

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rooms.api.http import api_write, json_error, json_response
from rooms.commands import MAX_URL_LENGTH, parse_json
from rooms.media.sources import DEMO_MEDIA, ResolvedMedia, resolve_media
from rooms.models import Room
from rooms.presence import room_member_counts
from rooms.services import room_create
from rooms.state import InvalidCommand


class RoomCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    name: Annotated[str, Field(min_length=1, max_length=100)]
    media_url: Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH)] | None = None


@csrf_exempt
def rooms_collection(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return rooms_list(request)
    if request.method == "POST":
        return rooms_create(request)
    return json_error(405, "use GET or POST")


def rooms_list(request: HttpRequest) -> HttpResponse:
    rows = list(Room.objects.values_list("slug", "name", "state"))
    members = room_member_counts([slug for slug, _, _ in rows])
    rooms = [{"slug": slug, "name": name, "members": members.get(slug, 0), "state": state}
             for slug, name, state in rows]
    return json_response({"rooms": rooms}, Cache_Control="no-cache")


@api_write()
def rooms_create(request: HttpRequest) -> HttpResponse:
    try:
        data = parse_json(request.body)
        if not isinstance(data, dict):
            raise InvalidCommand("the body must be a JSON object", "body")
        try:
            valid = RoomCreate.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(part) for part in first["loc"]) or "body"
            raise InvalidCommand(f"{field}: {first['msg'].lower()}", field) from None
        if not valid.name.strip():
            raise InvalidCommand("name must not be blank", "name")
        resolved = ResolvedMedia(media=DEMO_MEDIA)
        if valid.media_url:
            try:
                resolved = resolve_media(valid.media_url)
            except InvalidCommand as exc:
                raise InvalidCommand(exc.error, "media_url") from None
    except InvalidCommand as exc:
        return json_error(400, exc.error, exc.field)
    room = room_create(name=valid.name.strip(), media=resolved.media, media_page_url=resolved.page_url,
                       media_expires_ms=resolved.expires_ms)
    return json_response(room.state, status=201, Location=f"/api/rooms/{room.slug}/state")
