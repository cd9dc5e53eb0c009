"""``POST /api/rooms/{slug}/commands``: a command over HTTP, answered as its outcome says."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_http_methods

from rooms.api.http import answer_json_body, api_write
from rooms.intake import submit_command


@require_http_methods(["POST"])
@api_write()
def room_commands(request: HttpRequest, slug: str) -> HttpResponse:
    return answer_json_body(request, slug, submit_command)
