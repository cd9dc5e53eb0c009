"""Admin: who owns a room, its hosts, bans and password shown (never the secrets); transfer and clear bans."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.contrib.auth.models import User

from rooms.access import hash_token
from rooms.media.sources import DEMO_MEDIA
from rooms.models import Ban, Member, Room
from rooms.services import room_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.org", "pw-for-tests"))
    return client


@pytest.fixture
def owned_room():
    room = room_create(name="Owned", media=DEMO_MEDIA, owner_token="old-owner-token", password="hunter2")
    Member.objects.create(room=room, client_id="c-own", role=Member.Role.OWNER, token_hash=hash_token("t-own"),
                          last_seen=room.created_at)
    Member.objects.create(room=room, client_id="c-host", name="Hana", role=Member.Role.HOST,
                          token_hash=hash_token("t-host"), last_seen=room.created_at)
    Ban.objects.create(room=room, client_id="c-bad", address="10.0.0.9")
    return room


def test_change_page_shows_owner_hosts_bans_and_password_but_no_secret(admin_client, owned_room):
    page = admin_client.get(f"/admin/rooms/room/{owned_room.pk}/change/").content.decode()
    assert "Hana" in page and "c-bad" in page
    assert owned_room.password_hash not in page
    assert owned_room.owner_token_hash not in page
    assert hash_token("t-host") not in page


def test_transfer_ownership_shows_a_new_token_once_and_demotes_the_old_owner(admin_client, owned_room):
    response = admin_client.post("/admin/rooms/room/", {"action": "transfer_ownership",
                                                         "_selected_action": [owned_room.pk]}, follow=True)
    token = re.search(r"new owner token ([A-Za-z0-9_-]+)", response.content.decode()).group(1)
    owned_room.refresh_from_db()
    assert owned_room.owner_token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert Member.objects.get(client_id="c-own").role == Member.Role.VIEWER
    assert token not in admin_client.get("/admin/rooms/room/").content.decode()


def test_the_new_owner_token_joins_as_owner_and_the_old_one_does_not(admin_client, owned_room, client):
    response = admin_client.post("/admin/rooms/room/", {"action": "transfer_ownership",
                                                         "_selected_action": [owned_room.pk]}, follow=True)
    token = re.search(r"new owner token ([A-Za-z0-9_-]+)", response.content.decode()).group(1)
    join = client.post(f"/api/rooms/{owned_room.slug}/join", {"client_id": "c-new", "owner_token": token},
                       content_type="application/json")
    assert join.json()["role"] == "owner"
    old = client.post(f"/api/rooms/{owned_room.slug}/join", {"client_id": "c-o", "owner_token": "old-owner-token"},
                      content_type="application/json")
    assert old.status_code == 403


def test_clear_bans_lifts_every_ban_of_the_room(admin_client, owned_room):
    admin_client.post("/admin/rooms/room/", {"action": "clear_bans", "_selected_action": [owned_room.pk]})
    assert not Ban.objects.filter(room=owned_room).exists()
    assert Room.objects.get(pk=owned_room.pk).password_hash  # nothing else changed
