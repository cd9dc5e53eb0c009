"""Slug and name rules, and the origin and Host rules over HTTP."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from rooms.api.origins import host_allowed, origin_allowed
from rooms.names import clean_name, is_slug, slug_from_name

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("name", "slug"), [("movie_night", "movie-night"), ("Movie Night!", "movie-night"),
                                            ("Café Ünïcode", "cafe-unicode"), ("___", "room"), ("x" * 100, "x" * 56)])
def test_slugs_are_derived_within_the_contract_pattern(name: str, slug: str) -> None:
    assert slug_from_name(name) == slug
    assert is_slug(slug)


def test_a_created_room_answers_on_its_slug() -> None:
    client = Client()
    created = client.post("/api/rooms", {"name": "movie_night"}, content_type="application/json")
    assert created.status_code == 201
    slug = created.json()["room"]
    assert slug == "movie-night"
    assert client.get(f"/r/{slug}").status_code == 200


@pytest.mark.parametrize("raw", ["a\x07b", "a\x1bb", "a\u202eb", "a\u200bb", "\x00ab"])
def test_names_lose_control_and_format_characters(raw: str) -> None:
    assert clean_name(raw, 40) == "ab"


def test_a_room_name_of_only_controls_is_refused() -> None:
    response = Client().post("/api/rooms", {"name": "\u202e\x07"}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["field"] == "name"


def test_nul_in_a_client_id_is_a_400_with_its_field() -> None:
    body = {"type": "pause", "client_id": "a\x00b", "client_ms": 1.0, "position": 0}
    response = Client().post("/api/rooms/demo/commands", body, content_type="application/json")
    assert (response.status_code, response.json()["field"]) == (400, "client_id")


@pytest.mark.parametrize(("origin", "scheme", "host", "allowed"), [
    (None, "http", "127.0.0.1:8000", True),
    ("http://127.0.0.1:8000", "http", "127.0.0.1:8000", True),
    ("http://localhost", "http", "localhost:80", True),
    ("http://127.0.0.1:9999", "http", "127.0.0.1:8000", False),  # another program on the viewer's machine
    ("https://127.0.0.1:8000", "http", "127.0.0.1:8000", False),  # another scheme
    ("http://evil.example", "http", "127.0.0.1:8000", False),
    ("null", "http", "127.0.0.1:8000", False),
    ("http://127.0.0.1:8000", "http", "evil.example", False),  # the Host itself is not ours
    ("http://[::1]:8000", "ws", "[::1]:8000", True),
])
def test_the_full_origin_is_compared(origin: str | None, scheme: str, host: str, allowed: bool) -> None:
    assert origin_allowed(origin, scheme=scheme, host=host) is allowed


@override_settings(CSRF_TRUSTED_ORIGINS=["https://*.example.org", "https://watch.example.com"])
def test_trusted_origins_match_scheme_host_and_port() -> None:
    assert origin_allowed("https://a.example.org", scheme="http", host="127.0.0.1:8000")
    assert origin_allowed("https://watch.example.com:443", scheme="http", host="127.0.0.1:8000")
    assert not origin_allowed("http://watch.example.com", scheme="http", host="127.0.0.1:8000")
    assert not origin_allowed("https://watch.example.com:8443", scheme="http", host="127.0.0.1:8000")


def test_host_rule() -> None:
    assert host_allowed("localhost:8000") and host_allowed("[::1]:8000")
    assert not host_allowed("evil.example") and not host_allowed("") and not host_allowed(None)


def test_a_cross_port_post_is_refused_over_http() -> None:
    client = Client(HTTP_HOST="127.0.0.1:8000")
    body = {"type": "pause", "client_id": "o", "client_ms": 1.0, "position": 0}
    refused = client.post("/api/rooms/demo/commands", body, content_type="application/json",
                          HTTP_ORIGIN="http://127.0.0.1:9999")
    assert refused.status_code == 403
    same = client.post("/api/rooms/demo/commands", body, content_type="application/json",
                       HTTP_ORIGIN="http://127.0.0.1:8000")
    assert same.status_code in (200, 409)


def test_api_errors_are_json_and_pages_have_a_csp() -> None:
    client = Client()
    missing = client.get("/api/nowhere")
    assert missing.status_code == 404 and missing.json()["error"] and missing["X-Request-ID"]
    wrong_method = client.delete("/api/rooms/demo/commands")
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()
    page = client.get("/")
    assert "script-src 'self'" in page["Content-Security-Policy"]
    assert page["X-Content-Type-Options"] == "nosniff"
