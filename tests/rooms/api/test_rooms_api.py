"""The rooms collection: listing and creating rooms."""

from __future__ import annotations

import json

import pytest

from rooms.models import Room, RoomEvent

pytestmark = pytest.mark.django_db


def create(client, data, **headers):
    raw = data if isinstance(data, str) else json.dumps(data)
    return client.post("/api/rooms", raw, content_type="application/json", headers=headers)


def test_list_has_the_demo_room_with_members_and_state(client):
    rooms = client.get("/api/rooms").json()["rooms"]
    demo = next(room for room in rooms if room["slug"] == "demo")
    assert set(demo) >= {"slug", "name", "members", "state"}
    assert demo["members"] == 0
    assert demo["state"]["version"] == 1


def test_create_returns_201_with_the_new_rooms_state_at_version_1(client):
    response = create(client, {"name": "Movie Night"})
    assert response.status_code == 201
    state = response.json()
    assert state["room"] == "movie-night"
    assert state["version"] == 1
    assert state["media"]["source"] == "demo"
    assert RoomEvent.objects.filter(room__slug="movie-night", version=1).exists()


def test_slugs_are_unique(client):
    first = create(client, {"name": "Film"}).json()["room"]
    second = create(client, {"name": "Film"}).json()["room"]
    assert first == "film"
    assert second == "film-2"


def test_a_name_without_slug_characters_still_gets_a_valid_slug(client):
    slug = create(client, {"name": "日本語!!"}).json()["room"]
    assert Room.objects.filter(slug=slug).exists()
    assert slug.replace("-", "").isalnum() and slug.isascii()


@pytest.mark.parametrize(
    ("data", "field"),
    [({}, "name"), ({"name": ""}, "name"), ({"name": "   "}, "name"), ({"name": 5}, "name"),
     ({"name": "x" * 101}, "name"), ({"name": "ok", "media_url": "javascript:alert(1)"}, "media_url"),
     ("nope", "body"), ([], "body")],
)
def test_bad_room_is_400_naming_the_field_and_creates_nothing(client, data, field):
    before = Room.objects.count()
    response = create(client, data)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert Room.objects.count() == before


def test_cross_origin_create_is_403(client):
    assert create(client, {"name": "x"}, Origin="http://evil.example").status_code == 403
