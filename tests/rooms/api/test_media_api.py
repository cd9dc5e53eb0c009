"""Media endpoints: uploads (POST /api/rooms/{slug}/media), playback-error reports, media URLs.

The first part runs in-process; the second runs a real daphne server, where the
request body reaches Django through ASGI.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import httpx
import pytest

from rooms.media.sources import DEMO_MEDIA
from rooms.models import Room
from rooms.services import room_create, room_server_command
from tests.support import media_site as fixtures
from tests.support.media_site import DEMO_WEBM, MediaSite
from tests.support.servers import LiveServer, migrate, server_env

# Fixtures shared by the media tests.
loopback_only, media_settings, media_site = fixtures.loopback_only, fixtures.media_settings, fixtures.media_site

WEBM = DEMO_WEBM.read_bytes()
LIVE_UPLOAD_MAX_BYTES = len(WEBM) + 1000

pytestmark = pytest.mark.django_db


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def upload(client, slug="demo", content=WEBM, name="My Film.webm", **fields):
    data = {"file": io.BytesIO(content), **fields}
    data["file"].name = name
    return client.post(f"/api/rooms/{slug}/media", data, headers=fields.pop("headers", {}))


@pytest.fixture
def media_root(db, media_settings):
    return Path(media_settings.MEDIA_ROOT)


def test_uploading_a_webm_switches_the_room_to_it_at_0_paused(client, media_root):
    room_server_command(slug="demo", type="play", position=30.0)
    response = upload(client)
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] is True
    state = body["state"]
    assert (state["playing"], state["position"]) == (False, 0.0)
    assert state["media"]["source"] == "upload"
    assert state["media"]["title"] == "My Film"
    assert state["changed_by"] is None
    name = state["media"]["url"].removeprefix("/media/")
    assert name.endswith(".webm") and "My" not in name
    assert (media_root / name).read_bytes() == WEBM
    assert files_under(media_root) == [name]
    assert Room.objects.get(slug="demo").room_state.to_dict() == state


def test_the_upload_is_authored_by_the_client_id_field(client, media_root):
    state = upload(client, client_id="c-up").json()["state"]
    assert state["changed_by"] == "c-up"


def test_the_type_comes_from_the_content_not_the_name(client, media_root):
    response = upload(client, name="holiday.txt")
    assert response.status_code == 200
    assert response.json()["state"]["media"]["url"].endswith(".webm")


@pytest.mark.parametrize(("content", "name"), [(b"hello, not a video\n" * 100, "film.webm"),
                                               (b"<html><script>alert(1)</script></html>", "film.mp4"),
                                               (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "film.ogv")])
def test_a_non_media_upload_is_400_and_leaves_nothing_behind(client, media_root, content, name):
    before = Room.objects.get(slug="demo").version
    response = upload(client, content=content, name=name)
    assert response.status_code == 400
    assert response.json()["field"] == "file"
    assert files_under(media_root) == []
    assert Room.objects.get(slug="demo").version == before


def test_an_empty_or_missing_file_is_400(client, media_root):
    assert upload(client, content=b"").json()["field"] == "file"
    response = client.post("/api/rooms/demo/media", {"client_id": "c-1"})
    assert response.status_code == 400
    assert response.json()["field"] == "file"
    assert client.post("/api/rooms/demo/media", b"raw", content_type="video/webm").status_code == 400


def test_an_oversize_upload_is_413_and_leaves_nothing_behind(client, media_root, settings):
    settings.VSYNC_UPLOAD_MAX_BYTES = len(WEBM) - 1  # refused while streaming, not by Content-Length
    response = upload(client)
    assert response.status_code == 413
    assert files_under(media_root) == []
    assert Room.objects.get(slug="demo").version == 1


def test_an_upload_announced_far_over_the_limit_is_refused_before_reading(client, media_root, settings):
    settings.VSYNC_UPLOAD_MAX_BYTES = 1000
    response = upload(client, content=WEBM * 2)
    assert response.status_code == 413
    assert not (media_root / ".incoming").exists()


def test_upload_errors(client, media_root):
    assert upload(client, slug="nope").status_code == 404
    assert upload(client, headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.get("/api/rooms/demo/media").status_code == 405
    assert upload(client, client_id="x" * 65).json()["field"] == "client_id"
    assert files_under(media_root) == []


def test_an_upload_into_a_locked_room_by_a_client_is_403_and_removed(client, media_root):
    Room.objects.filter(slug="demo").update(control=Room.Control.LOCKED)
    assert upload(client, client_id="c-1").status_code == 403
    assert files_under(media_root) == []


def test_a_stale_upload_is_409_and_removed(client, media_root):
    room_server_command(slug="demo", type="pause", position=1.0)
    response = upload(client, client_id="c-1", client_ms="1000")
    assert response.status_code == 409
    assert response.json()["reason"] == "stale"
    assert files_under(media_root) == []


def test_an_uploaded_url_can_be_chosen_again_with_a_media_command(client, media_root):
    url = upload(client).json()["state"]["media"]["url"]
    room = room_create(name="Other", media=DEMO_MEDIA)
    command = {"type": "media", "client_id": "c-1", "client_ms": time.time() * 1000, "url": url}
    response = client.post(f"/api/rooms/{room.slug}/commands", command, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["state"]["media"]["source"] == "upload"
    command["url"], command["client_ms"] = "/media/missing.webm", time.time() * 1000
    response = client.post(f"/api/rooms/{room.slug}/commands", command, content_type="application/json")
    assert response.status_code == 400


# Playback-error reports


def report(client, slug, url, client_id="c-1"):
    return client.post(f"/api/rooms/{slug}/media/error", json.dumps({"client_id": client_id, "url": url}),
                       content_type="application/json")


@pytest.fixture
def page_room(db, media_settings, media_site):
    return fixtures.create_page_room(media_site, playing_from=5.0)


def test_a_playback_error_report_re_resolves_and_keeps_the_position(client, page_room):
    before = page_room.room_state
    response = report(client, page_room.slug, before.media.url)
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] is True
    after = body["state"]
    assert after["version"] == before.version + 1
    assert after["media"]["url"] != before.media.url
    assert (after["playing"], after["position"], after["anchor_ms"]) == (True, before.position, before.anchor_ms)


def test_a_report_about_a_url_the_room_no_longer_plays_is_409_with_the_current_state(client, page_room):
    response = report(client, page_room.slug, "http://127.0.0.1/old.webm")
    assert response.status_code == 409
    assert response.json()["reason"] == "stale"
    assert response.json()["state"]["version"] == page_room.version


def test_a_report_about_media_that_does_not_expire_changes_nothing(client, media_settings):
    response = report(client, "demo", DEMO_MEDIA.url)
    assert response.status_code == 200
    assert response.json()["accepted"] is False
    assert response.json()["reason"] == "not_refreshable"


def test_a_report_whose_re_resolution_fails_is_502(client, page_room, media_site):
    media_site.page_missing = True
    response = report(client, page_room.slug, page_room.room_state.media.url)
    assert response.status_code == 502
    assert "not found" in response.json()["error"]
    assert Room.objects.get(pk=page_room.pk).version == page_room.version


def test_report_errors(client, media_settings):
    assert report(client, "nope", "http://x/").status_code == 404
    assert report(client, "demo", "", client_id="c-1").json()["field"] == "url"
    assert report(client, "demo", "http://x/", client_id="").json()["field"] == "client_id"
    response = client.post("/api/rooms/demo/media/error", "{}", content_type="application/json",
                           headers={"Origin": "http://evil.example"})
    assert response.status_code == 403


# Creating rooms and switching media by URL


def test_a_room_can_be_created_from_a_page_url(client, media_settings, media_site):
    response = client.post("/api/rooms", {"name": "Page", "media_url": f"{media_site.url}/page.html"},
                           content_type="application/json")
    assert response.status_code == 201
    state = response.json()
    assert state["media"]["source"] == "youtube"
    assert state["media"]["thumbnail"] == f"{media_site.url}/thumb.jpg"
    room = Room.objects.get(slug=state["room"])
    assert room.media_page_url == f"{media_site.url}/page.html"
    assert room.media_expires_ms is not None


def test_a_room_can_be_created_from_a_direct_media_url(client, media_settings, media_site):
    response = client.post("/api/rooms", {"name": "Direct", "media_url": f"{media_site.url}/clip.webm"},
                           content_type="application/json")
    assert response.status_code == 201
    assert response.json()["media"] == {"url": f"{media_site.url}/clip.webm", "title": "clip", "duration": None,
                                        "source": "direct", "subtitles": []}
    assert Room.objects.get(slug=response.json()["room"]).media_expires_ms is None


@pytest.mark.parametrize("path", ["/missing.html", "/notes.txt"])
def test_a_room_with_an_unplayable_url_is_400_and_not_created(client, media_settings, media_site, path):
    before = Room.objects.count()
    response = client.post("/api/rooms", {"name": "Bad", "media_url": f"{media_site.url}{path}"},
                           content_type="application/json")
    assert response.status_code == 400
    assert response.json()["field"] == "media_url"
    assert Room.objects.count() == before


def test_a_media_command_with_a_refused_url_is_400_and_changes_nothing(client, media_settings, settings):
    settings.VSYNC_MEDIA_ALLOW_HOSTS = []
    command = {"type": "media", "client_id": "c-1", "client_ms": time.time() * 1000,
               "url": "http://169.254.169.254/latest/meta-data/"}
    response = client.post("/api/rooms/demo/commands", command, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["field"] == "url"
    assert "non-public" in response.json()["error"]
    assert Room.objects.get(slug="demo").version == 1


# Over a real daphne server


@pytest.fixture(scope="module")
def site():
    site = MediaSite().start()
    yield site
    site.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, site):
    """A server that allows 127.0.0.1, takes uploads a little larger than the demo, and trusts stream
    URLs for 2 s."""
    data_dir = tmp_path_factory.mktemp("media-server")
    env = server_env(data_dir, VSYNC_MEDIA_ALLOW_HOSTS="127.0.0.1", VSYNC_UPLOAD_MAX_BYTES=str(LIVE_UPLOAD_MAX_BYTES),
                     VSYNC_RESOLVE_MAX_AGE_S="2", VSYNC_RESOLVE_REFRESH_MARGIN_S="1",
                     VSYNC_RESOLVE_CHECK_INTERVAL_S="0.3")
    migrate(env)
    server = LiveServer(env=env).start()
    server.media_root = data_dir / "media"
    yield server
    server.stop()


def test_live_upload_is_served_with_ranges_and_immutable_caching(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        response = http.post("/api/rooms/demo/media", files={"file": ("clip.webm", WEBM, "video/webm")},
                             data={"client_id": "c-live"})
        assert response.status_code == 200, response.text
        url = response.json()["state"]["media"]["url"]
        ranged = http.get(url, headers={"Range": "bytes=-100"})
        assert ranged.status_code == 206
        assert ranged.content == WEBM[-100:]
        assert "immutable" in ranged.headers["Cache-Control"]
        assert ranged.headers["Content-Type"] == "video/webm"


# Refused while streaming, and by Content-Length before reading.
@pytest.mark.parametrize("size", [LIVE_UPLOAD_MAX_BYTES + 1, LIVE_UPLOAD_MAX_BYTES + 200_000])
def test_live_oversize_upload_is_413_and_leaves_nothing_behind(server, size):
    before = files_under(server.media_root)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        content = WEBM + b"\0" * (size - len(WEBM))
        response = http.post("/api/rooms/demo/media", files={"file": ("big.webm", content, "video/webm")})
        assert response.status_code == 413
    assert files_under(server.media_root) == before


def test_live_non_media_upload_is_400_and_leaves_nothing_behind(server):
    before = files_under(server.media_root)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        response = http.post("/api/rooms/demo/media", files={"file": ("film.webm", b"not media" * 50, "video/webm")})
        assert response.status_code == 400
    assert files_under(server.media_root) == before


def test_live_a_short_lived_stream_url_is_refreshed_before_it_expires(server, site):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        created = http.post("/api/rooms", json={"name": "Short", "media_url": f"{site.url}/page.html"})
        assert created.status_code == 201, created.text
        first = created.json()
        slug = first["room"]
        play = {"type": "play", "client_id": "c-1", "client_ms": time.time() * 1000, "position": 3.0}
        started = http.post(f"/api/rooms/{slug}/commands", json=play).json()["state"]
        deadline = time.monotonic() + 10
        state = started
        while state["version"] == started["version"] and time.monotonic() < deadline:
            time.sleep(0.2)
            state = http.get(f"/api/rooms/{slug}/state").json()
    assert state["version"] > started["version"], "no refresh within 10 s"
    assert state["media"]["url"] != started["media"]["url"]
    assert state["changed_by"] is None
    assert (state["playing"], state["position"], state["anchor_ms"], state["rate"]) == (
        True, started["position"], started["anchor_ms"], started["rate"])
