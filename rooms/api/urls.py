"""The HTTP API and the pages: every route Django serves (the push transports are in front, transports.routing)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from rooms.api import chat, clock, collection, commands, media, membership, pages, presence, subtitles
from rooms.api.http import json_error
from rooms.media.serve import serve_media
from vsync import health


def _served_by_asgi(request: HttpRequest, slug: str) -> HttpResponse:
    return json_error(404, "this endpoint is served by the ASGI application (vsync.asgi), not by Django alone")


urlpatterns = [
    path("api/time", clock.server_time, name="api-time"),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", health.metrics, name="metrics"),
    path("api/rooms", collection.rooms_collection, name="api-rooms"),
    path("api/rooms/<str:slug>/commands", commands.room_commands, name="api-room-commands"),
    path("api/rooms/<str:slug>/media", media.room_media_upload, name="api-room-media"),
    path("api/rooms/<str:slug>/media/error", media.room_media_error, name="api-room-media-error"),
    # Served in front of Django by transports.routing.PushRouter (raw ASGI); named here for reverse().
    path("api/rooms/<str:slug>/state", _served_by_asgi, name="api-room-state"),
    path("api/rooms/<str:slug>/poll", _served_by_asgi, name="api-room-poll"),
    path("api/rooms/<str:slug>/events", _served_by_asgi, name="api-room-events"),
    path("api/rooms/<str:slug>/presence", presence.room_presence, name="api-room-presence"),
    path("api/rooms/<str:slug>/members", presence.room_members_list, name="api-room-members"),
    path("api/rooms/<str:slug>/policy", presence.room_policy, name="api-room-policy"),
    path("api/rooms/<str:slug>/join", membership.room_join, name="api-room-join"),
    path("api/rooms/<str:slug>/settings", membership.room_settings, name="api-room-settings"),
    path("api/rooms/<str:slug>/roles", membership.room_roles, name="api-room-roles"),
    path("api/rooms/<str:slug>/kick", membership.room_kick, name="api-room-kick"),
    path("api/rooms/<str:slug>/chat", chat.room_chat, name="api-room-chat"),
    path("api/rooms/<str:slug>/chat/<int:message_id>", chat.room_chat_message, name="api-room-chat-message"),
    path("api/rooms/<str:slug>/chat/<int:message_id>/delete", chat.room_chat_message,
         name="api-room-chat-delete"),
    path("api/rooms/<str:slug>/mute", chat.room_mute, name="api-room-mute"),
    path("api/rooms/<str:slug>/subtitles", subtitles.room_subtitles, name="api-room-subtitles"),
    path("media/<path:path>", serve_media, name="media"),
    path("", pages.lobby, name="lobby"),
    path("r/<str:slug>", pages.room, name="room"),
    path("r/<str:slug>/lab", pages.lab, name="lab"),
]
