"""Media endpoints: upload a file to play in a room, and report a stream URL that fails to play.

Upload size: under ASGI the server (daphne) and then Django receive the whole request
body into temporary files before any view runs, so this view cannot stop a client
from sending too much; it refuses by Content-Length before parsing, and the upload
handler stops writing once the file passes conf.UPLOAD_MAX_BYTES (VSYNC_UPLOAD_MAX_BYTES). Limit the body at
the reverse proxy too (nginx ``client_max_body_size``) to stop oversize uploads early.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.http import require_http_methods
from pydantic import BaseModel, ConfigDict, Field

from rooms.access import Access
from rooms.api.http import client_address, json_body, json_error, json_response, result_response, room_endpoint
from rooms.commands import MAX_URL_LENGTH, validated
from rooms.conf import conf
from rooms.intake import author_refusal, upload_submit
from rooms.limits import CLIENT_COMMANDS, retry_after_header
from rooms.media.quota import upload_quota, upload_record
from rooms.media.refresh import RefreshFailed, room_media_refresh
from rooms.media.uploads import NotMedia, StreamingMediaUploadHandler, keep_upload, remove_upload
from rooms.models import Room
from rooms.queue import upload_enqueue
from rooms.state import InvalidCommand, Media

# Room for the multipart boundaries, part headers and the small form fields around the file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# The form field ``queue`` with one of these sends the upload to the queue.
QUEUE_FLAG_VALUES = ("1", "true", "on", "yes")


class MediaError(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    client_id: Annotated[str, Field(min_length=1, max_length=64)]
    url: Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH)]


@require_http_methods(["POST"])
@room_endpoint(max_body=None)  # the upload handler limits the body itself
def room_media_upload(request: HttpRequest, slug: str, access: Access) -> HttpResponse:
    """``POST /api/rooms/{slug}/media``: multipart ``file`` (+ optional ``client_id``, ``client_ms``)."""
    max_bytes = conf.UPLOAD_MAX_BYTES
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > max_bytes + MULTIPART_OVERHEAD_BYTES:
        return _too_large(max_bytes)
    if (refusal := author_refusal(access, None)) is not None:
        return result_response(refusal)  # before the file is read: a refused upload must not fill the disk
    address = client_address(request)
    if (wait := upload_quota.take(address, int(length) if length.isdigit() else max_bytes)) is not None:
        return json_response({"error": "too many uploads from this address; wait and try again"}, 429,
                             Retry_After=retry_after_header(wait))
    handler = StreamingMediaUploadHandler(request, max_bytes=max_bytes)
    request.upload_handlers = [handler]
    try:
        try:
            upload = request.FILES.get("file")
            fields = request.POST
        except MultiPartParserError as exc:
            return json_error(400, f"malformed multipart body: {exc}", "file")
        if handler.too_large:
            return _too_large(max_bytes)
        if upload is None or handler.path is None:
            return json_error(400, "a multipart field 'file' with the media file is required", "file")
        if not upload.size:
            return json_error(400, "the file is empty", "file")
        try:
            client_id, client_ms = _author(fields)
        except InvalidCommand as exc:
            return json_error(400, exc.error, exc.field)
        try:
            stored = keep_upload(handler, upload.name or "")
        except NotMedia as exc:
            return json_error(400, str(exc), "file")
    finally:
        handler.discard()  # whatever was not kept
    media = Media(url=f"{settings.MEDIA_URL}{stored.name}", title=stored.title, duration=None, source="upload")
    upload_record(name=stored.name, slug=slug, client_id=client_id, address=address, size=upload.size)
    if fields.get("queue") in QUEUE_FLAG_VALUES:  # to the end of the queue instead of playing now
        result = upload_enqueue(slug=slug, media=media, client_id=client_id or access.client_id)
    else:
        result = upload_submit(slug=slug, access=access, media=media, client_id=client_id, client_ms=client_ms)
    if not result.accepted:
        remove_upload(stored.name)
    return result_response(result)


def _author(fields: Any) -> tuple[str | None, float | None]:
    client_id = fields.get("client_id") or None
    if client_id is not None and not 1 <= len(client_id) <= 64:
        raise InvalidCommand("client_id must be 1 to 64 characters", "client_id")
    raw_ms = fields.get("client_ms")
    if not raw_ms:
        return client_id, None
    try:
        client_ms = float(raw_ms)
    except ValueError:
        raise InvalidCommand("client_ms must be a number", "client_ms") from None
    if not math.isfinite(client_ms):
        raise InvalidCommand("client_ms must be a finite number", "client_ms")
    return client_id, client_ms


def _too_large(max_bytes: int) -> HttpResponse:
    return json_error(413, f"the file is larger than the upload limit of {max_bytes} bytes")


@require_http_methods(["POST"])
@room_endpoint()
def room_media_error(request: HttpRequest, slug: str, access: Access) -> HttpResponse:
    """``POST /api/rooms/{slug}/media/error`` ``{"client_id", "url"}``: the player failed on ``url``."""
    try:
        data = validated(MediaError, json_body(request))
    except InvalidCommand as exc:
        return json_error(400, exc.error, exc.field)
    if CLIENT_COMMANDS.take((slug, data.client_id)) is not None:
        return json_error(429, "too many reports from this client_id; slow down")
    try:
        outcome = room_media_refresh(slug=slug, reported_url=data.url)
    except Room.DoesNotExist:
        return json_error(404, f"no room {slug!r}")
    except RefreshFailed as exc:
        return json_error(502, f"re-resolving the media failed: {exc}")
    body = {"accepted": outcome.refreshed, "state": outcome.state.to_dict()}
    if not outcome.refreshed:
        body["reason"] = outcome.reason
    return json_response(body, status=409 if outcome.reason == "stale" else 200)
