"""The multipart preamble of the upload views (media files, subtitles): one file field, a size cap.

Refused by Content-Length before the body is parsed; the view's upload handler stops
keeping the file once it passes the cap and says so in ``too_large``. Every refusal
is a ``Result``, answered like any other through ``result_response``.
"""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, QueryDict
from django.http.multipartparser import MultiPartParserError

from rooms.media.uploads import CappedUploadHandler
from rooms.results import Result, invalid, refused

# Room for the multipart boundaries, part headers and the small form fields around the file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def declared_length(request: HttpRequest) -> int | None:
    """The request's Content-Length, or None when it sent none (or not a number)."""
    length = request.META.get("CONTENT_LENGTH") or ""
    return int(length) if length.isdigit() else None


def declared_too_large(request: HttpRequest, max_bytes: int) -> bool:
    length = declared_length(request)
    return length is not None and length > max_bytes + MULTIPART_OVERHEAD_BYTES


def too_large(error: str) -> Result:
    return refused("too_large", error)


def multipart_file(request: HttpRequest, handler: CappedUploadHandler, *, too_large_error: str,
                   missing_error: str) -> tuple[UploadedFile[Any], QueryDict] | Result:
    """Parse the body through ``handler`` alone: the field ``file`` and the other fields, or why not."""
    request.upload_handlers = [handler]
    try:
        upload = request.FILES.get("file")
        fields = request.POST
    except MultiPartParserError as exc:
        return invalid(f"malformed multipart body: {exc}", "file")
    if handler.too_large:
        return too_large(too_large_error)
    if upload is None:
        return invalid(missing_error, "file")
    return upload, fields
