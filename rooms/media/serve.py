"""Serve media files with HTTP Range (206/416), streamed without holding files in memory.

django.views.static.serve ignores Range, and a sync iterator is fully buffered under
ASGI, so this streams from an async generator that reads one block at a time.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils._os import safe_join
from django.utils.http import http_date, parse_http_date_safe
from django.views.decorators.http import require_http_methods

from rooms.conf import conf
from rooms.etags import etag_matches

BLOCK_SIZE = 256 * 1024
# More ranges than this in one request (after merging overlapping ones) is how
# range-amplification attacks look; such a Range header is ignored (RFC 9110 14.2).
MAX_RANGES = 16
CONTENT_TYPES = {".webm": "video/webm", ".mp4": "video/mp4", ".m4v": "video/mp4", ".ogv": "video/ogg",
                 ".ogg": "audio/ogg", ".mp3": "audio/mpeg", ".mkv": "video/x-matroska", ".mov": "video/quicktime",
                 ".m4a": "audio/mp4", ".flac": "audio/flac", ".oga": "audio/ogg", ".opus": "audio/ogg",
                 ".wav": "audio/wav", ".vtt": "text/vtt; charset=utf-8"}
# Uploads get a random name that is never reused, so they never change; the demo may
# change with a new release.
UPLOAD_CACHE_CONTROL = "public, max-age=31536000, immutable"
DEMO_CACHE_CONTROL = "public, max-age=3600"
_RANGE_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def media_roots() -> list[Path]:
    return [Path(settings.MEDIA_ROOT), Path(settings.DEMO_MEDIA_DIR)]


def find_media_file(name: str) -> Path:
    # Hidden names (the .incoming folder of uploads in progress) are never served, nor
    # anything that is not media (the demo's folder also holds the script that makes it).
    if any(part.startswith(".") for part in name.replace("\\", "/").split("/")):
        raise Http404("no such media")
    if Path(name).suffix.lower() not in CONTENT_TYPES:
        raise Http404("no such media")
    for root in media_roots():
        try:
            candidate = Path(safe_join(root, name))
        except SuspiciousFileOperation:
            raise Http404("no such media") from None
        if candidate.is_file():
            return candidate
    raise Http404("no such media")


def parse_range(header: str, size: int) -> list[tuple[int, int]] | None:
    """Inclusive byte ranges satisfiable within ``size``; [] if none is; None if malformed."""
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not specs:
        return None
    ranges = []
    for spec in specs.split(","):
        match = _RANGE_SPEC.match(spec)
        if not match or match.groups() == ("", ""):
            return None
        first, last = match.groups()
        if first == "":  # suffix: the last N bytes
            length = int(last)
            if length > 0 and size > 0:
                ranges.append((max(0, size - length), size - 1))
            continue
        start = int(first)
        end = size - 1 if last == "" else min(int(last), size - 1)
        if last != "" and int(last) < start:
            return None
        if start < size:
            ranges.append((start, end))
    merged = _merge(ranges)
    return None if len(merged) > MAX_RANGES else merged


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Coalesce overlapping and adjacent ranges, so no byte is sent twice.

    Order is kept when nothing overlaps; otherwise the result is ascending.
    """
    ordered = sorted(ranges)
    merged: list[tuple[int, int]] = []
    for start, end in ordered:
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return ranges if len(merged) == len(ranges) else merged


async def _read_blocks(path: Path, ranges: list[tuple[int, int]], parts: list[tuple[bytes, bytes]] | None
                       ) -> AsyncIterator[bytes]:
    with open(path, "rb") as handle:
        for index, (start, end) in enumerate(ranges):
            if parts is not None:
                yield parts[index][0]
            await asyncio.to_thread(handle.seek, start)
            remaining = end - start + 1
            while remaining > 0:
                block = await asyncio.to_thread(handle.read, min(BLOCK_SIZE, remaining))
                if not block:
                    break
                remaining -= len(block)
                yield block
            if parts is not None:
                yield parts[index][1]


@require_http_methods(["GET", "HEAD"])
async def serve_media(request: HttpRequest, path: str) -> HttpResponseBase:
    file_path = await asyncio.to_thread(find_media_file, path)
    stat = await asyncio.to_thread(os.stat, file_path)
    size = stat.st_size
    content_type = CONTENT_TYPES.get(file_path.suffix.lower()) or (
        mimetypes.guess_type(file_path.name)[0] or "application/octet-stream")
    etag = f'"{stat.st_mtime_ns:x}-{size:x}"'
    last_modified = http_date(stat.st_mtime)
    is_upload = file_path.is_relative_to(Path(settings.MEDIA_ROOT))
    headers = {"Accept-Ranges": "bytes", "ETag": etag, "Last-Modified": last_modified,
               "Cache-Control": UPLOAD_CACHE_CONTROL if is_upload else DEMO_CACHE_CONTROL,
               "X-Content-Type-Options": "nosniff"}
    if conf.X_ACCEL_MEDIA:  # behind make serve's nginx: it sends the bytes (Range, 304) itself
        folder = "uploads" if is_upload else "demo"
        relative = file_path.relative_to(settings.MEDIA_ROOT if is_upload else settings.DEMO_MEDIA_DIR)
        headers["X-Accel-Redirect"] = f"{conf.X_ACCEL_MEDIA}{folder}/{quote(relative.as_posix())}"
        headers["Content-Type"] = content_type
        return _with_headers(HttpResponse(), headers)

    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        if etag_matches(if_none_match, etag):
            return _with_headers(HttpResponse(status=304), headers)
    elif _not_modified_since(request.headers.get("If-Modified-Since"), stat.st_mtime):
        return _with_headers(HttpResponse(status=304), headers)

    ranges: list[tuple[int, int]] | None = None
    range_header = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    # If-Range holds an ETag (strong comparison) or the exact Last-Modified date.
    if range_header and (not if_range or if_range in (etag, last_modified)):
        ranges = parse_range(range_header, size)
        if ranges == []:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return _with_headers(response, headers)

    parts = None
    if ranges is None:  # no Range, or a malformed one (RFC 9110: ignore it)
        status, ranges, length = 200, [(0, size - 1)] if size else [], size
        headers["Content-Type"] = content_type
    elif len(ranges) == 1:
        start, end = ranges[0]
        status, length = 206, end - start + 1
        headers["Content-Type"] = content_type
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    else:
        boundary = secrets.token_hex(12)
        parts = []
        for index, (start, end) in enumerate(ranges):
            head = (f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Range: bytes {start}-{end}/{size}\r\n\r\n")
            tail = f"\r\n--{boundary}--\r\n" if index == len(ranges) - 1 else ""
            parts.append((head.encode(), tail.encode()))
        status = 206
        length = sum(end - start + 1 for start, end in ranges) + sum(len(a) + len(b) for a, b in parts)
        headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
    headers["Content-Length"] = str(length)

    if request.method == "HEAD":
        return _with_headers(HttpResponse(status=status), headers)
    return _with_headers(StreamingHttpResponse(_read_blocks(file_path, ranges, parts), status=status), headers)


def _not_modified_since(header: str | None, mtime: float) -> bool:
    since = parse_http_date_safe(header) if header else None
    return since is not None and int(mtime) <= since


def _with_headers(response: HttpResponseBase, headers: dict[str, str]) -> HttpResponseBase:
    for name, value in headers.items():
        response[name] = value
    return response
