"""HTTP routes of the wire contract."""

from __future__ import annotations

from django.urls import path

from transports import clock, presence_api, rooms_api, short_poll

urlpatterns = [
    path("api/time", clock.server_time, name="api-time"),
    path("api/rooms", rooms_api.rooms_collection, name="api-rooms"),
    path("api/rooms/<str:slug>/state", short_poll.room_state, name="api-room-state"),
    path("api/rooms/<str:slug>/commands", short_poll.room_commands, name="api-room-commands"),
    path("api/rooms/<str:slug>/presence", presence_api.room_presence, name="api-room-presence"),
    path("api/rooms/<str:slug>/members", presence_api.room_members_list, name="api-room-members"),
    path("api/rooms/<str:slug>/policy", presence_api.room_policy, name="api-room-policy"),
]
