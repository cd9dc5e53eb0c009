"""The end-of-media scheduler: the step itself, in-process, and on two real server processes sharing Redis."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rooms.models import Room, RoomEvent
from rooms.queue import room_queue_command
from rooms.scheduler import EndScheduler
from rooms.services import now_ms, room_apply_command
from rooms.state import Command, Media, RoomState
from tests.support.servers import LiveServer, RedisServer, migrate, server_env

DEMO_URL = "/media/demo.webm"  # 60 s


def play(slug: str, position: float, at_ms: float) -> RoomState:
    result = room_apply_command(slug=slug, command=Command(type="play", client_id="c-a", client_ms=at_ms,
                                                           position=position), at_ms=at_ms)
    assert isinstance(result, RoomState), result
    return result


@pytest.mark.django_db
def test_a_noted_end_is_acted_on_once_it_has_come():
    scheduler = EndScheduler()
    playing = play("demo", 0.0, now_ms() - 61_000)
    scheduler.note(playing)
    assert scheduler.scheduled("demo") == (playing.end_ms(), playing.version)
    made = scheduler.run_due()
    assert [state.version for state in made] == [playing.version + 1]
    assert not made[0].playing and made[0].position == 60.0
    assert scheduler.scheduled("demo") is None  # paused: nothing more to do
    assert scheduler.run_due() == []


@pytest.mark.django_db
def test_nothing_happens_before_the_end():
    scheduler = EndScheduler()
    playing = play("demo", 0.0, now_ms())
    scheduler.note(playing)
    assert scheduler.run_due() == []
    assert Room.objects.get(slug="demo").version == playing.version


@pytest.mark.django_db
def test_an_older_version_never_replaces_a_newer_schedule():
    scheduler = EndScheduler()
    first = play("demo", 0.0, now_ms() - 1_000)
    second = play("demo", 30.0, now_ms())
    scheduler.note(second)
    scheduler.note(first)
    assert scheduler.scheduled("demo") == (second.end_ms(), second.version)


@pytest.mark.django_db
def test_an_end_that_another_version_replaced_is_rescheduled_from_the_database():
    scheduler = EndScheduler()
    old = play("demo", 0.0, now_ms() - 61_000)
    scheduler.note(old)
    newer = play("demo", 10.0, now_ms())  # committed "by another process": this scheduler was not told
    assert scheduler.run_due() == []
    assert Room.objects.get(slug="demo").version == newer.version
    assert scheduler.scheduled("demo") == (newer.end_ms(), newer.version)


@pytest.mark.django_db
def test_a_rescan_finds_playing_rooms_and_forgets_paused_ones():
    scheduler = EndScheduler()
    playing = play("demo", 0.0, now_ms())
    scheduler.rescan()
    assert scheduler.scheduled("demo") == (playing.end_ms(), playing.version)
    room_apply_command(slug="demo", command=Command(type="pause", client_id="c-a", client_ms=now_ms(),
                                                    position=3.0))
    scheduler.rescan()
    assert scheduler.scheduled("demo") is None


@pytest.mark.django_db
def test_the_end_advances_to_the_first_queue_item_with_a_scheduled_start():
    scheduler = EndScheduler()
    clip = Media(url="/media/clip.webm", title="Clip", duration=5.0, source="upload")
    room_queue_command(slug="demo", command=Command(type="enqueue", client_id="c-b", client_ms=0.0, url=clip.url,
                                                    media=clip))
    playing = play("demo", 0.0, now_ms() - 61_000)
    scheduler.note(playing)
    (advanced,) = scheduler.run_due()
    assert advanced.media == clip and advanced.playing and advanced.position == 0.0
    assert advanced.changed_by is None and advanced.anchor_ms > advanced.changed_ms
    assert advanced.queue == ()
    assert scheduler.scheduled("demo") == (advanced.end_ms(), advanced.version)
    assert RoomEvent.objects.filter(room__slug="demo", command__type="end_of_media").count() == 1


# Two real processes on one database and a real Redis, nobody connected.


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer, Path]]:
    redis = RedisServer(data_dir=tmp_path).start()
    env = server_env(tmp_path, REDIS_URL=redis.url, VSYNC_ADDRESS_LIMITS="off")
    migrate(env)
    servers = [LiveServer(env=env), LiveServer(env=env)]
    try:
        for server in servers:
            server.start()
        yield servers[0], servers[1], tmp_path / "db.sqlite3"
    finally:
        for server in servers:
            server.stop()
        redis.stop()


def create_room(server: LiveServer, name: str) -> str:
    response = httpx.post(f"{server.url}/api/rooms", json={"name": name, "media_url": DEMO_URL}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["room"]


def command(server: LiveServer, slug: str, body: dict) -> dict:
    response = httpx.post(f"{server.url}/api/rooms/{slug}/commands", json={"client_id": "c-t", **body}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["state"]


def stored(db: Path, slug: str) -> tuple[int, int]:
    """(version, end_of_media events) straight from the database: no viewer, no HTTP."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as connection:
        version = connection.execute("SELECT version FROM rooms_room WHERE slug = ?", (slug,)).fetchone()[0]
        ends = connection.execute(
            "SELECT COUNT(*) FROM rooms_roomevent e JOIN rooms_room r ON r.id = e.room_id "
            "WHERE r.slug = ? AND json_extract(e.command, '$.type') = 'end_of_media'", (slug,)).fetchone()[0]
    return version, ends


