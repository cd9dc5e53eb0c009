"""CONTRACT v2 "owners, roles and passwords", row by row over HTTP."""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import pytest

from rooms.models import Ban, Member, Room
from rooms.signals import member_ended, room_access_changed

pytestmark = pytest.mark.django_db


def now_ms() -> float:
    return time.time() * 1000.0


def post(client, url, data, token=None, **extra):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(url, json.dumps(data), content_type="application/json", headers=headers, **extra)


def create(client, **fields):
    response = post(client, "/api/rooms", {"name": f"room {uuid.uuid4().hex[:6]}", **fields})
    assert response.status_code == 201, response.content
    return response.json()


def join(client, slug, client_id, **fields):
    return post(client, f"/api/rooms/{slug}/join", {"client_id": client_id, **fields})


def member_token(client, slug, client_id, **fields):
    response = join(client, slug, client_id, **fields)
    assert response.status_code == 200, response.content
    return response.json()["member_token"]


def seek(client, slug, client_id, token=None, position=3.0, **extra):
    return post(client, f"/api/rooms/{slug}/commands", {"type": "seek", "client_id": client_id,
                                                        "client_ms": now_ms(), "position": position}, token, **extra)


def version(slug):
    return Room.objects.get(slug=slug).version


# -- creating a room ---------------------------------------------------------------------------


def test_creation_returns_the_state_and_an_owner_token_kept_only_as_its_hash(client):
    room = create(client)
    assert room["version"] == 1 and room["room"]
    assert len(room["owner_token"]) >= 22  # 128 bits, URL-safe base64
    stored = Room.objects.get(slug=room["room"])
    assert stored.owner_token_hash == hashlib.sha256(room["owner_token"].encode()).hexdigest()
    assert room["owner_token"] not in json.dumps(stored.state)


def test_password_and_unlisted_rooms_are_not_in_the_lobby(client):
    secret = create(client, password="hunter2")
    hidden = create(client, listed=False)
    shown = create(client)
    slugs = [room["slug"] for room in client.get("/api/rooms").json()["rooms"]]
    assert shown["room"] in slugs
    assert secret["room"] not in slugs and hidden["room"] not in slugs
    page = client.get("/").content.decode()
    assert f"/r/{secret['room']}" not in page and f"/r/{hidden['room']}" not in page
    assert Room.objects.get(slug=secret["room"]).password_hash.count("hunter2") == 0


def test_bad_creation_fields_are_400_with_the_field(client):
    for fields, field in (({"control": "locked"}, "control"), ({"listed": "no"}, "listed"),
                          ({"password": 5}, "password")):
        response = post(client, "/api/rooms", {"name": "x", **fields})
        assert response.status_code == 400
        assert response.json()["field"] == field


# -- joining -----------------------------------------------------------------------------------


