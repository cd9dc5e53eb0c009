"""HTTP routes of the wire contract."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from transports import clock, media_api, presence_api, rooms_api, short_poll
from transports.http import json_error


def _served_by_asgi(request: HttpRequest, slug: str) -> HttpResponse:
    return json_error(404, "this endpoint is served by the ASGI application (vsync.asgi), not by Django alone")


urlpatterns = [
    path("api/time", clock.server_time, name="api-time"),
    path("api/rooms", rooms_api.rooms_collection, name="api-rooms"),
    path("api/rooms/<str:slug>/commands", short_poll.room_commands, name="api-room-commands"),
    path("api/rooms/<str:slug>/media", media_api.room_media_upload, name="api-room-media"),
    path("api/rooms/<str:slug>/media/error", media_api.room_media_error, name="api-room-media-error"),
    # Served in front of Django by transports.routing.PushRouter (raw ASGI); named here for reverse().
    path("api/rooms/<str:slug>/state", _served_by_asgi, name="api-room-state"),
    path("api/rooms/<str:slug>/poll", _served_by_asgi, name="api-room-poll"),
    path("api/rooms/<str:slug>/events", _served_by_asgi, name="api-room-events"),
    path("api/rooms/<str:slug>/presence", presence_api.room_presence, name="api-room-presence"),
    path("api/rooms/<str:slug>/members", presence_api.room_members_list, name="api-room-members"),
    path("api/rooms/<str:slug>/policy", presence_api.room_policy, name="api-room-policy"),
]

