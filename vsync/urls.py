from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from rooms.serve import serve_media

urlpatterns = [
    path("admin/", admin.site.urls),
    path("media/<path:path>", serve_media, name="media"),
    path("", include("transports.urls")),
]
