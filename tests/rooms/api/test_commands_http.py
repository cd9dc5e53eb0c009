"""Every row of the contract's command table, over HTTP, plus ETag/304 and the clock."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from rooms.models import Room, RoomEvent

pytestmark = pytest.mark.django_db

URL = "/api/rooms/demo/commands"


def now_ms() -> float:
    return time.time() * 1000.0


def body(**overrides) -> dict:
    data = {"type": "seek", "client_id": f"c-{uuid.uuid4().hex[:8]}", "client_ms": now_ms(), "position": 12.5}
    data.update(overrides)
    return data


def post(client, data, url: str = URL, **headers):
    raw = data if isinstance(data, str | bytes) else json.dumps(data)
    return client.post(url, raw, content_type="application/json", headers=headers)


def demo_version() -> int:
    return Room.objects.get(slug="demo").version


def test_accepted_command_returns_the_new_version(client):
    response = post(client, body(type="play", position=3.0))
    assert response.status_code == 200
    payload = response.json()
    assert payload["accepted"] is True
    assert payload["state"]["version"] == 2
    assert payload["state"]["playing"] is True
    assert RoomEvent.objects.filter(room__slug="demo", version=2).exists()


def test_stale_command_is_409_with_the_current_state(client):
    post(client, body(client_ms=now_ms()))
    response = post(client, body(client_ms=now_ms() - 60_000))
    assert response.status_code == 409
    assert response.json()["accepted"] is False
    assert response.json()["reason"] == "stale"
    assert response.json()["state"]["version"] == demo_version() == 2


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("{not json", "body"),
        ('{"type": "seek", "client_id": "c", "client_ms": 1, "position": NaN}', "position"),
        ('{"type": "seek", "client_id": "c", "client_ms": 1, "position": Infinity}', "position"),
        ('{"type": "seek", "client_id": "c", "client_ms": 1e999, "position": 1}', "client_ms"),
        ("[1, 2]", "body"),
        ('"seek"', "body"),
        ("", "body"),
    ],
)
def test_malformed_or_non_finite_json_is_400_naming_the_field(client, raw, field):
    response = post(client, raw)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert response.json()["error"]
    assert demo_version() == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"type": "rewind"}, "type"),
        ({"type": None}, "type"),
        ({"type": 3}, "type"),
        ({"client_id": ""}, "client_id"),
        ({"client_id": "x" * 65}, "client_id"),
        ({"client_id": 17}, "client_id"),
        ({"client_ms": "now"}, "client_ms"),
        ({"client_ms": True}, "client_ms"),
        ({"position": -1}, "position"),
        ({"position": "12"}, "position"),
        ({"type": "rate", "rate": 0.2}, "rate"),
        ({"type": "rate", "rate": 4.5}, "rate"),
        ({"type": "media", "url": ""}, "url"),
        ({"type": "media", "url": "file:///etc/passwd"}, "url"),
        ({"client_ms": "FUTURE"}, "client_ms"),
    ],
)
def test_invalid_field_is_400_naming_it_and_changes_nothing(client, overrides, field):
    if overrides.get("client_ms") == "FUTURE":
        overrides = {"client_ms": now_ms() + 5_500}  # the guard is 5 s ahead of server time
    response = post(client, body(**overrides))
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert demo_version() == 1


@pytest.mark.parametrize("missing", ["type", "client_id", "client_ms", "position"])
def test_missing_field_is_400_naming_it(client, missing):
    data = body()
    del data[missing]
    response = post(client, data)
    assert response.status_code == 400
    assert response.json()["field"] == missing


def test_missing_rate_and_url_are_named(client):
    assert post(client, body(type="rate")).json()["field"] == "rate"
    assert post(client, body(type="media")).json()["field"] == "url"


def test_client_id_of_64_characters_is_accepted(client):
    assert post(client, body(client_id="x" * 64)).status_code == 200


def test_locked_room_is_403_for_clients(client):
    Room.objects.filter(slug="demo").update(control=Room.Control.LOCKED)
    response = post(client, body())
    assert response.status_code == 403
    assert response.json()["error"]
    assert demo_version() == 1


def test_cross_origin_browser_post_is_403(client):
    response = post(client, body(), Origin="https://evil.example")
    assert response.status_code == 403
    assert demo_version() == 1


def test_same_origin_browser_post_is_accepted(client):
    assert post(client, body(), Origin="http://127.0.0.1:8000", Host="127.0.0.1:8000").status_code == 200


def test_unknown_room_is_404(client):
    response = post(client, body(), url="/api/rooms/no-such-room/commands")
    assert response.status_code == 404
    assert response.json()["error"]


def test_body_over_16_kib_is_413(client):
    response = post(client, body(padding="x" * (16 * 1024)))
    assert response.status_code == 413
    assert response.json()["error"]
    assert demo_version() == 1


def test_more_than_the_rate_limit_per_client_is_429_and_other_clients_go_on(client, monkeypatch):
    # The buckets' clock stands still: on a loaded machine 40 requests can take two seconds.
    monkeypatch.setattr("rooms.limits.time.monotonic", lambda: 1000.0)
    statuses = [post(client, body(client_id="c-burst", client_ms=now_ms())).status_code for _ in range(40)]
    assert statuses[:10] == [200] * 10  # the contract promises at least 10 a second
    assert statuses.count(429) > 0
    assert post(client, body()).status_code == 200


def test_get_on_commands_is_405(client):
    assert client.get(URL).status_code == 405


def test_time_is_server_epoch_ms_and_never_cached(client):
    before = now_ms()
    response = client.get("/api/time")
    assert response["Cache-Control"] == "no-store"
    assert before - 1 <= response.json()["server_ms"] <= now_ms() + 1
