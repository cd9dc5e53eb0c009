"""Subtitle tracks: WebVTT checked, SubRip converted to WebVTT, stored under MEDIA_ROOT/subtitles, added to the media.

SubRip is parsed by the ``srt`` library (strict about structure: anything it cannot
read as cues is refused, never half-converted). WebVTT is checked here, as far as
a browser's parser would drop or misread it: the signature line, and a well-formed
timing line in every cue.
"""

from __future__ import annotations

import re
import secrets
import time
import unicodedata
from datetime import timedelta
from pathlib import Path
from typing import Any

import srt
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import StopUpload
from django.db import transaction

from rooms.media.uploads import CappedUploadHandler
from rooms.models import Room, Upload
from rooms.services import now_ms, room_save_version
from rooms.state import InvalidCommand, RoomState, Subtitle, add_subtitles

MAX_SUBTITLE_BYTES = 1024 * 1024  # CONTRACT v2
SUBTITLES_DIR = "subtitles"
# A media's menu stays usable; a client adding tracks in a loop stops here.
MAX_TRACKS = 20
MAX_LABEL_CHARS = 100
# BCP 47 tags are letters, digits and hyphens; 35 characters holds every registered form.
LANG_PATTERN = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
MAX_LANG_CHARS = 35

_SIGNATURE = re.compile(r"^WEBVTT(?:[ \t].*)?$")
_TIMESTAMP = r"(?:\d{2,}:)?[0-5]\d:[0-5]\d\.\d{3}"
_TIMING = re.compile(rf"^{_TIMESTAMP}[ \t]+-->[ \t]+{_TIMESTAMP}(?:[ \t].*)?$")
_NON_CUE_BLOCK = re.compile(r"^(NOTE|STYLE|REGION)(?:[ \t].*)?$")


class NotSubtitles(ValueError):
    """Neither WebVTT nor SubRip (or not UTF-8); ``str()`` says why."""


def to_webvtt(raw: bytes) -> str:
    """The WebVTT text of an uploaded WebVTT or SubRip file (UTF-8, a BOM allowed), or NotSubtitles."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotSubtitles("subtitles must be UTF-8 text") from None
    if "\x00" in text:
        raise NotSubtitles("subtitles must be text (the file holds NUL bytes)")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith("WEBVTT"):
        check_webvtt(text)
        return text if text.endswith("\n") else text + "\n"
    return srt_to_webvtt(text)


def check_webvtt(text: str) -> None:
    """Raise NotSubtitles unless ``text`` (LF line ends) is a WebVTT file whose every cue has a valid timing line."""
    blocks = [block for block in re.split(r"\n[ \t]*\n", text) if block.strip()]
    if not blocks or not _SIGNATURE.match(blocks[0].split("\n", 1)[0]):
        raise NotSubtitles("a WebVTT file must start with the line WEBVTT")
    for block in blocks[1:]:
        lines = block.strip("\n").split("\n")
        if _NON_CUE_BLOCK.match(lines[0]):
            continue
        timing = lines[0] if "-->" in lines[0] else (lines[1] if len(lines) > 1 else "")
        if not _TIMING.match(timing.strip()):
            raise NotSubtitles(f"not a WebVTT cue timing line: {timing[:80]!r}")


def srt_to_webvtt(text: str) -> str:
    """Convert SubRip to WebVTT, or raise NotSubtitles when ``text`` is not SubRip with at least one cue."""
    try:
        cues = list(srt.parse(text))
    except (srt.SRTParseError, ValueError) as exc:
        raise NotSubtitles(f"neither WebVTT nor SubRip: {str(exc)[:120]}") from None
    if not cues:
        raise NotSubtitles("neither WebVTT nor SubRip: no cues")
    out = ["WEBVTT", ""]
    for number, cue in enumerate(cues, start=1):
        # A blank line would end the cue early and "-->" is not allowed in cue text.
        lines = [line.replace("-->", "--&gt;") for line in cue.content.split("\n") if line.strip()]
        out += [str(number), f"{_timestamp(cue.start)} --> {_timestamp(cue.end)}", *lines, ""]
    return "\n".join(out) + "\n"


def _timestamp(offset: timedelta) -> str:
    millis = max(0, round(offset.total_seconds() * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def track_label(raw: Any) -> str:
    """A label a person reads in a menu: no control or format characters, at most 100 characters."""
    if raw is None:
        return ""
    cleaned = "".join(ch for ch in str(raw) if unicodedata.category(ch) not in ("Cc", "Cf")).strip()
    if len(cleaned) > MAX_LABEL_CHARS:
        raise InvalidCommand(f"label: at most {MAX_LABEL_CHARS} characters", "label")
    return cleaned


def track_lang(raw: Any) -> str:
    if raw is None or raw == "":
        return ""
    if len(str(raw)) > MAX_LANG_CHARS or not LANG_PATTERN.match(str(raw)):
        raise InvalidCommand("lang: must be a language tag such as en or pt-BR", "lang")
    return str(raw)


class SubtitleUploadHandler(CappedUploadHandler):
    """Keep the multipart field ``file`` in memory, and stop the upload once it passes ``max_bytes``."""

    def __init__(self, request: Any = None, *, max_bytes: int = MAX_SUBTITLE_BYTES) -> None:
        super().__init__(request, max_bytes=max_bytes)
        self.data = bytearray()
        self._receiving = False
        self._received = False

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self._receiving = self.field_name == "file" and not self._received

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if not self._receiving:
            return None  # other files are dropped
        self.data += raw_data
        if len(self.data) > self.max_bytes:
            self.too_large = True
            self.data.clear()
            raise StopUpload(connection_reset=True)
        return None

    def file_complete(self, file_size: int) -> UploadedFile[Any] | None:
        if not self._receiving:
            return None
        self._receiving, self._received = False, True
        return UploadedFile(file=None, name=self.file_name, content_type=self.content_type, size=len(self.data))


def store_subtitles(webvtt: str, *, slug: str, client_id: str, address: str | None) -> str:
    """Write a WebVTT text under MEDIA_ROOT/subtitles with a random name, recorded as an Upload; the URL path."""
    folder = Path(settings.MEDIA_ROOT) / SUBTITLES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{SUBTITLES_DIR}/{secrets.token_urlsafe(16)}.vtt"
    data = webvtt.encode("utf-8")
    with open(Path(settings.MEDIA_ROOT) / name, "xb") as out:
        out.write(data)
    Upload.objects.create(name=name, kind=Upload.Kind.SUBTITLES, room=Room.objects.filter(slug=slug).first(),
                          client_id=client_id, address=address, size=len(data), created_ms=time.time() * 1000.0)
    return name


def remove_subtitles(name: str) -> None:
    (Path(settings.MEDIA_ROOT) / name).unlink(missing_ok=True)
    Upload.objects.filter(name=name).delete()


def room_add_subtitles(*, slug: str, track: Subtitle, author: str | None) -> RoomState:
    """Add ``track`` to room ``slug``'s current media: a new version, published on commit.

    Raises Room.DoesNotExist, and InvalidCommand when the media has MAX_TRACKS already.
    """
    with transaction.atomic():
        room = Room.objects.select_for_update().get(slug=slug)
        current = room.room_state
        if len(current.media.subtitles) >= MAX_TRACKS:
            raise InvalidCommand(f"this media has {MAX_TRACKS} subtitle tracks already", "file")
        accepted_ms = now_ms()
        result = add_subtitles(current, track, accepted_ms, author=author)
        room_save_version(room, result, command={"type": "subtitles", **track.to_dict()}, author=author,
                          accepted_ms=accepted_ms)
    return result
