"""A full disk, a saturated resolver pool and a database that is down are 503 with Retry-After, never a 500."""

from __future__ import annotations

import errno
import threading
import time

import pytest
from django.db import InterfaceError, OperationalError, ProgrammingError
from django.http import HttpResponse
from django.test import Client, RequestFactory

from rooms import intake
from rooms.media import sources, ytdlp
from rooms.models import Room
from vsync.security import ApiJsonErrors

pytestmark = pytest.mark.django_db


def test_a_full_disk_is_a_503() -> None:
    middleware = ApiJsonErrors(lambda request: HttpResponse())
    request = RequestFactory().post("/api/rooms/demo/media")
    response = middleware.process_exception(request, OSError(errno.ENOSPC, "No space left on device"))
    assert response is not None and response.status_code == 503
    assert response["Retry-After"] and "error" in response.content.decode()


def test_a_busy_resolver_pool_is_a_503_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "check_url", lambda url: "video.example")  # no DNS here; the guard has its tests
    monkeypatch.setattr(ytdlp, "_SLOTS", threading.BoundedSemaphore(1))
    ytdlp._SLOTS.acquire()  # every worker busy
    version = Room.objects.get(slug="demo").version
    body = {"type": "media", "client_id": "busy", "client_ms": time.time() * 1000,
            "url": "https://video.example/watch?v=1"}
    started = time.monotonic()
    response = Client().post("/api/rooms/demo/commands", body, content_type="application/json")
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) >= 1
    assert time.monotonic() - started < 5  # at once, not after a resolution timeout
    assert Room.objects.get(slug="demo").version == version


@pytest.mark.parametrize("error", [OperationalError("server closed the connection unexpectedly"),
                                   InterfaceError("connection already closed")])
def test_a_database_that_is_down_is_a_503_with_retry_after(monkeypatch: pytest.MonkeyPatch,
                                                           error: Exception) -> None:
    def down(**_: object) -> None:
        raise error

    monkeypatch.setattr(intake, "room_apply_command", down)
    version = Room.objects.get(slug="demo").version
    body = {"type": "seek", "client_id": "outage", "client_ms": time.time() * 1000, "position": 3.0}
    response = Client().post("/api/rooms/demo/commands", body, content_type="application/json")
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) >= 1
    assert response.json()["error"]
    assert Room.objects.get(slug="demo").version == version


def test_a_query_that_is_wrong_is_still_a_500_not_hidden_as_an_outage() -> None:
    middleware = ApiJsonErrors(lambda request: HttpResponse())
    request = RequestFactory().post("/api/rooms/demo/commands")
    response = middleware.process_exception(request, ProgrammingError("no such column"))
    assert response is not None and response.status_code == 500
