"""Chat over HTTP (CONTRACT v2 "chat"): post, read, limits, moderation, and the password rule."""

from __future__ import annotations

import json

import pytest

from rooms import chat
from rooms.limits import TokenBuckets
from rooms.models import ChatMessage, Member
from rooms.signals import chat_message_deleted, chat_message_posted

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_limits():
    chat.CLIENT_CHAT.clear()
    chat.ADDRESS_CHAT.clear()
    yield
    chat.CLIENT_CHAT.clear()
    chat.ADDRESS_CHAT.clear()


def post(client, url: str, data, **headers):
    raw = data if isinstance(data, str | bytes) else json.dumps(data)
    return client.post(url, raw, content_type="application/json", headers=headers)


def say(client, text: str, client_id: str = "c-a", slug: str = "demo", **headers):
    return post(client, f"/api/rooms/{slug}/chat", {"client_id": client_id, "text": text}, **headers)


def history(client, query: str = "", slug: str = "demo", **headers) -> list[dict]:
    response = client.get(f"/api/rooms/{slug}/chat{query}", headers=headers)
    assert response.status_code == 200, response.content
    return response.json()["messages"]


@pytest.fixture
def owned(client):
    """A room with an owner and a viewer who joined: (slug, owner headers, viewer headers)."""
    created = post(client, "/api/rooms", {"name": "Chatty"})
    assert created.status_code == 201, created.content
    slug, owner_token = created.json()["room"], created.json()["owner_token"]
    owner = post(client, f"/api/rooms/{slug}/join", {"client_id": "c-owner", "name": "Olga",
                                                      "owner_token": owner_token})
    viewer = post(client, f"/api/rooms/{slug}/join", {"client_id": "c-viewer", "name": "Vic"})
    assert owner.status_code == 200 and viewer.status_code == 200, (owner.content, viewer.content)
    client.cookies.clear()  # each request below says who it is with its Bearer token
    return (slug, {"Authorization": f"Bearer {owner.json()['member_token']}"},
            {"Authorization": f"Bearer {viewer.json()['member_token']}"})


def test_a_message_is_201_with_its_id_author_text_and_time(client):
    response = say(client, "hello")
    assert response.status_code == 201
    message = response.json()["message"]
    assert set(message) == {"id", "client_id", "name", "text", "ms"}
    assert (message["id"], message["client_id"], message["text"]) == (1, "c-a", "hello")
    assert say(client, "again").json()["message"]["id"] == 2


def test_text_is_trimmed_and_stripped_of_control_and_format_characters_but_keeps_newlines(client):
    message = say(client, "  \u200bhi\u0007\r\nthere\u202e\t \u00e9  ").json()["message"]
    assert message["text"] == "hi\nthere \u00e9"


@pytest.mark.parametrize("text", ["", "   ", "\u200b\u200d\n\t", "x" * 501])
def test_text_that_is_empty_after_cleaning_or_too_long_is_400_naming_text(client, text):
    response = say(client, text)
    assert response.status_code == 400 and response.json()["field"] == "text"
    assert not ChatMessage.objects.exists()


def test_five_hundred_characters_are_allowed(client):
    assert say(client, "é" * 500).status_code == 201


@pytest.mark.parametrize("body, field", [
    ({"client_id": "c-a", "text": 5}, "text"),
    ({"text": "hi"}, "client_id"),
    ({"client_id": "", "text": "hi"}, "client_id"),
    ({"client_id": "x" * 65, "text": "hi"}, "client_id"),
    ("[1, 2]", "body"),
    ("{not json", "body"),
])
def test_malformed_posts_are_400_naming_the_field(client, body, field):
    response = post(client, "/api/rooms/demo/chat", body)
    assert response.status_code == 400 and response.json()["field"] == field


def test_an_unknown_room_is_404(client):
    assert say(client, "hi", slug="nope").status_code == 404
    assert client.get("/api/rooms/nope/chat").status_code == 404


