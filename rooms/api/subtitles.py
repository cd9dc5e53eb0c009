"""``POST /api/rooms/{slug}/subtitles``: a WebVTT or SubRip file becomes a subtitle track of the current media.

Size: refused by Content-Length before the body is parsed, and the upload handler
stops keeping the file once it passes 1 MiB (the servers vsync runs under refuse an
oversize body by its route's limit before storing it: vsync.http_guard).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.http import require_http_methods

from rooms.access import Access
from rooms.api.http import client_address, json_error, json_response, room_endpoint
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
from rooms.state import InvalidCommand, Subtitle

# Multipart boundaries, part headers and the small fields (label, lang, client_id) around the file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


@require_http_methods(["POST"])
@room_endpoint(max_body=None)
def room_subtitles(request: HttpRequest, slug: str, access: Access) -> HttpResponse:
    """Multipart ``file`` (+ optional ``label``, ``lang``, ``client_id``) -> 200 ``{"accepted", "state"}``."""
    if not access.can_control:
        return json_error(403, "only the owner and hosts may add subtitles in this room")
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > MAX_SUBTITLE_BYTES + MULTIPART_OVERHEAD_BYTES:
        return _too_large()
    handler = SubtitleUploadHandler(request, max_bytes=MAX_SUBTITLE_BYTES)
    request.upload_handlers = [handler]
    try:
        upload = request.FILES.get("file")
        fields = request.POST
    except MultiPartParserError as exc:
        return json_error(400, f"malformed multipart body: {exc}", "file")
    if handler.too_large:
        return _too_large()
    if upload is None:
        return json_error(400, "a multipart field 'file' with a WebVTT or SubRip file is required", "file")
    client_id = access.client_id or fields.get("client_id") or ""
    try:
        if len(client_id) > 64:
            raise InvalidCommand("client_id must be 1 to 64 characters", "client_id")
        track_fields = {"label": track_label(fields.get("label")), "lang": track_lang(fields.get("lang"))}
        webvtt = to_webvtt(bytes(handler.data))
    except InvalidCommand as exc:
        return json_error(400, exc.error, exc.field)
    except NotSubtitles as exc:
        return json_error(400, str(exc), "file")
    name = store_subtitles(webvtt, slug=slug, client_id=client_id, address=client_address(request))
    track = Subtitle(url=f"{settings.MEDIA_URL}{name}", **track_fields)
    try:
        state = room_add_subtitles(slug=slug, track=track, author=client_id or None)
    except Room.DoesNotExist:
        remove_subtitles(name)
        return json_error(404, f"no room {slug!r}")
    except InvalidCommand as exc:
        remove_subtitles(name)
        return json_error(400, exc.error, exc.field)
    return json_response({"accepted": True, "state": state.to_dict()}, Cache_Control="no-store")


def _too_large() -> HttpResponse:
    return json_error(413, f"the subtitle file is larger than {MAX_SUBTITLE_BYTES} bytes")
