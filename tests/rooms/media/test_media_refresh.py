"""Expiring stream URLs: re-resolved before expiry and on a playback error, without moving anyone."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rooms.media.refresh import (
    RefreshFailed,
    ensure_refresher,
    refresh_due_rooms,
    room_media_refresh,
    stop_refresher,
)
from rooms.media.sources import DEMO_MEDIA, resolve_media
from rooms.models import Room, RoomEvent
from rooms.services import room_apply_command, room_create, room_server_command
from rooms.state import Command, Media, RoomState, refresh_media
from tests.support import media_site as fixtures

# Fixtures shared by the media tests.
loopback_only, media_settings, media_site = fixtures.loopback_only, fixtures.media_settings, fixtures.media_site

STREAM = Media(url="https://cdn.test/v.mp4?sig=1", title="Film", duration=600.0, source="youtube")


@given(playing=st.booleans(), position=st.floats(0, 600), anchor_offset=st.floats(-5000, 5000),
       rate=st.floats(0.25, 4), later=st.floats(0, 1e6), duration=st.none() | st.floats(1, 600))
def test_a_refresh_keeps_the_position_at_every_time(playing, position, anchor_offset, rate, later, duration):
    now = 1_000_000.0
    state = RoomState(room="r", version=7, playing=playing, position=position, anchor_ms=now + anchor_offset,
                      rate=rate, media=Media(url="https://cdn.test/a", source="youtube", duration=duration),
                      changed_by="c-1", changed_ms=now - 10, client_ms=now - 20)
    refreshed = refresh_media(state, Media(url="https://cdn.test/b", source="youtube", duration=None), now)
    for t in (now, now + later, now + anchor_offset, now - 1000):
        assert refreshed.position_at(t) == state.position_at(t)
    assert (refreshed.playing, refreshed.rate, refreshed.client_ms) == (state.playing, state.rate, state.client_ms)
    assert refreshed.version == 8
    assert refreshed.media.url == "https://cdn.test/b"
    assert refreshed.changed_by is None


@pytest.fixture
def page_room(db, media_settings, media_site):
    """A room playing the stream of the test site's page, started at 12 s."""
    return fixtures.create_page_room(media_site, playing_from=12.0)


def test_a_media_command_records_where_its_media_came_from(db, media_settings, media_site):
    room = room_create(name="R", media=DEMO_MEDIA)
    resolved = resolve_media(f"{media_site.url}/page.html")
    command = Command(type="media", client_id="c-1", client_ms=time.time() * 1000, url=resolved.page_url,
                      media=resolved.media)
    room_apply_command(slug=room.slug, command=command, media_page_url=resolved.page_url,
                       media_expires_ms=resolved.expires_ms)
    room.refresh_from_db()
    assert (room.media_page_url, room.media_expires_ms) == (resolved.page_url, resolved.expires_ms)
    room_server_command(slug=room.slug, type="media", media=DEMO_MEDIA, url=DEMO_MEDIA.url)
    room.refresh_from_db()
    assert (room.media_page_url, room.media_expires_ms) == ("", None)


def test_a_playback_error_report_pushes_a_new_url_at_the_same_position(page_room, django_capture_on_commit_callbacks):
    before = page_room.room_state
    with django_capture_on_commit_callbacks(execute=True) as published:
        outcome = room_media_refresh(slug=page_room.slug, reported_url=before.media.url)
    assert outcome.refreshed
    after = outcome.state
    assert after.version == before.version + 1
    assert after.media.url != before.media.url and "sig=2" in after.media.url
    later = time.time() * 1000 + 5000
    assert after.position_at(later) == before.position_at(later)
    assert after.playing and after.anchor_ms == before.anchor_ms
    assert len(published) == 1
    assert RoomEvent.objects.get(room=page_room, version=after.version).command["type"] == "refresh_media"


def test_a_report_about_an_old_url_changes_nothing(page_room):
    outcome = room_media_refresh(slug=page_room.slug, reported_url="http://127.0.0.1/old")
    assert outcome.reason == "stale"
    assert outcome.state == page_room.room_state