def test_join_gives_a_member_token_and_an_http_only_cookie(client):
    slug = create(client)["room"]
    response = join(client, slug, "c-ann", name="Ann")
    assert response.status_code == 200
    body = response.json()
    assert body["role"] == "viewer" and body["client_id"] == "c-ann" and len(body["member_token"]) >= 22
    cookie = response.cookies[f"vsync_member_{slug}"]
    assert cookie.value == body["member_token"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert not cookie["secure"]  # plain HTTP here; Secure when the request is
    assert Member.objects.get(client_id="c-ann").token_hash == hashlib.sha256(cookie.value.encode()).hexdigest()


def test_the_cookie_is_secure_on_a_secure_request(client):
    slug = create(client)["room"]
    response = post(client, f"/api/rooms/{slug}/join", {"client_id": "c-s"}, secure=True)
    assert response.cookies[f"vsync_member_{slug}"]["secure"]


def test_a_password_room_needs_the_password_to_join(client):
    slug = create(client, password="hunter2")["room"]
    assert join(client, slug, "c-1").status_code == 403
    assert join(client, slug, "c-1", password="wrong").status_code == 403
    assert "error" in join(client, slug, "c-1", password="wrong").json()
    assert join(client, slug, "c-1", password="hunter2").json()["role"] == "viewer"


def test_the_owner_token_alone_admits_to_a_password_room_as_owner(client):
    room = create(client, password="hunter2")
    response = join(client, room["room"], "c-own", owner_token=room["owner_token"])
    assert response.status_code == 200 and response.json()["role"] == "owner"
    assert join(client, room["room"], "c-x", owner_token="not-the-token").status_code == 403


def test_rejoining_with_the_same_client_id_replaces_its_token(client):
    slug = create(client)["room"]
    first = member_token(client, slug, "c-1")
    second = member_token(client, slug, "c-1")
    assert first != second
    assert seek(client, slug, "c-1", first).status_code == 401
    assert seek(client, slug, "c-1", second).status_code == 200


def test_a_hosts_role_is_not_taken_over_by_someone_who_knows_only_the_client_id(client):
    room = create(client)
    owner = member_token(client, room["room"], "c-own", owner_token=room["owner_token"])
    member_token(client, room["room"], "c-host")
    post(client, f"/api/rooms/{room['room']}/roles", {"client_id": "c-host", "role": "host"}, owner)
    client.cookies.clear()
    assert join(client, room["room"], "c-host").status_code == 403
    assert join(client, room["room"], "c-own").status_code == 403


def test_bad_join_bodies_are_400(client):
    slug = create(client)["room"]
    assert post(client, f"/api/rooms/{slug}/join", {"name": "no id"}).json()["field"] == "client_id"
    assert post(client, f"/api/rooms/{slug}/join", [1]).json()["field"] == "body"
    assert post(client, "/api/rooms/nope/join", {"client_id": "c"}).status_code == 404


# -- tokens ------------------------------------------------------------------------------------


def test_a_token_that_is_not_valid_for_the_room_is_401_even_in_an_open_room(client):
    slug, other = create(client)["room"], create(client)["room"]
    other_token = member_token(client, other, "c-1")
    client.cookies.clear()
    for token in ("made-up", other_token):
        response = seek(client, slug, "c-1", token)
        assert response.status_code == 401 and response.json()["error"]
    assert version(slug) == 1
    assert seek(client, slug, "c-1").status_code == 200  # without a token: an open room, as in v1


def test_the_cookie_proves_membership(client):
    room = create(client, password="hunter2")
    member_token(client, room["room"], "c-1", password="hunter2")  # sets the cookie on this client
    assert seek(client, room["room"], "c-1").status_code == 200


def test_a_password_room_refuses_every_endpoint_without_a_token(client):
    slug = create(client, password="hunter2")["room"]
    report = {"client_id": "c-1", "transport": "poll", "status": "paused"}
    assert seek(client, slug, "c-1").status_code == 401
    assert post(client, f"/api/rooms/{slug}/presence", report).status_code == 401
    assert client.get(f"/api/rooms/{slug}/members").status_code == 401
    assert post(client, f"/api/rooms/{slug}/media/error", {"client_id": "c-1", "url": "/x"}).status_code == 401
    assert client.post(f"/api/rooms/{slug}/media", {}).status_code == 401
    token = member_token(client, slug, "c-1", password="hunter2")
    client.cookies.clear()
    assert post(client, f"/api/rooms/{slug}/presence", report, token).status_code == 200
    assert client.get(f"/api/rooms/{slug}/members", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_a_member_token_speaks_only_for_its_own_client_id(client):
    slug = create(client)["room"]
    token = member_token(client, slug, "c-1")
    assert seek(client, slug, "c-2", token).status_code == 403
    client.cookies.clear()
    # and an anonymous client cannot use a joined member's client_id
    assert seek(client, slug, "c-1").status_code == 403
    assert version(slug) == 1


# -- control -----------------------------------------------------------------------------------


def test_a_hosts_only_room_refuses_a_viewers_command_and_accepts_the_owners_and_hosts(client):
    room = create(client, control="hosts")
    slug = room["room"]
    owner = member_token(client, slug, "c-own", owner_token=room["owner_token"])
    viewer = member_token(client, slug, "c-view")
    response = seek(client, slug, "c-view", viewer)
    assert response.status_code == 403 and response.json()["error"]
    assert seek(client, slug, "c-anon", None, HTTP_COOKIE="").status_code == 403
    assert version(slug) == 1
    assert seek(client, slug, "c-own", owner).status_code == 200
    assert post(client, f"/api/rooms/{slug}/roles", {"client_id": "c-view", "role": "host"}, owner).json() == {
        "client_id": "c-view", "role": "host"}
    assert seek(client, slug, "c-view", viewer, position=9.0).status_code == 200
    assert version(slug) == 3


def test_a_locked_room_refuses_even_the_owner(client):
    room = create(client)
    owner = member_token(client, room["room"], "c-own", owner_token=room["owner_token"])
    Room.objects.filter(slug=room["room"]).update(control=Room.Control.LOCKED)
    assert seek(client, room["room"], "c-own", owner).status_code == 403


# -- the owner's settings and roles --------------------------------------------------------------


def test_settings_are_the_owners_and_never_show_the_password(client, django_capture_on_commit_callbacks):
    room = create(client)
    slug = room["room"]
    owner = member_token(client, slug, "c-own", owner_token=room["owner_token"])
    viewer = member_token(client, slug, "c-view")
    change = {"name": "Movie night", "password": "s3cret", "listed": False, "control": "hosts",
              "buffering": "wait", "buffering_timeout_s": 20}
    assert post(client, f"/api/rooms/{slug}/settings", change, viewer).status_code == 403
    client.cookies.clear()
    assert post(client, f"/api/rooms/{slug}/settings", change).status_code == 403
    seen = []
    room_access_changed.connect(lambda sender, **kw: seen.append(kw["room"]), weak=False, dispatch_uid="t-set")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = post(client, f"/api/rooms/{slug}/settings", change, owner)
    finally:
        room_access_changed.disconnect(dispatch_uid="t-set")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Movie night" and body["listed"] is False and body["control"] == "hosts"
    assert body["buffering"] == "wait" and body["buffering_timeout_s"] == 20 and body["has_password"] is True
    assert "s3cret" not in response.content.decode() and "password" not in body
    assert seen == [slug]
    assert join(client, slug, "c-new").status_code == 403  # the password now applies
    removed = post(client, f"/api/rooms/{slug}/settings", {"password": None}, owner)
    assert removed.json()["has_password"] is False
    assert join(client, slug, "c-new").status_code == 200


def test_bad_settings_are_400_and_change_nothing(client):
    room = create(client)
    owner = member_token(client, room["room"], "c-own", owner_token=room["owner_token"])
    for change, field in (({"control": "locked"}, "control"), ({"buffering_timeout_s": 0}, "buffering_timeout_s"),
                          ({"name": " "}, "name"), ({"listed": 1}, "listed")):
        response = post(client, f"/api/rooms/{room['room']}/settings", change, owner)
        assert response.status_code == 400 and response.json()["field"] == field
    stored = Room.objects.get(slug=room["room"])
    assert stored.control == "open" and stored.listed and stored.buffering_timeout_s == 10


def test_roles_are_the_owners_to_grant(client):
    room = create(client)
    slug = room["room"]
    owner = member_token(client, slug, "c-own", owner_token=room["owner_token"])
    viewer = member_token(client, slug, "c-view")
    assert post(client, f"/api/rooms/{slug}/roles", {"client_id": "c-view", "role": "host"}, viewer).status_code == 403
    assert post(client, f"/api/rooms/{slug}/roles", {"client_id": "c-nobody", "role": "host"}, owner).status_code == 404
    assert post(client, f"/api/rooms/{slug}/roles", {"client_id": "c-view", "role": "king"}, owner).json()[
        "field"] == "role"
    assert post(client, f"/api/rooms/{slug}/roles", {"client_id": "c-own", "role": "viewer"}, owner).status_code == 403


# -- kicks and bans ----------------------------------------------------------------------------


def ended(client, slug, moderator, data, callbacks):
    seen = []
    member_ended.connect(lambda sender, **kw: seen.append(kw), weak=False, dispatch_uid="t-kick")
    try:
        with callbacks(execute=True):
            response = post(client, f"/api/rooms/{slug}/kick", data, moderator)
    finally:
        member_ended.disconnect(dispatch_uid="t-kick")
    return response, seen


def test_a_host_kicks_a_viewer_whose_token_dies_and_connections_end(client, django_capture_on_commit_callbacks):
    room = create(client)
    slug = room["room"]
    owner = member_token(client, slug, "c-own", owner_token=room["owner_token"])
    host = member_token(client, slug, "c-host")
    post(client, f"/api/rooms/{slug}/roles", {"client_id": "c-host", "role": "host"}, owner)
    viewer = member_token(client, slug, "c-view")
    response, seen = ended(client, slug, host, {"client_id": "c-view"}, django_capture_on_commit_callbacks)
    assert response.status_code == 200
    assert seen == [{"signal": member_ended, "room": slug, "client_id": "c-view", "code": 4403}]
    assert seek(client, slug, "c-view", viewer).status_code == 401
    assert member_token(client, slug, "c-view")  # a kick without a ban: may join again


def test_a_ban_keeps_the_token_client_id_and_address_out(client, django_capture_on_commit_callbacks):
    room = create(client)
    slug = room["room"]
    owner = member_token(client, slug, "c-own", owner_token=room["owner_token"])
    viewer = post(client, f"/api/rooms/{slug}/join", {"client_id": "c-bad"}, REMOTE_ADDR="10.0.0.7")
    viewer_token = viewer.json()["member_token"]
    response, _ = ended(client, slug, owner, {"client_id": "c-bad", "ban": True}, django_capture_on_commit_callbacks)
    assert response.json()["banned"] is True
    ban = Ban.objects.get(room__slug=slug)
    assert ban.client_id == "c-bad" and ban.address == "10.0.0.7" and ban.token_hash
    assert join(client, slug, "c-bad").status_code == 403
    assert post(client, f"/api/rooms/{slug}/join", {"client_id": "c-other"}, REMOTE_ADDR="10.0.0.7").status_code == 403
    assert seek(client, slug, "c-x", None, REMOTE_ADDR="10.0.0.7", HTTP_COOKIE="").status_code == 403
    client.cookies.clear()
    assert seek(client, slug, "c-bad").status_code == 403  # anonymous, by client_id
    assert seek(client, slug, "c-bad", viewer_token).status_code in (401, 403)
    assert seek(client, slug, "c-own", owner).status_code == 200  # the owner is never locked out


def test_nobody_kicks_the_owner_and_viewers_kick_nobody(client, django_capture_on_commit_callbacks):
    room = create(client)
    slug = room["room"]
    owner = member_token(client, slug, "c-own", owner_token=room["owner_token"])
    host = member_token(client, slug, "c-host")
    post(client, f"/api/rooms/{slug}/roles", {"client_id": "c-host", "role": "host"}, owner)
    viewer = member_token(client, slug, "c-view")
    assert ended(client, slug, host, {"client_id": "c-own"}, django_capture_on_commit_callbacks)[0].status_code == 403
    assert ended(client, slug, viewer, {"client_id": "c-host"}, django_capture_on_commit_callbacks)[0].status_code \
        == 403
    client.cookies.clear()
    assert ended(client, slug, None, {"client_id": "c-host"}, django_capture_on_commit_callbacks)[0].status_code == 403
    assert Member.objects.filter(room__slug=slug).count() == 3


def test_kicking_in_a_password_room_also_rechecks_its_connections(client, django_capture_on_commit_callbacks):
    room = create(client, password="pw")
    slug = room["room"]
    owner = member_token(client, slug, "c-own", owner_token=room["owner_token"])
    member_token(client, slug, "c-view", password="pw")
    seen = []
    room_access_changed.connect(lambda sender, **kw: seen.append(kw["room"]), weak=False, dispatch_uid="t-k")
    try:
        ended(client, slug, owner, {"client_id": "c-view"}, django_capture_on_commit_callbacks)
    finally:
        room_access_changed.disconnect(dispatch_uid="t-k")
    assert seen == [slug]


# -- policy (v1) and members ---------------------------------------------------------------------


def test_policy_is_the_owners_in_an_owned_room_and_anyones_in_the_demo(client):
    room = create(client)
    slug = room["room"]
    owner = member_token(client, slug, "c-own", owner_token=room["owner_token"])
    viewer = member_token(client, slug, "c-view")
    change = {"buffering_policy": "wait"}
    assert post(client, f"/api/rooms/{slug}/policy", change, viewer).status_code == 403
    client.cookies.clear()
    assert post(client, f"/api/rooms/{slug}/policy", change).status_code == 403
    assert post(client, f"/api/rooms/{slug}/policy", change, owner).json()["buffering_policy"] == "wait"
    assert post(client, "/api/rooms/demo/policy", change).status_code == 200  # no owner: v1


def test_members_lists_each_role_and_a_total(client):
    room = create(client)
    slug = room["room"]
    owner = member_token(client, slug, "c-own", owner_token=room["owner_token"])
    member_token(client, slug, "c-view", name="Vic")
    post(client, f"/api/rooms/{slug}/presence", {"client_id": "c-own", "transport": "ws", "status": "paused"}, owner)
    client.cookies.clear()
    body = client.get(f"/api/rooms/{slug}/members").json()
    assert {m["client_id"]: m["role"] for m in body["members"]} == {"c-own": "owner", "c-view": "viewer"}
    assert body["total"] == 2
    assert body["members"][0]["client_id"] == "c-own"  # the owner first


# -- ordering (v2) -----------------------------------------------------------------------------


def test_a_command_stamped_4_9_s_ahead_does_not_make_the_next_normal_command_stale(client):
    ahead = post(client, "/api/rooms/demo/commands", {"type": "seek", "client_id": "c-ahead",
                                                      "client_ms": now_ms() + 4_900, "position": 1.0})
    assert ahead.status_code == 200
    assert ahead.json()["state"]["client_ms"] <= now_ms()
    normal = seek(client, "demo", "c-normal")
    assert normal.status_code == 200, normal.content
