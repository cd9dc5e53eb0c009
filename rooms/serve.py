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

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils._os import safe_join
from django.utils.http import http_date
from django.views.decorators.http import require_http_methods

BLOCK_SIZE = 256 * 1024
# More ranges than this in one request is how range-amplification attacks look.
MAX_RANGES = 16
CONTENT_TYPES = {".webm": "video/webm", ".mp4": "video/mp4", ".m4v": "video/mp4", ".ogv": "video/ogg",
                 ".ogg": "audio/ogg", ".mp3": "audio/mpeg", ".mkv": "video/x-matroska", ".mov": "video/quicktime"}
_RANGE_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def media_roots() -> list[Path]:
    return [Path(settings.MEDIA_ROOT), Path(settings.DEMO_MEDIA_DIR)]


def find_media_file(name: str) -> Path:
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
    return ranges[:MAX_RANGES]


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
    headers = {"Accept-Ranges": "bytes", "ETag": etag, "Last-Modified": http_date(stat.st_mtime),
               "Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}

    if request.headers.get("If-None-Match") == etag:
        return _with_headers(HttpResponse(status=304), headers)

    ranges: list[tuple[int, int]] | None = None
    range_header = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if range_header and (not if_range or if_range == etag):
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
    response = StreamingHttpResponse(_read_blocks(file_path, ranges, parts), status=status)
    return _with_headers(response, headers)


def _with_headers(response: HttpResponseBase, headers: dict[str, str]) -> HttpResponseBase:
    for name, value in headers.items():
        response[name] = value
    return response
