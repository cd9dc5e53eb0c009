"""Media endpoints: upload a file to play in a room, and report a stream URL that fails to play.

Upload size: under ASGI the server (daphne) and then Django receive the whole request
body into temporary files before any view runs, so this view cannot stop a client
from sending too much; it refuses by Content-Length before parsing, and the upload
handler stops writing once the file passes VSYNC_UPLOAD_MAX_BYTES. Limit the body at
the reverse proxy too (nginx ``client_max_body_size``) to stop oversize uploads early.
"""

from __future__ import annotations

import math
import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from rooms.api.http import api_write, json_error, json_response, origin_allowed
from rooms.commands import MAX_URL_LENGTH, parse_json
from rooms.media.refresh import RefreshFailed, room_media_refresh
from rooms.media.uploads import NotMedia, StreamingMediaUploadHandler, keep_upload, remove_upload
from rooms.models import Room
from rooms.ratelimit import command_limiter
from rooms.services import ControlDenied, room_apply_command
from rooms.state import Command, InvalidCommand, Media, Rejected

# Room for the multipart boundaries, part headers and the small form fields around the file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


@csrf_exempt
@require_http_methods(["POST"])
def room_media_upload(request: HttpRequest, slug: str) -> HttpResponse:
    """``POST /api/rooms/{slug}/media``: multipart ``file`` (+ optional ``client_id``, ``client_ms``)."""
    if not origin_allowed(request.headers.get("Origin")):
        return json_error(403, "cross-origin request refused")
    if not Room.objects.filter(slug=slug).exists():
        return json_error(404, f"no room {slug!r}")
    max_bytes = settings.VSYNC_UPLOAD_MAX_BYTES
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > max_bytes + MULTIPART_OVERHEAD_BYTES:
        return _too_large(max_bytes)
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
        if client_id is not None and not command_limiter.allow(slug, client_id):
            return json_error(429, "too many commands from this client_id; slow down")
        try:
            stored = keep_upload(handler, upload.name or "")
        except NotMedia as exc:
            return json_error(400, str(exc), "file")
    finally:
        handler.discard()  # whatever was not kept
    return _switch_to_upload(slug, stored.name, stored.title, client_id, client_ms)


def _switch_to_upload(slug: str, name: str, title: str, client_id: str | None,
                      client_ms: float | None) -> HttpResponse:
    media = Media(url=f"{settings.MEDIA_URL}{name}", title=title, duration=None, source="upload")
    accepted_ms = time.time() * 1000.0
    try:
        if client_ms is None:
            # Uploading takes a while; the switch orders after everything applied meanwhile.
            current = Room.objects.get(slug=slug).room_state
            client_ms = max(accepted_ms, current.client_ms + 0.001)
        command = Command(type="media", client_id=client_id, client_ms=client_ms, url=media.url, media=media)
        result = room_apply_command(slug=slug, command=command, at_ms=accepted_ms)
    except Room.DoesNotExist:
        remove_upload(name)
        return json_error(404, f"no room {slug!r}")
    except ControlDenied as exc:
        remove_upload(name)
        return json_error(403, str(exc))
    if isinstance(result, Rejected):
        remove_upload(name)
        if result.reason == "stale":
            return json_response({"accepted": False, "reason": "stale", "state": result.state.to_dict()}, 409)
        return json_error(400, result.error, result.field)
    return json_response({"accepted": True, "state": result.to_dict()})


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
@api_write()
def room_media_error(request: HttpRequest, slug: str) -> HttpResponse:
    """``POST /api/rooms/{slug}/media/error`` ``{"client_id", "url"}``: the player failed on ``url``."""
    try:
        data = parse_json(request.body)
        if not isinstance(data, dict):
            raise InvalidCommand("the body must be a JSON object", "body")
        client_id, url = data.get("client_id"), data.get("url")
        if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
            raise InvalidCommand("client_id: must be a string of 1 to 64 characters", "client_id")
        if not isinstance(url, str) or not 1 <= len(url) <= MAX_URL_LENGTH:
            raise InvalidCommand(f"url: must be a string of 1 to {MAX_URL_LENGTH} characters", "url")
    except InvalidCommand as exc:
        return json_error(400, exc.error, exc.field)
    if not command_limiter.allow(slug, client_id):
        return json_error(429, "too many reports from this client_id; slow down")
    try:
        outcome = room_media_refresh(slug=slug, reported_url=url)
    except Room.DoesNotExist:
        return json_error(404, f"no room {slug!r}")
    except RefreshFailed as exc:
        return json_error(502, f"re-resolving the media failed: {exc}")
    body = {"accepted": outcome.refreshed, "state": outcome.state.to_dict()}
    if not outcome.refreshed:
        body["reason"] = outcome.reason
    return json_response(body, status=409 if outcome.reason == "stale" else 200)