def test_a_burst_of_five_passes_and_the_sixth_is_429_for_that_client_only(client):
    assert [say(client, f"m{i}").status_code for i in range(5)] == [201] * 5
    limited = say(client, "too many")
    assert limited.status_code == 429 and int(limited["Retry-After"]) >= 1
    assert say(client, "me too", client_id="c-b").status_code == 201


def test_the_address_limit_stops_a_script_rotating_client_ids(client, monkeypatch, settings):
    settings.VSYNC_ADDRESS_LIMITS = True
    monkeypatch.setattr(chat, "ADDRESS_CHAT", TokenBuckets(rate=0.01, burst=3))  # the real one, scaled down
    codes = [say(client, "spam", client_id=f"c-{i}").status_code for i in range(5)]
    assert codes == [201, 201, 201, 429, 429]


def test_the_address_limit_is_off_for_load_tests(client, monkeypatch, settings):
    settings.VSYNC_ADDRESS_LIMITS = False
    monkeypatch.setattr(chat, "ADDRESS_CHAT", TokenBuckets(rate=0.01, burst=3))
    assert [say(client, "hi", client_id=f"c-{i}").status_code for i in range(5)] == [201] * 5


def test_history_is_oldest_first_after_the_given_id_at_most_100(client, settings):
    settings.VSYNC_ADDRESS_LIMITS = False
    for i in range(130):
        assert say(client, f"m{i}", client_id=f"c-{i}").status_code == 201
    newest = history(client)
    assert [m["id"] for m in newest] == list(range(31, 131))
    assert [m["id"] for m in history(client, "?after=0")] == list(range(31, 131))
    assert [m["id"] for m in history(client, "?after=5")] == list(range(6, 106))
    assert [m["id"] for m in history(client, "?after=125")] == [126, 127, 128, 129, 130]
    assert history(client, "?after=130") == []
    assert history(client, "?after=0&timeout=0")[-1]["text"] == "m129"


@pytest.mark.parametrize("query, field", [("?after=-1", "after"), ("?after=x", "after"), ("?after=1.5", "after"),
                                          ("?timeout=soon", "timeout"), ("?timeout=61", "timeout"),
                                          ("?timeout=nan", "timeout")])
def test_a_bad_history_query_is_400_naming_the_field(client, query, field):
    response = client.get(f"/api/rooms/demo/chat{query}")
    assert response.status_code == 400 and response.json()["field"] == field


def test_history_keeps_only_the_newest_messages(client, monkeypatch):
    monkeypatch.setattr(chat, "KEEP_MESSAGES", 3)
    for i in range(5):
        say(client, f"m{i}", client_id=f"c-{i}")
    assert list(ChatMessage.objects.values_list("seq", flat=True)) == [3, 4, 5]
    assert [m["id"] for m in history(client)] == [3, 4, 5]


def test_the_name_comes_from_the_member_row(client, owned):
    slug, _, viewer = owned
    assert say(client, "hi", client_id="c-viewer", slug=slug, **viewer).json()["message"]["name"] == "Vic"


def test_a_member_token_cannot_post_as_another_client(client, owned):
    slug, _, viewer = owned
    assert say(client, "hi", client_id="c-owner", slug=slug, **viewer).status_code == 403


def test_each_message_is_published_after_commit(client, django_capture_on_commit_callbacks):
    seen = []

    def receiver(sender, room, message, **kwargs):
        seen.append((room, message))

    chat_message_posted.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            message = say(client, "published").json()["message"]
        assert seen == []  # not before the commit
        for callback in callbacks:
            callback()
    finally:
        chat_message_posted.disconnect(receiver)
    assert seen == [("demo", message)]