def test_many_reports_of_one_expired_url_refresh_once(page_room):
    url = page_room.room_state.media.url
    reasons = [room_media_refresh(slug=page_room.slug, reported_url=url).reason for _ in range(3)]
    assert reasons == ["refreshed", "stale", "stale"]


@pytest.mark.parametrize("source", ["demo", "upload", "direct"])
def test_media_that_does_not_expire_is_not_refreshed(db, media_settings, source):
    media = Media(url="/media/demo.webm" if source != "direct" else "http://127.0.0.1:9/a.webm", source=source)
    room = room_create(name="R", media=media, media_page_url="http://127.0.0.1:9/a.webm")
    outcome = room_media_refresh(slug=room.slug, reported_url=media.url)
    assert outcome.reason == "not_refreshable"
    assert outcome.state.version == 1


def test_a_failed_re_resolution_raises_and_changes_nothing(page_room, media_site):
    media_site.page_missing = True
    with pytest.raises(RefreshFailed, match="not found"):
        room_media_refresh(slug=page_room.slug)
    assert Room.objects.get(pk=page_room.pk).room_state == page_room.room_state


def test_rooms_are_refreshed_shortly_before_their_stream_expires(page_room, settings):
    settings.VSYNC_RESOLVE_REFRESH_MARGIN_S = 60
    expires_ms = page_room.media_expires_ms
    assert refresh_due_rooms(at_ms=expires_ms - 61_000) == []
    assert refresh_due_rooms(at_ms=expires_ms - 59_000) == [page_room.slug]
    room = Room.objects.get(pk=page_room.pk)
    assert room.version == page_room.version + 1
    assert room.room_state.media.url != page_room.room_state.media.url
    assert room.room_state.position_at(expires_ms) == page_room.room_state.position_at(expires_ms)


def test_a_short_expiry_is_refreshed_by_the_periodic_check(db, media_settings, media_site, settings):
    settings.VSYNC_RESOLVE_MAX_AGE_S = 1.0
    settings.VSYNC_RESOLVE_REFRESH_MARGIN_S = 0.5
    resolved = resolve_media(f"{media_site.url}/page.html")
    room = room_create(name="Short", media=resolved.media, media_page_url=resolved.page_url,
                       media_expires_ms=resolved.expires_ms)
    assert refresh_due_rooms(at_ms=resolved.expires_ms - 600) == []
    assert refresh_due_rooms(at_ms=resolved.expires_ms - 400) == [room.slug]
    room.refresh_from_db()
    assert room.version == 2
    assert room.room_state.media.url != resolved.media.url
    assert room.media_expires_ms > resolved.expires_ms


@pytest.mark.django_db(transaction=True)
def test_the_background_thread_refreshes_a_due_room(media_settings, media_site, settings):
    settings.VSYNC_RESOLVE_MAX_AGE_S = 1.0
    settings.VSYNC_RESOLVE_REFRESH_MARGIN_S = 0.9
    settings.VSYNC_RESOLVE_CHECK_INTERVAL_S = 0.05
    resolved = resolve_media(f"{media_site.url}/page.html")
    room = room_create(name="Threaded", media=resolved.media, media_page_url=resolved.page_url,
                       media_expires_ms=resolved.expires_ms)
    ensure_refresher()
    try:
        deadline = time.monotonic() + 10
        while Room.objects.get(pk=room.pk).version == 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Room.objects.get(pk=room.pk).version >= 2
    finally:
        stop_refresher()


def test_the_admin_action_re_resolves_through_the_service(page_room, client):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("admin", "admin@example.org", "pw-for-tests"))
    demo = Room.objects.get(slug="demo")
    response = client.post("/admin/rooms/room/", {"action": "re_resolve_media",
                                                  "_selected_action": [page_room.pk, demo.pk]}, follow=True)
    page = response.content.decode().lower()  # the admin capitalises messages
    assert f"{page_room.slug}: new stream url at version {page_room.version + 1}" in page
    assert "demo: nothing to do (not refreshable)" in page
    assert Room.objects.get(pk=page_room.pk).version == page_room.version + 1
    assert Room.objects.get(pk=demo.pk).version == demo.version
    detail = client.get(f"/admin/rooms/room/{page_room.pk}/change/").content.decode().lower()
    assert "stream url expires" in detail and "sig=2" in detail