def state_of(db: Path, slug: str) -> dict:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as connection:
        return json.loads(connection.execute("SELECT state FROM rooms_room WHERE slug = ?", (slug,)).fetchone()[0])


def wait_for_version(db: Path, slug: str, version: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stored(db, slug)[0] >= version:
            return
        time.sleep(0.02)
    raise AssertionError(f"room {slug} did not reach version {version} within {timeout_s} s")


@pytest.mark.redis
def test_two_processes_make_exactly_one_version_per_end_with_nobody_connected(pair):
    a, b, db = pair
    queued, alone = create_room(a, "queued end"), create_room(b, "lonely end")
    command(b, queued, {"type": "enqueue", "url": DEMO_URL})
    # Commands on both processes: each end is known to one by its signal, to the other by its rescan.
    first = command(a, queued, {"type": "play", "client_ms": now_ms(), "position": 58.5})
    second = command(b, alone, {"type": "play", "client_ms": now_ms(), "position": 58.5})
    for slug, state in ((queued, first), (alone, second)):
        wait_for_version(db, slug, state["version"] + 1, timeout_s=10)
    advanced, paused = state_of(db, queued), state_of(db, alone)
    # changed_ms: the server's accept time of the new version.
    assert 0 <= advanced["changed_ms"] - RoomState.from_dict(first).end_ms() < 1_000
    assert 0 <= paused["changed_ms"] - RoomState.from_dict(second).end_ms() < 1_000
    assert advanced["changed_by"] is None and advanced["playing"] and advanced["position"] == 0.0
    assert advanced["media"]["url"] == DEMO_URL and advanced["queue"] == []
    assert advanced["anchor_ms"] > advanced["changed_ms"]
    assert paused["changed_by"] is None and not paused["playing"] and paused["position"] == 60.0
    time.sleep(2.5)  # longer than a rescan: a second process acting late would show now
    assert stored(db, queued) == (first["version"] + 1, 1)
    assert stored(db, alone) == (second["version"] + 1, 1)


@pytest.mark.redis
def test_a_process_that_never_saw_the_command_advances_when_the_other_is_gone(pair):
    a, b, db = pair
    slug = create_room(a, "orphaned end")
    state = command(a, slug, {"type": "play", "client_ms": now_ms(), "position": 56.0})
    a.stop()  # the process that committed the play (and had it from its signal) is gone
    end_ms = RoomState.from_dict(state).end_ms()
    wait_for_version(db, slug, state["version"] + 1, timeout_s=15)
    assert 0 <= state_of(db, slug)["changed_ms"] - end_ms < 1_000
    assert stored(db, slug) == (state["version"] + 1, 1)
    assert httpx.get(f"{b.url}/api/rooms/{slug}/state", timeout=10).json()["position"] == 60.0
