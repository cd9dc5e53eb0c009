"""Admin: live state, the paginated event log, and actions that are versioned commands."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth.models import User

from rooms.models import Room, RoomEvent
from rooms.services import room_apply_command
from rooms.signals import room_state_changed
from rooms.state import Command

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = User.objects.create_superuser("admin", "admin@example.org", "pw-for-tests")
    client.force_login(user)
    return client


def play_demo(position: float = 5.0) -> None:
    room_apply_command(slug="demo", command=Command(type="play", client_id="c-x", client_ms=time.time() * 1000,
                                                    position=position))


def test_room_list_shows_live_state(admin_client):
    play_demo()
    page = admin_client.get("/admin/rooms/room/").content.decode()
    assert "demo" in page
    assert "position now" in page.lower()


def test_pause_everyone_is_a_versioned_command_that_is_published(admin_client, django_capture_on_commit_callbacks):
    play_demo()
    seen = []
    room_state_changed.connect(lambda sender, state, **kw: seen.append(state), weak=False, dispatch_uid="t")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post("/admin/rooms/room/", {"action": "pause_everyone", "_selected_action": [
                Room.objects.get(slug="demo").pk]})
    finally:
        room_state_changed.disconnect(dispatch_uid="t")
    assert response.status_code == 302
    room = Room.objects.get(slug="demo")
    assert room.version == 3
    assert room.state["playing"] is False
    assert room.state["changed_by"] is None
    assert RoomEvent.objects.get(room=room, version=3).command["type"] == "pause"
    assert [state.version for state in seen] == [3]


def test_seek_everyone_to_start_wins_over_a_client_stamped_ahead(admin_client):
    room_apply_command(slug="demo", command=Command(type="seek", client_id="c-ahead",
                                                    client_ms=time.time() * 1000 + 4_000, position=9.0))
    admin_client.post("/admin/rooms/room/", {"action": "seek_everyone_to_start",
                                             "_selected_action": [Room.objects.get(slug="demo").pk]})
    state = Room.objects.get(slug="demo").state
    assert state["position"] == 0.0
    assert state["version"] == 3


def test_event_log_inline_is_newest_first_and_paginated(admin_client):
    for n in range(25):
        room_apply_command(slug="demo", command=Command(type="seek", client_id="c-x",
                                                        client_ms=time.time() * 1000 + n, position=float(n)))
    pk = Room.objects.get(slug="demo").pk
    first = admin_client.get(f"/admin/rooms/room/{pk}/change/").content.decode()
    assert "page 1 of 2" in first
    versions = [int(v) for v in re.findall(r'field-version">\s*<p>(\d+)</p>', first)]
    assert versions == list(range(26, 6, -1))
    second = admin_client.get(f"/admin/rooms/room/{pk}/change/?events_page=2").content.decode()
    assert "page 2 of 2" in second


def test_saving_policy_in_the_admin_does_not_touch_the_state(admin_client):
    room = Room.objects.get(slug="demo")
    response = admin_client.post(f"/admin/rooms/room/{room.pk}/change/", {
        "name": "Demo", "control": "locked", "start_lead_ms": 400, "buffering_policy": "wait",
        "buffering_timeout_s": 5, "media_page_url": "", "media_expires_ms": "",
        "events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0", "events-MIN_NUM_FORMS": "0",
        "events-MAX_NUM_FORMS": "1000"})
    assert response.status_code == 302, response.content.decode()[:2000]
    room.refresh_from_db()
    assert room.control == "locked"
    assert room.buffering_policy == "wait"
    assert room.version == 1


def test_creating_a_room_in_the_admin_goes_through_the_service(admin_client):
    response = admin_client.post("/admin/rooms/room/add/", {
        "slug": "party", "name": "Party", "control": "open", "start_lead_ms": 300, "buffering_policy": "ignore",
        "buffering_timeout_s": 10, "media_page_url": "", "media_expires_ms": "",
        "events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0", "events-MIN_NUM_FORMS": "0",
        "events-MAX_NUM_FORMS": "1000"})
    assert response.status_code == 302, response.content.decode()[:3000]
    room = Room.objects.get(slug="party")
    assert room.state["room"] == "party"
    assert RoomEvent.objects.filter(room=room, version=1).exists()
