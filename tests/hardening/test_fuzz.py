"""Fuzz every JSON endpoint: no input gets a 5xx, a refusal is JSON with an error, and a refusal changes nothing."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rooms.limits import reset_all
from rooms.models import ChatMessage, Member, Room, RoomEvent, Upload

pytestmark = pytest.mark.django_db

POST_PATHS = ["/api/rooms", "/api/rooms/demo/commands", "/api/rooms/demo/presence", "/api/rooms/demo/policy",
              "/api/rooms/demo/media/error", "/api/rooms/demo/join", "/api/rooms/demo/settings",
              "/api/rooms/demo/roles", "/api/rooms/demo/kick", "/api/rooms/demo/chat", "/api/rooms/demo/media",
              "/api/rooms/no-such-room/commands", "/api/rooms/Movie_Night/commands", "/api/nowhere"]
GET_PATHS = ["/api/rooms", "/api/rooms/demo/members", "/api/rooms/demo/chat", "/api/time", "/api/nowhere",
             "/api/rooms/demo/commands"]
KEYS = ["type", "client_id", "client_ms", "position", "rate", "url", "name", "media_url", "password", "listed",
        "control", "status", "transport", "rtt_ms", "drift_ms", "text", "role", "ban", "buffering",
        "buffering_timeout_s", "owner_token", "item", "to", "after", "timeout"]
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=80) | st.sampled_from(
    ["\x00", "a\x00b", "\u202e", "\x07\x1b", "play", "seek", "media", "x" * 70, "/media/demo.webm",
     "http://127.0.0.1/", "http://localhost:1/a.webm", "file:///etc/passwd", "NaN", "owner", "host"])
NUMBER = st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=True, allow_infinity=True)
SCALAR = st.none() | st.booleans() | NUMBER | TEXT
VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                     max_leaves=12)
OBJECT = st.dictionaries(st.sampled_from(KEYS) | TEXT, VALUE, max_size=8)


def _encode(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


BODY = (OBJECT.map(_encode) | VALUE.map(_encode) | st.binary(max_size=200)
        | st.sampled_from([b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000, b"", b"{",
                           b'{"name": "\\u0000"}', b'{"client_id": "a\\u0000"}', b"\xff\xfe", b"1e999999"]))
QUERY = st.dictionaries(st.sampled_from(["after", "timeout", "since", "token", "transport", "x"]),
                        TEXT | NUMBER.map(str), max_size=3)


def _snapshot() -> tuple[object, ...]:
    return (list(Room.objects.values_list("slug", "version", "name", "control", "listed", "password_hash")),
            RoomEvent.objects.count(), ChatMessage.objects.count(), Upload.objects.count(),
            list(Member.objects.values_list("client_id", "role", "name")))


def _check(response: object, before: tuple[object, ...]) -> None:
    status = response.status_code  # type: ignore[attr-defined]
    assert status < 500, (status, response.content[:300])  # type: ignore[attr-defined]
    if status >= 400:
        assert response["Content-Type"].startswith("application/json"), response.content[:200]  # type: ignore[index]
        assert "error" in response.json()  # type: ignore[attr-defined]
        assert _snapshot() == before, "a refused request changed something"


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


@FUZZ
@given(path=st.sampled_from(POST_PATHS), body=BODY,
       content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]))
def test_no_post_body_gets_a_5xx_or_changes_anything_when_refused(path: str, body: bytes, content_type: str) -> None:
    reset_all()
    before = _snapshot()
    response = Client().generic("POST", path, body, content_type=content_type, REMOTE_ADDR="192.0.2.10")
    _check(response, before)


@FUZZ
@given(path=st.sampled_from(GET_PATHS), query=QUERY)
def test_no_query_string_gets_a_5xx(path: str, query: dict[str, str]) -> None:
    before = _snapshot()
    response = Client().get(path, query, REMOTE_ADDR="192.0.2.11")
    _check(response, before)


@FUZZ
@given(path=st.sampled_from(POST_PATHS + GET_PATHS), method=st.sampled_from(["PUT", "DELETE", "PATCH", "OPTIONS"]))
def test_other_methods_get_json_errors(path: str, method: str) -> None:
    before = _snapshot()
    response = Client().generic(method, path, b"{}", content_type="application/json")
    _check(response, before)
