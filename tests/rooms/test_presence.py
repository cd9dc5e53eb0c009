"""Presence: reports, the member list, counts, and the start lead derived from round trips."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from rooms.intake import presence_submit
from rooms.models import START_LEAD_MAX_MS, START_LEAD_MIN_MS, Member, Room
from rooms.presence import (
    MEMBER_AWAY_S,
    RTT_CAP_MS,
    START_LEAD_MARGIN_MS,
    STARTUP_CAP_MS,
    STARTUP_DEFAULT_MS,
    room_member_counts,
    room_start_lead_ms,
)
from rooms.services import room_apply_command
from rooms.state import Command

# A member that does not report its start-up latency is assumed to take the default.
MARGIN = STARTUP_DEFAULT_MS + START_LEAD_MARGIN_MS

pytestmark = pytest.mark.django_db


def report(client_id="c-1", **fields):
    body = {"client_id": client_id, "name": "Ann", "transport": "ws", "rtt_ms": 40.0, "status": "playing",
            "drift_ms": 3.5}
    body.update(fields)
    return body


def post(client, slug, body, **headers):
    return client.post(f"/api/rooms/{slug}/presence", json.dumps(body), content_type="application/json",
                       headers=headers)


def test_a_report_lists_the_member_with_the_start_lead(client):
    response = post(client, "demo", report())
    assert response.status_code == 200
    body = response.json()
    assert [m["name"] for m in body["members"]] == ["Ann"]
    member = body["members"][0]
    assert member["transport"] == "ws"
    assert member["status"] == "playing"
    assert member["drift_ms"] == 3.5
    assert body["start_lead_ms"] == 40 + MARGIN


def test_members_endpoint_answers_the_same_list(client):
    post(client, "demo", report("c-1"))
    post(client, "demo", report("c-2", name="Bob", transport="sse"))
    body = client.get("/api/rooms/demo/members").json()
    assert sorted(m["name"] for m in body["members"]) == ["Ann", "Bob"]
    assert body["buffering_policy"] == "ignore"


def test_a_second_report_updates_the_same_member(client):
    post(client, "demo", report(status="playing"))
    post(client, "demo", report(status="buffering"))
    assert Member.objects.get().status == "buffering"


@pytest.mark.parametrize("field,value", [("transport", "carrier-pigeon"), ("status", "dancing"),
                                         ("rtt_ms", -1), ("client_id", ""), ("name", "x" * 41)])
def test_an_invalid_report_is_400_naming_the_field(client, field, value):
    response = post(client, "demo", report(**{field: value}))
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_unknown_room_is_404(client):
    assert post(client, "nope", report()).status_code == 404
    assert client.get("/api/rooms/nope/members").status_code == 404


def test_cross_origin_report_is_refused(client):
    assert post(client, "demo", report(), Origin="https://evil.example").status_code == 403


def test_member_counts_include_only_present_members(client):
    post(client, "demo", report("c-1"))
    post(client, "demo", report("c-2"))
    Member.objects.filter(client_id="c-2").update(last_seen=timezone.now() - timedelta(seconds=MEMBER_AWAY_S + 1))
    assert room_member_counts(["demo"]) == {"demo": 1}
    assert client.get("/api/rooms").json()["rooms"][0]["members"] == 1


def test_a_silent_member_is_listed_as_away(client):
    post(client, "demo", report("c-1"))
    Member.objects.update(last_seen=timezone.now() - timedelta(seconds=MEMBER_AWAY_S + 1))
    assert client.get("/api/rooms/demo/members").json()["members"][0]["status"] == "away"


def test_start_lead_follows_the_slowest_member_within_bounds():
    room = Room.objects.get(slug="demo")
    assert room_start_lead_ms(room) == room.start_lead_ms  # nobody reporting
    presence_submit(slug="demo", data=report("c-1", rtt_ms=1.0))
    assert room_start_lead_ms(room) == max(START_LEAD_MIN_MS, 1 + MARGIN)
    presence_submit(slug="demo", data=report("c-2", rtt_ms=500.0))
    assert room_start_lead_ms(room) == 500 + MARGIN
    presence_submit(slug="demo", data=report("c-3", rtt_ms=50_000.0))
    # A reported round trip counts at most RTT_CAP_MS: a stalled (or lying) member cannot push starts away.
    assert room_start_lead_ms(room) == min(START_LEAD_MAX_MS, RTT_CAP_MS + MARGIN)


def test_start_lead_covers_the_slowest_members_start_up_within_bounds():
    room = Room.objects.get(slug="demo")
    presence_submit(slug="demo", data=report("c-1", rtt_ms=100.0))
    presence_submit(slug="demo", data={**report("c-2", rtt_ms=50.0), "startup_ms": 400.0})
    assert room_start_lead_ms(room) == 50 + 400 + START_LEAD_MARGIN_MS
    presence_submit(slug="demo", data={**report("c-2", rtt_ms=50.0), "startup_ms": 1e9})
    assert room_start_lead_ms(room) == min(START_LEAD_MAX_MS, 50 + STARTUP_CAP_MS + START_LEAD_MARGIN_MS)


def test_a_play_is_scheduled_by_the_derived_lead():
    presence_submit(slug="demo", data=report("c-1", rtt_ms=200.0))
    state = room_apply_command(slug="demo", command=Command(type="play", client_id="c-1", client_ms=1.0,
                                                            position=0.0), at_ms=10_000.0)
    assert state.anchor_ms == 10_000.0 + 200 + MARGIN


def test_policy_can_be_edited_from_the_page(client):
    response = client.post("/api/rooms/demo/policy", json.dumps({"buffering_policy": "wait",
                                                                  "buffering_timeout_s": 5}),
                           content_type="application/json")
    assert response.status_code == 200
    room = Room.objects.get(slug="demo")
    assert (room.buffering_policy, room.buffering_timeout_s) == ("wait", 5)


def test_policy_rejects_unknown_values_and_locked_rooms(client):
    bad = client.post("/api/rooms/demo/policy", json.dumps({"buffering_policy": "panic"}),
                      content_type="application/json")
    assert bad.status_code == 400
    Room.objects.filter(slug="demo").update(control="locked")
    locked = client.post("/api/rooms/demo/policy", json.dumps({"buffering_policy": "wait"}),
                         content_type="application/json")
    assert locked.status_code == 403
