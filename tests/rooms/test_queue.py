"""The queue: pure transitions (enqueue, dequeue, move, next, the end of the media) and the service."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rooms.commands import command_from_data
from rooms.models import Room, RoomEvent
from rooms.queue import room_advance_at_end, room_queue_command
from rooms.services import now_ms, room_apply_command
from rooms.state import (
    MAX_QUEUE_ITEMS,
    Command,
    InvalidCommand,
    Media,
    QueueItem,
    Rejected,
    RoomState,
    Subtitle,
    apply,
    reach_end,
)
from tests.support.media_site import DEMO_WEBM

NOW = 1_000_000_000.0
LEAD = 300.0
DEMO = Media(url="/media/demo.webm", title="Demo", duration=60.0, source="demo",
             subtitles=(Subtitle(url="/media/subtitles/a.vtt", label="English", lang="en"),))
CLIP = Media(url="/media/clip.webm", title="Clip", duration=10.0, source="upload")


def initial(**changes) -> RoomState:
    state = RoomState.initial(room="r", media=DEMO, now_ms=NOW - 10_000)
    return dataclasses.replace(state, **changes)


def item(item_id: int, media: Media = CLIP) -> QueueItem:
    return QueueItem(id=item_id, media=media, added_by="c-a")


def queued(*ids: int, **changes) -> RoomState:
    return initial(queue=tuple(item(i) for i in ids), **changes)


def cmd(type: str, client_id: str = "c-a", client_ms: float = 0.0, **fields) -> Command:
    return Command(type=type, client_id=client_id, client_ms=client_ms, **fields)


def accepted(state: RoomState, command: Command, now_ms: float = NOW) -> RoomState:
    result = apply(state, command, now_ms, start_lead_ms=LEAD)
    assert isinstance(result, RoomState), result
    return result


def ids(state: RoomState) -> list[int]:
    return [queue_item.id for queue_item in state.queue]


def test_a_new_room_has_an_empty_queue_on_the_wire():
    assert initial().to_dict()["queue"] == []


def test_enqueue_appends_an_item_with_its_media_and_author():
    state = accepted(initial(), cmd("enqueue", url=CLIP.url, media=CLIP, item=7))
    assert state.to_dict()["queue"] == [{"id": 7, "url": CLIP.url, "title": "Clip", "duration": 10.0,
                                         "source": "upload", "added_by": "c-a"}]
    assert state.version == 2 and state.changed_by == "c-a" and state.changed_ms == NOW


def test_queue_commands_are_never_stale_and_keep_the_ordering_key():
    later = initial(client_ms=NOW - 1.0, changed_by="c-z")
    state = accepted(later, cmd("enqueue", client_ms=NOW - 60_000, url=CLIP.url, media=CLIP, item=1))
    assert state.client_ms == later.client_ms
    # A playback command stamped after the last playback command is still accepted.
    assert isinstance(apply(state, cmd("pause", client_ms=NOW - 0.5, position=1.0), NOW), RoomState)


def test_a_full_queue_refuses_another_item():
    state = queued(*range(1, MAX_QUEUE_ITEMS + 1))
    result = apply(state, cmd("enqueue", url=CLIP.url, media=CLIP, item=999), NOW)
    assert isinstance(result, Rejected) and result.reason == "invalid"


def test_dequeue_removes_the_item():
    assert ids(accepted(queued(1, 2, 3), cmd("dequeue", item=2))) == [1, 3]


@pytest.mark.parametrize("type, fields", [("dequeue", {}), ("move", {"to": 0})])
def test_dequeue_or_move_of_an_unknown_item_is_invalid_naming_item(type, fields):
    result = apply(queued(1, 2), cmd(type, item=5, **fields), NOW)
    assert isinstance(result, Rejected) and result.reason == "invalid" and result.field == "item"


@pytest.mark.parametrize("to, expected", [(0, [3, 1, 2]), (1, [1, 3, 2]), (2, [1, 2, 3]), (99, [1, 2, 3]),
                                          (-5, [3, 1, 2])])
def test_move_places_the_item_at_the_clamped_index(to, expected):
    assert ids(accepted(queued(1, 2, 3), cmd("move", item=3, to=to))) == expected


def test_next_with_an_empty_queue_is_invalid_naming_item():
    result = apply(initial(), cmd("next"), NOW)
    assert isinstance(result, Rejected) and result.field == "item"


def test_next_while_paused_starts_the_first_item_paused_at_zero_without_subtitles():
    state = accepted(queued(1, 2, position=30.0), cmd("next"))
    assert state.media == CLIP and state.media.subtitles == ()
    assert ids(state) == [2]
    assert (state.playing, state.position, state.anchor_ms) == (False, 0.0, NOW)


def test_next_while_playing_starts_the_first_item_playing_with_a_scheduled_start():
    playing = accepted(queued(1), cmd("play", client_ms=NOW - 10, position=30.0))
    state = accepted(playing, cmd("next"), NOW + 1_000)
    assert state.playing and state.position == 0.0
    assert state.anchor_ms == NOW + 1_000 + LEAD
    assert state.media.to_dict()["subtitles"] == []


def test_end_of_media_starts_the_first_item_from_zero_by_the_server():
    playing = accepted(queued(4, 5), cmd("play", client_ms=NOW - 10, position=55.0))
    end_ms = playing.end_ms()
    assert end_ms == pytest.approx(NOW + LEAD + 5_000)
    assert reach_end(playing, end_ms - 1, start_lead_ms=LEAD) is None
    state = reach_end(playing, end_ms + 20, start_lead_ms=LEAD)
    assert state is not None
    assert (state.media, ids(state), state.playing, state.position) == (CLIP, [5], True, 0.0)
    assert state.changed_by is None and state.anchor_ms == end_ms + 20 + LEAD
    # A play meant for the media that ended (stamped before its end) is stale now.
    late = apply(state, cmd("play", client_ms=end_ms - 100, position=50.0), end_ms + 50)
    assert isinstance(late, Rejected) and late.reason == "stale"


def test_end_of_media_with_an_empty_queue_pauses_at_the_duration():
    playing = accepted(initial(), cmd("play", client_ms=NOW - 10, position=59.0))
    state = reach_end(playing, playing.end_ms() + 5, start_lead_ms=LEAD)
    assert state is not None and not state.playing and state.position == 60.0


def test_a_paused_room_or_unknown_duration_has_no_end():
    assert initial().end_ms() is None
    unknown = accepted(initial(media=CLIP.__class__(url="/x.webm")), cmd("play", client_ms=NOW - 10, position=0.0))
    assert unknown.end_ms() is None and reach_end(unknown, NOW + 10**9) is None


def test_the_end_follows_the_rate():
    playing = accepted(initial(rate=2.0), cmd("play", client_ms=NOW - 10, position=50.0))
    assert playing.end_ms() == pytest.approx(NOW + LEAD + 5_000)


def test_queue_survives_the_wire_form():
    state = accepted(queued(1, 2), cmd("enqueue", url="https://v/x", media=Media(url="https://s/1", source="youtube",
                                                                                  title="T", thumbnail="https://t"),
                                       item=3, page_url="https://v/x"))
    assert RoomState.from_dict(state.to_dict()) == state
    assert state.to_dict()["queue"][2]["page_url"] == "https://v/x"


queue_commands = st.one_of(
    st.builds(lambda i: cmd("enqueue", url=CLIP.url, media=CLIP, item=i), st.integers(1, 10**6)),
    st.builds(lambda i: cmd("dequeue", item=i), st.integers(0, 30)),
    st.builds(lambda i, to: cmd("move", item=i, to=to), st.integers(0, 30), st.integers(-5, 40)),
    st.just(cmd("next")),
)


@given(st.lists(queue_commands, max_size=40))
def test_any_sequence_of_queue_commands_keeps_the_queue_bounded_and_the_key_unchanged(commands):
    state = queued(1, 2, 3)
    for number, command in enumerate(commands):
        result = apply(state, command, NOW + number, start_lead_ms=LEAD)
        if isinstance(result, Rejected):
            assert result.reason == "invalid" and result.state == state
            continue
        assert result.version == state.version + 1
        assert result.client_ms == state.client_ms
        assert len(result.queue) <= MAX_QUEUE_ITEMS
        if command.type in ("move",):
            assert sorted(ids(result)) == sorted(ids(state))
        state = result


def test_the_schema_accepts_queue_commands_without_client_ms():
    command = command_from_data({"type": "move", "client_id": "c-a", "item": 3, "to": 0})
    assert (command.type, command.item, command.to) == ("move", 3, 0)


@pytest.mark.parametrize("body, field", [
    ({"type": "dequeue", "client_id": "c-a"}, "item"),
    ({"type": "dequeue", "client_id": "c-a", "item": "3"}, "item"),
    ({"type": "dequeue", "client_id": "c-a", "item": True}, "item"),
    ({"type": "move", "client_id": "c-a", "item": 1}, "to"),
    ({"type": "move", "client_id": "c-a", "item": 1, "to": 1.5}, "to"),
    ({"type": "enqueue", "client_id": "c-a"}, "url"),
    ({"type": "next"}, "client_id"),
    ({"type": "next", "client_id": "c-a", "client_ms": "soon"}, "client_ms"),
])
def test_malformed_queue_commands_name_their_field(body, field):
    with pytest.raises(InvalidCommand) as raised:
        command_from_data(body)
    assert raised.value.field == field


# The service: ids from the room, one transaction, the server's advance at the end.


@pytest.fixture
def room(db):
    return Room.objects.get(slug="demo")


def enqueue(slug: str, media: Media = CLIP) -> RoomState:
    result = room_queue_command(slug=slug, command=cmd("enqueue", url=media.url, media=media))
    assert isinstance(result, RoomState), result
    return result


def test_item_ids_increase_and_are_never_reused(room):
    enqueue("demo")
    second = enqueue("demo")
    room_queue_command(slug="demo", command=cmd("dequeue", item=second.queue[-1].id))
    third = enqueue("demo")
    assert ids(third) == [1, 3]


def test_a_refused_enqueue_takes_no_id(room):
    Room.objects.filter(slug="demo").update(next_queue_item_id=5)
    result = room_queue_command(slug="demo", command=cmd("dequeue", item=1))
    assert isinstance(result, Rejected)
    assert ids(enqueue("demo")) == [5]


def test_each_queue_change_is_a_logged_version(room):
    before = room.version
    enqueue("demo")
    room_queue_command(slug="demo", command=cmd("next"))
    assert list(RoomEvent.objects.filter(room=room, version__gt=before).values_list("command__type", flat=True)
                .order_by("version")) == ["enqueue", "next"]


def test_the_server_advances_once_per_end(room):
    enqueue("demo")
    start = now_ms() - 70_000
    playing = room_apply_command(slug="demo", command=cmd("play", client_ms=start, position=0.0), at_ms=start)
    assert isinstance(playing, RoomState)
    advanced = room_advance_at_end(slug="demo", version=playing.version)
    assert advanced is not None and advanced.media == CLIP and advanced.playing and advanced.changed_by is None
    # Another process computed the same end from the same version: it finds a newer one and does nothing.
    assert room_advance_at_end(slug="demo", version=playing.version) is None
    assert Room.objects.get(slug="demo").version == playing.version + 1


def test_the_server_does_not_advance_before_the_end(room):
    playing = room_apply_command(slug="demo", command=cmd("play", client_ms=now_ms(), position=0.0))
    assert room_advance_at_end(slug="demo", version=playing.version) is None


def test_an_upload_with_queue_1_goes_to_the_queue_and_does_not_play(client, room, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    settings.VSYNC_ADDRESS_LIMITS = False  # the upload quota per address is not what this test is about
    before = Room.objects.get(slug="demo").room_state
    data = {"file": io.BytesIO(DEMO_WEBM.read_bytes()), "queue": "1", "client_id": "c-up"}
    data["file"].name = "Next Film.webm"
    response = client.post("/api/rooms/demo/media", data)
    assert response.status_code == 200, response.content
    state = response.json()["state"]
    assert state["media"] == before.media.to_dict()
    (queued_item,) = state["queue"]
    assert queued_item["source"] == "upload" and queued_item["title"] == "Next Film"
    assert queued_item["added_by"] == "c-up" and queued_item["url"].startswith("/media/")


def send(client, body: dict):
    return client.post("/api/rooms/demo/commands", json.dumps({"client_id": "c-http", **body}),
                       content_type="application/json")


def test_queue_commands_over_http_follow_the_contract(client, room):
    enqueued = send(client, {"type": "enqueue", "url": "/media/demo.webm"})
    assert enqueued.status_code == 200
    (first,) = enqueued.json()["state"]["queue"]
    assert set(first) == {"id", "url", "title", "duration", "source", "added_by"}
    assert (first["url"], first["duration"], first["source"], first["added_by"]) == (
        "/media/demo.webm", 60.0, "demo", "c-http")
    assert send(client, {"type": "enqueue", "url": "/media/missing.webm"}).json()["field"] == "url"
    assert send(client, {"type": "dequeue", "item": first["id"] + 1}).json()["field"] == "item"
    moved = send(client, {"type": "move", "item": first["id"], "to": 50})
    assert moved.status_code == 200 and moved.json()["state"]["queue"] == [first]
    started = send(client, {"type": "next"}).json()["state"]
    assert started["queue"] == [] and started["media"]["url"] == "/media/demo.webm"
    empty = send(client, {"type": "next"})
    assert empty.status_code == 400 and empty.json()["field"] == "item"
