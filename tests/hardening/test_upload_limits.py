"""Per-address upload limits, upload attribution, and deleting uploads no room references any more."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from rooms.media.gc import uploads_sweep
from rooms.media.quota import UPLOAD_WINDOW_S, UploadQuota, upload_quota
from rooms.models import Room, Upload
from rooms.services import room_server_command

pytestmark = pytest.mark.django_db
WEBM = b"\x1a\x45\xdf\xa3" + b"\x00" * 30 + b"webm" + b"\x00" * 200


@pytest.fixture(autouse=True)
def fresh_quota(tmp_path: Path, settings: object) -> Iterator[None]:
    settings.MEDIA_ROOT = tmp_path  # type: ignore[attr-defined]
    upload_quota.clear()
    yield
    upload_quota.clear()


def _upload(client: Client, address: str = "203.0.113.7", slug: str = "demo") -> object:
    return client.post(f"/api/rooms/{slug}/media", {"file": SimpleUploadedFile("clip.webm", WEBM),
                                                      "client_id": "up-1"}, REMOTE_ADDR=address)


def test_three_uploads_in_ten_minutes_are_allowed() -> None:
    client = Client()
    assert [_upload(client).status_code for _ in range(3)] == [200, 200, 200]


def test_the_eleventh_upload_in_ten_minutes_is_refused_with_retry_after() -> None:
    client = Client()
    statuses = [_upload(client).status_code for _ in range(10)]
    refused = _upload(client)
    assert statuses == [200] * 10
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert "error" in refused.json()
    assert _upload(client, address="203.0.113.8").status_code == 200  # another address is not affected


def test_uploads_without_client_id_count_too() -> None:
    client = Client()
    for _ in range(10):
        client.post("/api/rooms/demo/media", {"file": SimpleUploadedFile("a.webm", WEBM)}, REMOTE_ADDR="198.51.100.1")
    response = client.post("/api/rooms/demo/media", {"file": SimpleUploadedFile("a.webm", WEBM)},
                           REMOTE_ADDR="198.51.100.1")
    assert response.status_code == 429


def test_bytes_an_hour_are_limited() -> None:
    quota = UploadQuota()
    gib = 1024**3
    assert quota.take("192.0.2.1", gib, now=0.0) is None
    assert quota.take("192.0.2.1", gib, now=1.0) is None
    wait = quota.take("192.0.2.1", 1, now=2.0)
    assert wait is not None and 3590 < wait <= 3600
    assert quota.take("192.0.2.1", 1, now=3601.0) is None


def test_the_count_window_slides() -> None:
    quota = UploadQuota()
    for second in range(10):
        assert quota.take("192.0.2.2", 1, now=float(second)) is None
    assert quota.take("192.0.2.2", 1, now=10.0) is not None
    assert quota.take("192.0.2.2", 1, now=UPLOAD_WINDOW_S + 0.5) is None


def test_an_upload_is_attributed() -> None:
    response = _upload(Client(), address="203.0.113.9")
    assert response.status_code == 200
    name = response.json()["state"]["media"]["url"].removeprefix(settings.MEDIA_URL)
    upload = Upload.objects.get(name=name)
    assert (upload.kind, upload.room_id is not None, upload.client_id, upload.address, upload.size) == (
        "media", True, "up-1", "203.0.113.9", len(WEBM))


def test_an_unreferenced_upload_is_deleted_after_the_grace_period(settings: object) -> None:
    settings.VSYNC_UPLOAD_GRACE_S = 600  # type: ignore[attr-defined]
    response = _upload(Client())
    name = response.json()["state"]["media"]["url"].removeprefix("/media/")
    path = Path(settings.MEDIA_ROOT) / name  # type: ignore[attr-defined]
    now = time.time() * 1000
    assert uploads_sweep(now) == [] and path.exists()  # still the room's media
    room_server_command(slug="demo", type="media", url="/media/demo.webm",
                        media=Room.objects.get(slug="demo").room_state.media.__class__(
                            url="/media/demo.webm", title="Demo", duration=60.0, source="demo"))
    assert uploads_sweep(now + 1000) == []  # noticed: the grace period starts
    assert uploads_sweep(now + 1000 + 599_000) == [] and path.exists()
    assert uploads_sweep(now + 1000 + 600_000) == [name]
    assert not path.exists() and not Upload.objects.filter(name=name).exists()


def test_a_reference_coming_back_keeps_the_upload(settings: object) -> None:
    response = _upload(Client())
    name = response.json()["state"]["media"]["url"].removeprefix("/media/")
    Upload.objects.filter(name=name).update(unreferenced_since_ms=1.0)  # once unreferenced, now the media again
    assert uploads_sweep(time.time() * 1000) == []
    assert Upload.objects.get(name=name).unreferenced_since_ms is None