def test_the_owner_deletes_a_message_and_it_leaves_the_history(client, owned, django_capture_on_commit_callbacks):
    slug, owner, viewer = owned
    first = say(client, "keep", client_id="c-viewer", slug=slug, **viewer).json()["message"]
    second = say(client, "rude", client_id="c-viewer", slug=slug, **viewer).json()["message"]
    deleted = []

    def receiver(sender, room, message_id, **kwargs):
        deleted.append((room, message_id))

    chat_message_deleted.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/api/rooms/{slug}/chat/{second['id']}/delete", headers=owner)
    finally:
        chat_message_deleted.disconnect(receiver)
    assert response.status_code == 200
    assert deleted == [(slug, second["id"])]
    assert [m["id"] for m in history(client, slug=slug, **viewer)] == [first["id"]]
    assert client.delete(f"/api/rooms/{slug}/chat/{first['id']}", headers=owner).status_code == 200
    assert history(client, slug=slug, **viewer) == []
    assert client.delete(f"/api/rooms/{slug}/chat/{first['id']}", headers=owner).status_code == 404


def test_a_viewer_or_an_anonymous_client_cannot_delete(client, owned):
    slug, _, viewer = owned
    message = say(client, "mine", client_id="c-viewer", slug=slug, **viewer).json()["message"]
    assert client.post(f"/api/rooms/{slug}/chat/{message['id']}/delete", headers=viewer).status_code == 403
    assert client.post(f"/api/rooms/{slug}/chat/{message['id']}/delete").status_code == 403
    assert len(history(client, slug=slug)) == 1


def test_a_muted_member_gets_403_until_the_mute_is_lifted(client, owned):
    slug, owner, viewer = owned
    muted = post(client, f"/api/rooms/{slug}/mute", {"client_id": "c-viewer", "seconds": 600}, **owner)
    assert muted.status_code == 200 and muted.json()["muted_until_ms"] > 0
    assert say(client, "hello?", client_id="c-viewer", slug=slug, **viewer).status_code == 403
    assert Member.objects.get(room__slug=slug, client_id="c-viewer").muted_until_ms is not None
    assert post(client, f"/api/rooms/{slug}/mute", {"client_id": "c-viewer", "seconds": 0}, **owner).status_code == 200
    assert say(client, "back", client_id="c-viewer", slug=slug, **viewer).status_code == 201


@pytest.mark.parametrize("body, status", [
    ({"client_id": "c-viewer", "seconds": -1}, 400),
    ({"client_id": "c-viewer", "seconds": "60"}, 400),
    ({"client_id": "c-viewer", "seconds": True}, 400),
    ({"client_id": "c-viewer"}, 400),
    ({"client_id": "c-nobody", "seconds": 60}, 404),
    ({"client_id": "c-owner", "seconds": 60}, 403),
])
def test_bad_mutes_change_nothing(client, owned, body, status):
    slug, owner, _ = owned
    assert post(client, f"/api/rooms/{slug}/mute", body, **owner).status_code == status
    assert not Member.objects.filter(room__slug=slug, muted_until_ms__isnull=False).exists()


def test_a_viewer_cannot_mute(client, owned):
    slug, _, viewer = owned
    assert post(client, f"/api/rooms/{slug}/mute", {"client_id": "c-owner", "seconds": 60}, **viewer).status_code == 403


def test_a_password_room_chat_needs_a_member_token(client):
    created = post(client, "/api/rooms", {"name": "Secret", "password": "hunter2"}).json()
    slug = created["room"]
    client.cookies.clear()
    assert say(client, "hi", slug=slug).status_code == 401
    assert client.get(f"/api/rooms/{slug}/chat").status_code == 401
    joined = post(client, f"/api/rooms/{slug}/join", {"client_id": "c-a", "password": "hunter2"}).json()
    client.cookies.clear()
    token = {"Authorization": f"Bearer {joined['member_token']}"}
    assert say(client, "hi", slug=slug, **token).status_code == 201
    assert [m["text"] for m in history(client, slug=slug, **token)] == ["hi"]
