"""``POST /api/rooms/{slug}/commands``: a command over HTTP, answered as its Result says."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_http_methods

from rooms.access import Access
from rooms.api.http import answer_json_body, room_endpoint
from rooms.intake import command_submit


@require_http_methods(["POST"])
@room_endpoint()
def room_commands(request: HttpRequest, slug: str, access: Access) -> HttpResponse:
    return answer_json_body(request, slug, access, command_submit)
