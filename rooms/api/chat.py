"""Chat over HTTP: post and read a room's messages; moderators delete messages and mute members.

``GET .../chat`` with ``timeout`` > 0 waits for a message: that one is answered by the
push transports in front of Django (they hold the request on the hub); this view
answers at once.
"""

from __future__ import annotations

import math

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_http_methods

from rooms.access import Access
from rooms.api.http import answer_json_body, json_body, json_error, json_response, result_response, room_endpoint
from rooms.chat import chat_message_delete, chat_messages_after, chat_submit, member_mute
from rooms.models import Room
from rooms.state import InvalidCommand

# The long poll's bound (CONTRACT: timeout at most 60).
MAX_TIMEOUT_S = 60.0


@require_http_methods(["GET", "POST"])
@room_endpoint()
def room_chat(request: HttpRequest, slug: str, access: Access) -> HttpResponse:
    """``POST`` ``{"client_id", "text"}`` -> 201 ``{"message"}``; ``GET ?after=<id>`` -> 200 ``{"messages"}``."""
    if request.method == "POST":
        try:
            data = json_body(request)
        except InvalidCommand as exc:
            return json_error(400, exc.error, exc.field)
        return result_response(chat_submit(slug=slug, access=access, data=data), status=201)
    after = request.GET.get("after", "0")
    if not after.isdigit() or len(after) > 18:
        return json_error(400, "after must be a message id (an integer >= 0)", "after")
    timeout = request.GET.get("timeout", "0")
    try:
        timeout_s = float(timeout)
    except ValueError:
        timeout_s = math.nan
    if not (math.isfinite(timeout_s) and 0 <= timeout_s <= MAX_TIMEOUT_S):
        return json_error(400, f"timeout must be a number of seconds from 0 to {MAX_TIMEOUT_S:.0f}", "timeout")
    try:
        messages = chat_messages_after(slug=slug, after=int(after))
    except Room.DoesNotExist:
        return json_error(404, f"no room {slug!r}")
    return json_response({"messages": messages}, Cache_Control="no-store")


@require_http_methods(["POST", "DELETE"])
@room_endpoint()
def room_chat_message(request: HttpRequest, slug: str, access: Access, message_id: int) -> HttpResponse:
    """``POST .../chat/{id}/delete`` or ``DELETE .../chat/{id}``: owner and hosts only."""
    return result_response(chat_message_delete(slug=slug, access=access, message_id=message_id))


@require_http_methods(["POST"])
@room_endpoint()
def room_mute(request: HttpRequest, slug: str, access: Access) -> HttpResponse:
    """``POST .../mute`` ``{"client_id", "seconds"}``: owner and hosts only; 0 seconds lifts the mute."""
    return answer_json_body(request, slug, access, member_mute)
