"""The rooms collection: list rooms with their members, create a room."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import BaseModel, ConfigDict, Field

from rooms.access import new_secret
from rooms.api.http import api_write, client_address, json_body, json_error, json_response, result_response
from rooms.commands import MAX_URL_LENGTH, validated
from rooms.limits import ADDRESS_ROOM_CREATION, address_limit
from rooms.media.sources import DEMO_MEDIA, ResolvedMedia, resolve_media
from rooms.models import Room
from rooms.names import clean_name
from rooms.presence import room_member_counts
from rooms.results import limited
from rooms.services import room_create
from rooms.state import InvalidCommand


class RoomCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    name: Annotated[str, Field(min_length=1, max_length=100)]
    media_url: Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH)] | None = None
    password: Annotated[str, Field(max_length=256)] | None = None
    listed: bool = True
    control: Literal["open", "hosts"] = "open"


@csrf_exempt
def rooms_collection(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return rooms_list(request)
    if request.method == "POST":
        return rooms_create(request)
    return json_error(405, "use GET or POST")


def lobby_rooms() -> list[dict[str, Any]]:
    """The rooms anyone may see: listed, and without a password (GET /api/rooms and the lobby page)."""
    rows = list(Room.objects.filter(listed=True, password_hash="").values_list("slug", "name", "state"))
    members = room_member_counts([slug for slug, _, _ in rows])
    return [{"slug": slug, "name": name, "members": members.get(slug, 0), "state": state}
            for slug, name, state in rows]


def rooms_list(request: HttpRequest) -> HttpResponse:
    return json_response({"rooms": lobby_rooms()}, Cache_Control="no-cache")


@api_write()
def rooms_create(request: HttpRequest) -> HttpResponse:
    """201: the new room's state plus ``owner_token``, shown this once (only its hash is kept)."""
    if (wait := address_limit(ADDRESS_ROOM_CREATION, client_address(request))) is not None:
        return result_response(limited("too many rooms created from this address; wait a minute", wait))
    try:
        valid = validated(RoomCreate, json_body(request))
        name = clean_name(valid.name, 100)
        if not name:
            raise InvalidCommand("name must not be blank (control characters are removed)", "name")
        resolved = ResolvedMedia(media=DEMO_MEDIA)
        if valid.media_url:
            try:
                resolved = resolve_media(valid.media_url)
            except InvalidCommand as exc:
                raise InvalidCommand(exc.error, "media_url") from None
    except InvalidCommand as exc:
        return json_error(400, exc.error, exc.field)
    owner_token = new_secret()
    room = room_create(name=name, media=resolved.media, media_page_url=resolved.page_url,
                       media_expires_ms=resolved.expires_ms, owner_token=owner_token,
                       password=valid.password or None, listed=valid.listed, control=valid.control)
    return json_response({**room.state, "owner_token": owner_token}, status=201,
                         Location=f"/api/rooms/{room.slug}/state", Cache_Control="no-store")
