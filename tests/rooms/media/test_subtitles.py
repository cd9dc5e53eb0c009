"""Subtitles (CONTRACT v2): WebVTT checked, SubRip converted, stored, served as text/vtt, added to the media."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from django.test import AsyncClient

from rooms.media.subtitles import MAX_SUBTITLE_BYTES, NotSubtitles, check_webvtt, srt_to_webvtt, to_webvtt
from rooms.models import Upload
from rooms.services import room_server_command
from rooms.state import Media
from tests.support import media_site as fixtures

loopback_only, media_settings = fixtures.loopback_only, fixtures.media_settings

SRT = (b"1\r\n00:00:01,000 --> 00:00:02,500\r\nHello <i>there</i>\r\n\r\n"
       b"2\r\n00:01:02,003 --> 01:00:00,000\r\nTwo\r\nlines -->\r\n\r\n")
VTT = (b"WEBVTT - a title\n\nNOTE a comment\n\nintro\n00:01.000 --> 00:02.000 align:start\nHi\n\n"
       b"00:00:03.000 --> 00:00:04.000\nBye\n")


def test_subrip_becomes_webvtt_with_dotted_timestamps():
    assert to_webvtt(SRT) == ("WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.500\nHello <i>there</i>\n\n"
                              "2\n00:01:02.003 --> 01:00:00.000\nTwo\nlines --&gt;\n\n")


def test_webvtt_is_kept_as_it_is():
    assert to_webvtt(VTT) == VTT.decode()


def test_a_byte_order_mark_and_crlf_are_accepted():
    assert to_webvtt(b"\xef\xbb\xbf" + VTT.replace(b"\n", b"\r\n")) == VTT.decode()


@pytest.mark.parametrize("raw", [
    b"",
    b"hello world\n",
    b"WEBVTTX\n\n00:01.000 --> 00:02.000\nHi\n",
    b"WEBVTT\n\n00:01.000 -> 00:02.000\nHi\n",
    b"WEBVTT\n\n1\n00:01,000 --> 00:02,000\nHi\n",
    b"WEBVTT\n\nan identifier\nbut no timing\n",
    b"1\n00:00:01,000 --> nonsense\nHi\n",
    b"\xff\xfe1\x00\n\x00",  # UTF-16
    "WEBVTT\n\n00:01.000 --> 00:02.000\nHi\n".encode("latin-1") + b"\xe9",
    b"WEBVTT\n\n00:01.000 --> 00:02.000\nH\x00i\n",
    b"\x1a\x45\xdf\xa3 a webm",
])
def test_anything_else_is_refused(raw):
    with pytest.raises(NotSubtitles):
        to_webvtt(raw)


def test_an_empty_webvtt_file_is_valid():
    check_webvtt("WEBVTT\n")


def test_a_subrip_file_without_cues_is_refused():
    with pytest.raises(NotSubtitles):
        srt_to_webvtt("\n\n")


# The endpoint.


@pytest.fixture
def media_root(db, media_settings) -> Path:
    return Path(media_settings.MEDIA_ROOT)


def upload(client, content: bytes, name: str = "film.srt", slug: str = "demo", **fields):
    data = {"file": io.BytesIO(content), **fields}
    data["file"].name = name
    return client.post(f"/api/rooms/{slug}/subtitles", data)


def test_an_uploaded_subrip_becomes_a_track_of_the_current_media(client, media_root):
    response = upload(client, SRT, label="English", lang="en")
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] is True
    (track,) = body["state"]["media"]["subtitles"]
    assert (track["label"], track["lang"]) == ("English", "en")
    assert track["url"].startswith("/media/subtitles/") and track["url"].endswith(".vtt")
    stored = media_root / track["url"].removeprefix("/media/")
    assert stored.read_text(encoding="utf-8").startswith("WEBVTT")
    record = Upload.objects.get(name=track["url"].removeprefix("/media/"))
    assert record.kind == Upload.Kind.SUBTITLES and record.room.slug == "demo" and record.size == stored.stat().st_size


def test_the_track_is_served_as_text_vtt(client, media_root):
    url = upload(client, VTT, name="x.vtt").json()["state"]["media"]["subtitles"][0]["url"]

    async def fetch():
        response = await AsyncClient().get(url)
        return response, b"".join([chunk async for chunk in response.streaming_content])

    response, body = asyncio.run(fetch())
    assert response.status_code == 200
    assert response["Content-Type"] == "text/vtt; charset=utf-8"
    assert body == VTT


def test_several_tracks_per_media_and_none_after_a_media_switch(client, media_root):
    upload(client, SRT, label="English", lang="en")
    state = upload(client, VTT, name="fr.vtt", label="Français", lang="fr").json()["state"]
    assert [t["lang"] for t in state["media"]["subtitles"]] == ["en", "fr"]
    switched = room_server_command(slug="demo", type="media", url="/media/demo.webm",
                                   media=Media(url="/media/demo.webm", title="Demo", duration=60.0, source="demo"))
    assert switched.media.subtitles == ()


def test_adding_a_track_keeps_the_trajectory(client, media_root):
    playing = room_server_command(slug="demo", type="play", position=12.0)
    state = upload(client, SRT).json()["state"]
    assert (state["playing"], state["position"], state["anchor_ms"]) == (True, 12.0, playing.anchor_ms)
    assert state["version"] == playing.version + 1


@pytest.mark.parametrize("content, fields, field", [
    (b"not subtitles", {}, "file"),
    (SRT, {"lang": "english!"}, "lang"),
    (SRT, {"label": "x" * 101}, "label"),
])
def test_a_bad_upload_is_400_and_changes_nothing(client, media_root, content, fields, field):
    before = client.get("/api/rooms").json()
    response = upload(client, content, **fields)
    assert response.status_code == 400 and response.json()["field"] == field
    assert not (media_root / "subtitles").exists() or not any((media_root / "subtitles").iterdir())
    assert not Upload.objects.exists()
    assert client.get("/api/rooms").json() == before


def test_a_post_without_a_file_is_400(client, media_root):
    response = client.post("/api/rooms/demo/subtitles", {"label": "x"})
    assert response.status_code == 400 and response.json()["field"] == "file"


def test_a_file_over_one_mebibyte_is_413(client, media_root):
    line = b"1\n00:00:01,000 --> 00:00:02,000\n" + b"x" * 1000 + b"\n\n"
    big = line * (MAX_SUBTITLE_BYTES // len(line) + 1)
    assert len(big) > MAX_SUBTITLE_BYTES
    assert upload(client, big).status_code == 413
    assert not Upload.objects.exists()


def test_a_declared_length_over_the_limit_is_413_before_reading(client, media_root):
    response = client.post("/api/rooms/demo/subtitles", b"x", content_type="multipart/form-data; boundary=b",
                           CONTENT_LENGTH=str(2 * MAX_SUBTITLE_BYTES))
    assert response.status_code == 413


def test_an_unknown_room_is_404(client, media_root):
    assert upload(client, SRT, slug="nope").status_code == 404
