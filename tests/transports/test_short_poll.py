"""Short polling on a real daphne server: ETag, 304, 404, and the demo room after migrate."""

from __future__ import annotations

import time
import uuid

import httpx


def new_room(server) -> str:
    return httpx.post(f"{server.url}/api/rooms", json={"name": f"poll-{uuid.uuid4().hex[:8]}"}).json()["room"]


def test_state_has_an_etag_and_a_matching_if_none_match_is_304(live_server_proc):
    slug = new_room(live_server_proc)
    response = httpx.get(f"{live_server_proc.url}/api/rooms/{slug}/state")
    assert response.status_code == 200
    assert response.headers["ETag"] == '"1"'
    assert response.json()["version"] == 1
    not_modified = httpx.get(f"{live_server_proc.url}/api/rooms/{slug}/state", headers={"If-None-Match": '"1"'})
    assert not_modified.status_code == 304
    assert not_modified.content == b""


def test_a_new_version_changes_the_etag(live_server_proc):
    slug = new_room(live_server_proc)
    url = f"{live_server_proc.url}/api/rooms/{slug}"
    httpx.get(f"{url}/state")  # this process now holds the room's newest snapshot
    command = {"type": "seek", "client_id": "c-etag", "client_ms": time.time() * 1000, "position": 3.0}
    assert httpx.post(f"{url}/commands", json=command).status_code == 200
    response = httpx.get(f"{url}/state", headers={"If-None-Match": '"1"'})
    assert response.status_code == 200
    assert response.headers["ETag"] == '"2"'
    assert response.json()["position"] == 3.0


def test_state_of_unknown_room_is_404(live_server_proc):
    response = httpx.get(f"{live_server_proc.url}/api/rooms/nope-{uuid.uuid4().hex[:6]}/state")
    assert response.status_code == 404
    assert response.json()["error"]


def test_demo_room_exists_after_migrate_playing_the_bundled_video(live_server_proc):
    state = httpx.get(f"{live_server_proc.url}/api/rooms/demo/state").json()
    assert state["media"]["url"] == "/media/demo.webm"
    assert state["media"]["source"] == "demo"
    media = httpx.get(f"{live_server_proc.url}/media/demo.webm", headers={"Range": "bytes=0-3"})
    assert media.status_code == 206
