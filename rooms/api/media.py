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
from django.views.decorators.http import require_http_methods
from pydantic import BaseModel, ConfigDict, Field

from rooms.access import Access
from rooms.api.http import client_address, json_body, json_response, result_response, room_endpoint
from rooms.api.multipart import declared_length, declared_too_large, multipart_file, too_large
from rooms.commands import MAX_URL_LENGTH, validated
from rooms.conf import conf
from rooms.intake import author_refusal, upload_submit
from rooms.limits import CLIENT_COMMANDS
from rooms.media.quota import upload_quota, upload_record
from rooms.media.refresh import RefreshFailed, room_media_refresh
from rooms.media.uploads import NotMedia, StreamingMediaUploadHandler, keep_upload, remove_upload
from rooms.models import Room
from rooms.queue import upload_enqueue
from rooms.results import Result, invalid, limited, not_found, refused
from rooms.state import InvalidCommand, Media

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
    too_large_error = f"the file is larger than the upload limit of {max_bytes} bytes"
    if declared_too_large(request, max_bytes):
        return result_response(too_large(too_large_error))
    if (refusal := author_refusal(access, None)) is not None:
        return result_response(refusal)  # before the file is read: a refused upload must not fill the disk
    address = client_address(request)
    if (wait := upload_quota.take(address, declared_length(request) or max_bytes)) is not None:
        return result_response(limited("too many uploads from this address; wait and try again", wait))
    handler = StreamingMediaUploadHandler(request, max_bytes=max_bytes)
    try:
        parsed = multipart_file(request, handler, too_large_error=too_large_error,
                                missing_error="a multipart field 'file' with the media file is required")
        if isinstance(parsed, Result):
            return result_response(parsed)
        upload, fields = parsed
        if handler.path is None:
            return result_response(invalid("a multipart field 'file' with the media file is required", "file"))
        if not upload.size:
            return result_response(invalid("the file is empty", "file"))
        try:
            client_id, client_ms = _author(fields)
        except InvalidCommand as exc:
            return result_response(invalid(exc.error, exc.field))
        try:
            stored = keep_upload(handler, upload.name or "")
        except NotMedia as exc:
            return result_response(invalid(str(exc), "file"))
    finally:
        handler.discard()  # whatever was not kept
    media = Media(url=f"{settings.MEDIA_URL}{stored.name}", title=stored.title, duration=None, source="upload")
    upload_record(name=stored.name, slug=slug, client_id=client_id, address=address, size=upload.size)
    if fields.get("queue") in QUEUE_FLAG_VALUES:  # to the end of the queue instead of playing now
        result = upload_enqueue(slug=slug, media=media, client_id=client_id or access.client_id)
    else:
        result = upload_submit(slug=slug, access=access, media=media, client_id=client_id, client_ms=client_ms)
    if not result.accepted:
        remove_upload(stored.name)  # its Upload row goes with the next sweep's grace period
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


@require_http_methods(["POST"])
@room_endpoint()
def room_media_error(request: HttpRequest, slug: str, access: Access) -> HttpResponse:
    """``POST /api/rooms/{slug}/media/error`` ``{"client_id", "url"}``: the player failed on ``url``."""
    try:
        data = validated(MediaError, json_body(request))
    except InvalidCommand as exc:
        return result_response(invalid(exc.error, exc.field))
    if (wait := CLIENT_COMMANDS.take((slug, data.client_id))) is not None:
        return result_response(limited("too many reports from this client_id; slow down", wait))
    try:
        outcome = room_media_refresh(slug=slug, reported_url=data.url)
    except Room.DoesNotExist:
        return result_response(not_found(slug))
    except RefreshFailed as exc:
        return result_response(refused("failed", f"re-resolving the media failed: {exc}"))
    body = {"accepted": outcome.refreshed, "state": outcome.state.to_dict()}
    if not outcome.refreshed:
        body["reason"] = outcome.reason
    return json_response(body, status=409 if outcome.reason == "stale" else 200)
