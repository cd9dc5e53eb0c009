"""The pages: the lobby, a room on one transport, and the four-transport lab."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from rooms.api.collection import lobby_rooms
from rooms.models import Room

TRANSPORTS = {"poll": "Short polling", "longpoll": "Long polling", "sse": "Server-sent events", "ws": "WebSocket"}
DEFAULT_TRANSPORT = "ws"


def lobby(request: HttpRequest) -> HttpResponse:
    # The same list as GET /api/rooms: unlisted rooms and rooms with a password are not shown.
    return render(request, "lobby.html", {"rooms": lobby_rooms()})


def room(request: HttpRequest, slug: str) -> HttpResponse:
    found = get_object_or_404(Room, slug=slug)
    transport = request.GET.get("transport", DEFAULT_TRANSPORT)
    if transport not in TRANSPORTS:
        transport = DEFAULT_TRANSPORT
    return render(request, "room.html", {"room": found, "transports": TRANSPORTS,
                                         "config": _config(found, transport)})


def lab(request: HttpRequest, slug: str) -> HttpResponse:
    found = get_object_or_404(Room, slug=slug)
    return render(request, "lab.html", {"room": found, "transports": TRANSPORTS,
                                        "config": _config(found, None)})


def _config(room: Room, transport: str | None) -> dict[str, object]:
    # A password room's page asks for the password first: its state (the media URL) is for members only.
    has_password = bool(room.password_hash)
    return {"slug": room.slug, "name": room.name, "transport": transport,
            "state": None if has_password else room.state,
            "buffering_policy": room.buffering_policy, "buffering_timeout_s": room.buffering_timeout_s,
            "control": room.control, "listed": room.listed, "has_password": has_password,
            "owned": bool(room.owner_token_hash)}
