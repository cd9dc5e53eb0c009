"""Ranged media serving (RFC 9110 ranges), checked over a real daphne server and on the parser."""

from __future__ import annotations

import re

import httpx
import pytest

from rooms.media.serve import MAX_RANGES, parse_range
from tests.support.media_site import DEMO_WEBM

DEMO = DEMO_WEBM.read_bytes()
SIZE = len(DEMO)


@pytest.fixture(scope="module")
def media(live_server_proc):
    with httpx.Client(base_url=live_server_proc.url, timeout=10) as client:
        yield lambda headers=None, method="GET", path="/media/demo.webm": client.request(method, path,
                                                                                        headers=headers or {})


def test_a_full_request_is_200_with_type_length_ranges_and_caching(media):
    response = media()
    assert response.status_code == 200
    assert response.content == DEMO
    assert response.headers["Content-Type"] == "video/webm"
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Cache-Control"].startswith("public, max-age=")
    assert response.headers["ETag"] and response.headers["Last-Modified"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_range_is_206_with_exactly_those_bytes(media):
    response = media({"Range": "bytes=0-3"})
    assert response.status_code == 206
    assert response.content == DEMO[:4] == b"\x1a\x45\xdf\xa3"
    assert response.headers["Content-Range"] == f"bytes 0-3/{SIZE}"
    assert response.headers["Content-Length"] == "4"
    assert response.headers["Content-Type"] == "video/webm"


def test_an_open_ended_range_runs_to_the_end(media):
    response = media({"Range": "bytes=1000-"})
    assert response.status_code == 206
    assert response.content == DEMO[1000:]
    assert response.headers["Content-Range"] == f"bytes 1000-{SIZE - 1}/{SIZE}"


def test_a_suffix_range_is_the_last_bytes(media):
    response = media({"Range": "bytes=-500"})
    assert response.status_code == 206
    assert response.content == DEMO[-500:]
    assert response.headers["Content-Range"] == f"bytes {SIZE - 500}-{SIZE - 1}/{SIZE}"


def test_a_suffix_longer_than_the_file_is_the_whole_file(media):
    response = media({"Range": f"bytes=-{SIZE * 2}"})
    assert response.status_code == 206
    assert response.content == DEMO


def test_an_end_past_the_file_is_clamped(media):
    response = media({"Range": f"bytes={SIZE - 10}-{SIZE + 1000}"})
    assert response.status_code == 206
    assert response.content == DEMO[-10:]


def test_multiple_ranges_are_a_multipart_body_with_each_part(media):
    response = media({"Range": "bytes=0-3, 100-109, -5"})
    assert response.status_code == 206
    match = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", response.headers["Content-Type"])
    assert match
    assert response.headers["Content-Length"] == str(len(response.content))
    parts = response.content.split(f"--{match.group(1)}".encode())
    assert parts[-1].strip() == b"--"
    bodies = []
    for part in parts[1:-1]:
        head, _, body = part.partition(b"\r\n\r\n")
        assert b"Content-Type: video/webm" in head
        bodies.append((re.search(rb"Content-Range: bytes (\d+)-(\d+)/(\d+)", head).groups(), body[:-2]))
    assert bodies == [((b"0", b"3", str(SIZE).encode()), DEMO[0:4]),
                      ((b"100", b"109", str(SIZE).encode()), DEMO[100:110]),
                      ((str(SIZE - 5).encode(), str(SIZE - 1).encode(), str(SIZE).encode()), DEMO[-5:])]


def test_overlapping_ranges_are_coalesced(media):
    response = media({"Range": "bytes=0-99,50-149,150-199"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 0-199/{SIZE}"
    assert response.content == DEMO[:200]


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 5}-{SIZE + 9}", "bytes=-0",
                                    f"bytes={SIZE}-,{SIZE + 1}-"])
def test_an_unsatisfiable_range_is_416_with_the_size(media, header):
    response = media({"Range": header})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"
    assert response.content == b""


@pytest.mark.parametrize("header", ["bytes=abc", "items=0-1", "bytes=5-1", "bytes=", "bytes=-", "0-1",
                                    "bytes=1-2,x"])
def test_a_malformed_range_is_ignored_and_the_whole_file_sent(media, header):
    response = media({"Range": header})
    assert response.status_code == 200
    assert response.content == DEMO


def test_if_range_with_another_etag_sends_the_whole_file(media):
    assert media({"Range": "bytes=0-3", "If-Range": '"other"'}).status_code == 200
    etag = media(method="HEAD").headers["ETag"]
    assert media({"Range": "bytes=0-3", "If-Range": etag}).status_code == 206


def test_a_matching_etag_is_304(media):
    etag = media(method="HEAD").headers["ETag"]
    assert media({"If-None-Match": etag}).status_code == 304
    assert media({"If-None-Match": f'"x", W/{etag}'}).status_code == 304
    assert media({"If-None-Match": '"x"'}).status_code == 200


def test_head_has_the_headers_and_no_body(media):
    response = media({"Range": "bytes=0-9"}, method="HEAD")
    assert response.status_code == 206
    assert response.headers["Content-Length"] == "10"
    assert response.content == b""


@pytest.mark.parametrize("path", ["/media/../../vsync/settings.py", "/media/%2e%2e/rooms/models.py",
                                  "/media/nope.webm", "/media/.incoming/x.part", "/media/make_demo.sh/x"])
def test_paths_outside_media_and_hidden_paths_are_404(media, path):
    assert media(path=path).status_code == 404


def test_parse_range_spec():
    assert parse_range("bytes=0-0", 10) == [(0, 0)]
    assert parse_range("bytes=9-", 10) == [(9, 9)]
    assert parse_range("bytes=-3", 10) == [(7, 9)]
    assert parse_range("bytes=3-1", 10) is None
    assert parse_range("bytes=10-", 10) == []
    assert parse_range("bytes=0-", 0) == []
    assert parse_range("BYTES = 1-2", 10) == [(1, 2)]
    assert parse_range("bytes=5-6,0-1", 10) == [(5, 6), (0, 1)]  # order kept when nothing overlaps
    assert parse_range("bytes=0-4,3-6", 10) == [(0, 6)]


def test_too_many_ranges_are_ignored():
    many = ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(MAX_RANGES + 1))
    assert parse_range(f"bytes={many}", 10_000) is None
    assert parse_range("bytes=" + ",".join(["0-1000"] * 500), 10_000) == [(0, 1000)]
