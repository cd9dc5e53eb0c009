from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from rooms import pages
from rooms.serve import serve_media

urlpatterns = [
    path("admin/", admin.site.urls),
    path("media/<path:path>", serve_media, name="media"),
    path("", include("transports.urls")),
    path("", pages.lobby, name="lobby"),
    path("r/<str:slug>", pages.room, name="room"),
    path("r/<str:slug>/lab", pages.lab, name="lab"),
]
