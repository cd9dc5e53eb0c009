"""``POST /api/rooms/{slug}/subtitles``: a WebVTT or SubRip file becomes a subtitle track of the current media.

Size: refused by Content-Length before the body is parsed, and the upload handler
stops keeping the file once it passes 1 MiB (the servers vsync runs under refuse an
oversize body by its route's limit before storing it: vsync.http_guard).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_http_methods

from rooms.access import Access
from rooms.api.http import client_address, result_response, room_endpoint
from rooms.api.multipart import declared_too_large, multipart_file, too_large
from rooms.media.subtitles import (
    MAX_SUBTITLE_BYTES,
    NotSubtitles,
    SubtitleUploadHandler,
    remove_subtitles,
    room_add_subtitles,
    store_subtitles,
    to_webvtt,
    track_label,
    track_lang,
)
from rooms.models import Room
from rooms.results import Result, accepted, invalid, not_found, refused
from rooms.state import InvalidCommand, Subtitle


@require_http_methods(["POST"])
@room_endpoint(max_body=None)
def room_subtitles(request: HttpRequest, slug: str, access: Access) -> HttpResponse:
    """Multipart ``file`` (+ optional ``label``, ``lang``, ``client_id``) -> 200 ``{"accepted", "state"}``."""
    if not access.can_control:
        return result_response(refused("denied", "only the owner and hosts may add subtitles in this room"))
    too_large_error = f"the subtitle file is larger than {MAX_SUBTITLE_BYTES} bytes"
    if declared_too_large(request, MAX_SUBTITLE_BYTES):
        return result_response(too_large(too_large_error))
    handler = SubtitleUploadHandler(request, max_bytes=MAX_SUBTITLE_BYTES)
    parsed = multipart_file(request, handler, too_large_error=too_large_error,
                            missing_error="a multipart field 'file' with a WebVTT or SubRip file is required")
    if isinstance(parsed, Result):
        return result_response(parsed)
    fields = parsed[1]
    client_id = access.client_id or fields.get("client_id") or ""
    try:
        if len(client_id) > 64:
            raise InvalidCommand("client_id must be 1 to 64 characters", "client_id")
        track_fields = {"label": track_label(fields.get("label")), "lang": track_lang(fields.get("lang"))}
        webvtt = to_webvtt(bytes(handler.data))
    except InvalidCommand as exc:
        return result_response(invalid(exc.error, exc.field))
    except NotSubtitles as exc:
        return result_response(invalid(str(exc), "file"))
    name = store_subtitles(webvtt, slug=slug, client_id=client_id, address=client_address(request))
    track = Subtitle(url=f"{settings.MEDIA_URL}{name}", **track_fields)
    try:
        state = room_add_subtitles(slug=slug, track=track, author=client_id or None)
    except Room.DoesNotExist:
        remove_subtitles(name)
        return result_response(not_found(slug))
    except InvalidCommand as exc:
        remove_subtitles(name)
        return result_response(invalid(exc.error, exc.field))
    return result_response(accepted(state))
