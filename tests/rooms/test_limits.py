"""CONTRACT v2 "limits per address": commands, presence and room creation; the address behind a proxy."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django.test import RequestFactory

from rooms import limits
from rooms.api.http import client_address
from rooms.limits import TokenBuckets

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """The buckets' clock, standing still unless a test moves it (a loaded machine must not refill them)."""
    frozen = Clock()
    monkeypatch.setattr("rooms.limits.time.monotonic", frozen)
    return frozen


def post(client, url, data, **extra):
    return client.post(url, json.dumps(data), content_type="application/json", **extra)


def test_commands_per_address_allow_a_burst_of_300_and_200_a_second_sustained(clock):
    buckets = TokenBuckets(rate=300.0, burst=300.0)
    assert all(buckets.allow("10.0.0.1") for _ in range(300))
    assert buckets.take("10.0.0.1") == pytest.approx(1 / 300)
    assert buckets.allow("10.0.0.2")  # another address has its own bucket
    for _second in range(5):
        clock.now += 1.0
        assert all(buckets.allow("10.0.0.1") for _ in range(200))


def test_the_command_limit_per_address_spans_client_ids_and_answers_429_with_retry_after(client, clock,
                                                                                         monkeypatch):
    # Wiring, with a small burst: 300 real requests would take the test a while.
    monkeypatch.setattr(limits.ADDRESS_COMMANDS, "burst", 3.0)
    limits.ADDRESS_COMMANDS.clear()
    statuses = []
    for n in range(4):
        response = post(client, "/api/rooms/demo/commands", {"type": "seek", "client_id": f"c-{n}",
                                                             "client_ms": time.time() * 1000, "position": 1.0})
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429]
    assert response.json()["error"] and int(response["Retry-After"]) >= 1
    other = post(client, "/api/rooms/demo/commands", {"type": "seek", "client_id": "c-9",
                                                      "client_ms": time.time() * 1000, "position": 1.0},
                 REMOTE_ADDR="10.1.1.1")
    assert other.status_code == 200


def test_limits_off_lets_one_address_go_on(client, clock, monkeypatch, settings):
    settings.VSYNC_ADDRESS_LIMITS = False
    monkeypatch.setattr(limits.ADDRESS_COMMANDS, "burst", 1.0)
    limits.ADDRESS_COMMANDS.clear()
    for n in range(3):
        assert post(client, "/api/rooms/demo/commands", {"type": "seek", "client_id": f"c-{n}",
                                                         "client_ms": time.time() * 1000, "position": 1.0}
                    ).status_code == 200


def test_room_creation_allows_30_a_minute_then_429_and_10_a_minute_after(client, clock):
    statuses = [post(client, "/api/rooms", {"name": f"r{n}"}).status_code for n in range(31)]
    assert statuses == [201] * 30 + [429]
    refused = post(client, "/api/rooms", {"name": "one more"})
    assert refused.json()["error"] and int(refused["Retry-After"]) >= 1
    clock.now += 60.0
    assert [post(client, "/api/rooms", {"name": f"s{n}"}).status_code for n in range(10)] == [201] * 10


def test_presence_allows_10_a_second_per_client_and_100_per_address(client, clock):
    def report(client_id, **extra):
        return post(client, "/api/rooms/demo/presence", {"client_id": client_id, "transport": "poll",
                                                         "status": "paused"}, **extra)

    assert [report("c-1").status_code for _ in range(11)] == [200] * 10 + [429]
    clock.now += 1.0
    assert report("c-1").status_code == 200  # 2 a second is always allowed
    limits.reset_all()
    statuses = [report(f"c-{n % 20}", REMOTE_ADDR="10.2.2.2").status_code for n in range(101)]
    assert statuses == [200] * 100 + [429]


def test_the_buckets_memory_is_bounded(clock):
    buckets = TokenBuckets(rate=1.0, burst=1.0, max_keys=100)
    for n in range(1000):
        buckets.take(f"10.0.{n // 256}.{n % 256}")
    assert len(buckets) <= 100


@pytest.mark.parametrize(("remote", "forwarded", "proxies", "expected"), [
    ("203.0.113.5", "", [], "203.0.113.5"),
    ("203.0.113.5", "198.51.100.1", [], "203.0.113.5"),  # not a trusted proxy: its header is the client's word
    ("127.0.0.1", "6.6.6.6, 198.51.100.1", ["127.0.0.1"], "198.51.100.1"),  # the last hop, which our proxy added
    ("10.0.0.2", "198.51.100.1", ["10.0.0.0/8"], "198.51.100.1"),
    ("127.0.0.1", "not-an-address", ["127.0.0.1"], "127.0.0.1"),
])
def test_the_address_is_the_last_forwarded_hop_only_behind_a_trusted_proxy(settings, remote, forwarded, proxies,
                                                                           expected):
    settings.VSYNC_TRUSTED_PROXIES = proxies
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


def test_a_room_is_bounded_in_members(client, clock, monkeypatch, settings):
    settings.VSYNC_ADDRESS_LIMITS = False
    monkeypatch.setattr("rooms.presence.MAX_MEMBERS_PER_ROOM", 5)
    slug = post(client, "/api/rooms", {"name": f"small {uuid.uuid4().hex[:4]}"}).json()["room"]
    for n in range(5):
        assert post(client, f"/api/rooms/{slug}/join", {"client_id": f"c-{n}"}).status_code == 200
    full = post(client, f"/api/rooms/{slug}/join", {"client_id": "c-late"})
    assert full.status_code == 429 and full.json()["error"]
    client.cookies.clear()
    assert post(client, f"/api/rooms/{slug}/presence", {"client_id": "c-late", "transport": "ws",
                                                        "status": "paused"}).status_code == 429
