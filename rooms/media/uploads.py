"""Uploaded media: streamed to disk under a limit, recognised by content, stored under a safe name.

The upload handler writes each chunk straight into ``MEDIA_ROOT/.incoming`` (same
file system as the final place, so keeping it is a rename) and stops the upload
as soon as the limit is passed. Nothing of a refused upload stays behind.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from rooms.names import clean_name

INCOMING_DIR = ".incoming"
# Enough of the file to recognise every format below (Matroska names its DocType
# within the first few dozen bytes; Ogg names its codec in the first page).
SNIFF_BYTES = 4096


@dataclass(frozen=True)
class MediaKind:
    extension: str
    content_type: str


class NotMedia(ValueError):
    """The file is not a media format browsers play."""


def sniff(head: bytes) -> MediaKind:
    """Recognise a media file by its first bytes (magic numbers), never by its name."""
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska or WebM
        doc_type = head[:64]
        if b"webm" in doc_type:
            return MediaKind(".webm", "video/webm")
        if b"matroska" in doc_type:
            return MediaKind(".mkv", "video/x-matroska")
    if len(head) >= 12 and head[4:8] == b"ftyp":  # ISO base media: MP4, M4A, QuickTime
        brand = head[8:12]
        if brand == b"qt  ":
            return MediaKind(".mov", "video/quicktime")
        if brand in (b"M4A ", b"M4B "):
            return MediaKind(".m4a", "audio/mp4")
        return MediaKind(".mp4", "video/mp4")
    if head.startswith(b"OggS"):
        if b"\x80theora" in head or b"\x80vp8" in head.lower():
            return MediaKind(".ogv", "video/ogg")
        return MediaKind(".ogg", "audio/ogg")
    if head.startswith(b"fLaC"):
        return MediaKind(".flac", "audio/flac")
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return MediaKind(".mp3", "audio/mpeg")
    raise NotMedia("not a media file this server plays (WebM, Matroska, MP4, QuickTime, Ogg, FLAC or MP3)")


def incoming_dir() -> Path:
    path = Path(settings.MEDIA_ROOT) / INCOMING_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


class UploadTooLarge(Exception):
    pass


class CappedUploadHandler(FileUploadHandler):
    """An upload handler that stops keeping the field ``file`` once it passes ``max_bytes`` (``too_large``)."""

    def __init__(self, request: Any = None, *, max_bytes: int) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes
        self.too_large = False


class StreamingMediaUploadHandler(CappedUploadHandler):
    """Write the upload to ``.incoming`` chunk by chunk; stop once it passes ``max_bytes``."""

    def __init__(self, request: Any = None, *, max_bytes: int) -> None:
        super().__init__(request, max_bytes=max_bytes)
        self.path: Path | None = None
        self._handle: Any = None
        self._size = 0

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        if self.field_name != "file" or self.path is not None:
            return  # only one file, from the field "file"; other parts are skipped
        self.path = incoming_dir() / f"{secrets.token_hex(16)}.part"
        self._handle = open(self.path, "xb")  # closed in file_complete or discard

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if self._handle is None or self.field_name != "file":
            return None
        self._size += len(raw_data)
        if self._size > self.max_bytes:
            self.too_large = True
            self.discard()
            raise StopUpload(connection_reset=True)
        self._handle.write(raw_data)
        return None

    def file_complete(self, file_size: int) -> UploadedFile[Any] | None:
        if self._handle is None or self.field_name != "file":
            return None
        self._handle.close()
        self._handle = None
        return UploadedFile(file=None, name=self.file_name, content_type=self.content_type, size=self._size)

    def upload_interrupted(self) -> None:
        self.discard()

    def discard(self) -> None:
        """Remove whatever of the upload is on disk."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


@dataclass(frozen=True)
class StoredUpload:
    name: str  # the file name under MEDIA_ROOT
    title: str
    content_type: str


def keep_upload(handler: StreamingMediaUploadHandler, original_name: str) -> StoredUpload:
    """Check the received file's content and move it into MEDIA_ROOT under a random name.

    Raises NotMedia (and removes the file) when it is not media.
    """
    if handler.path is None:
        raise NotMedia("no file was received")
    try:
        with open(handler.path, "rb") as received:
            kind = sniff(received.read(SNIFF_BYTES))
    except NotMedia:
        handler.discard()
        raise
    name = f"{secrets.token_urlsafe(16)}{kind.extension}"
    os.replace(handler.path, Path(settings.MEDIA_ROOT) / name)
    handler.path = None
    return StoredUpload(name=name, title=display_title(original_name), content_type=kind.content_type)


def display_title(original_name: str) -> str:
    """A title from the uploader's file name: no path, no control characters, at most 100 characters."""
    base = original_name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    return clean_name(stem, 100) or "Upload"


def remove_upload(name: str) -> None:
    (Path(settings.MEDIA_ROOT) / name).unlink(missing_ok=True)
