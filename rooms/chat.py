"""A room's chat: posting (cleaned, limited, numbered), the history, and moderation (delete, mute).

Every function answers a transport-neutral ``Result`` (HTTP maps it in
``rooms.api.http.result_response``; a WebSocket ack can reuse it), except
``chat_messages_after``, which the waiting transports call for the history.
Each new message and each deletion is published on commit
(``rooms.signals.chat_message_posted`` / ``chat_message_deleted``). Sync: touches the database.
"""

from __future__ import annotations

import math
import unicodedata
from functools import partial
from typing import Any

from django.db import transaction

from rooms.access import Access, banned
from rooms.limits import TokenBuckets, address_limit
from rooms.models import ChatMessage, Member, Room
from rooms.results import Result, accepted, invalid, limited, not_found, refused
from rooms.services import now_ms
from rooms.signals import chat_message_deleted, chat_message_posted

MAX_TEXT_CHARS = 500  # CONTRACT v2, after cleaning
PAGE_SIZE = 100  # CONTRACT v2: at most 100 messages per answer
# History is bounded: the newest this many messages per room are kept.
KEEP_MESSAGES = 1_000
# A mute longer than a month is a ban by another name; the kick endpoint does that.
MAX_MUTE_S = 30 * 24 * 3600.0

# CONTRACT v2 allows each client at least 1 message a second sustained with a burst of 5;
# that is also where a flood starts, so exactly that.
CLIENT_CHAT = TokenBuckets(rate=1.0, burst=5.0)
# Per address (off with VSYNC_ADDRESS_LIMITS=off): a classroom behind one NAT, twenty
# people chatting at the client limit, passes; one script rotating client_ids does not.
ADDRESS_CHAT = TokenBuckets(rate=20.0, burst=40.0)


def clean_chat_text(text: str) -> str:
    """Trimmed, without Unicode Cc and Cf characters except newlines (CRLF and CR become LF)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    kept = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cf"))
    return kept.strip()


def message_dict(message: ChatMessage) -> dict[str, Any]:
    """A message as on the wire."""
    return {"id": message.seq, "client_id": message.client_id, "name": message.name, "text": message.text,
            "ms": message.ms}


def chat_submit(*, slug: str, access: Access, data: Any) -> Result:
    """Post ``data`` (``{"client_id", "text"}``) as a chat message in room ``slug``; payload ``{"message"}``."""
    if not isinstance(data, dict):
        return invalid("the body must be a JSON object", "body")
    client_id, text = data.get("client_id"), data.get("text")
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
        return invalid("client_id: must be a string of 1 to 64 characters", "client_id")
    if not isinstance(text, str):
        return invalid("text: must be a string", "text")
    if access.client_id is not None and client_id != access.client_id:
        return refused("denied", "client_id is not the one your member token was issued to", "client_id")
    cleaned = clean_chat_text(text)
    if not 1 <= len(cleaned) <= MAX_TEXT_CHARS:
        return invalid(f"text: must hold 1 to {MAX_TEXT_CHARS} characters after trimming", "text")
    if (wait_s := CLIENT_CHAT.take((slug, client_id))) is not None:
        return limited("too many chat messages from this client_id; slow down", wait_s)
    if (wait_s := address_limit(ADDRESS_CHAT, access.address)) is not None:
        return limited("too many chat messages from this address; slow down", wait_s)
    return _post(slug=slug, client_id=client_id, text=cleaned)


def _post(*, slug: str, client_id: str, text: str) -> Result:
    at_ms = now_ms()
    with transaction.atomic():
        # The row lock orders the room's messages: ids increase by one, none shared.
        room = Room.objects.select_for_update().filter(slug=slug).first()
        if room is None:
            return not_found(slug)
        if banned(room, client_id=client_id):
            return refused("denied", "you are banned from this room")
        member = Member.objects.filter(room=room, client_id=client_id).only("name", "muted_until_ms").first()
        if member is not None and member.muted_until_ms is not None and member.muted_until_ms > at_ms:
            return refused("denied", "you are muted in this room")
        room.chat_seq += 1
        room.save(update_fields=["chat_seq"])
        message = ChatMessage.objects.create(room=room, seq=room.chat_seq, client_id=client_id,
                                             name=member.name if member else "", text=text, ms=at_ms)
        ChatMessage.objects.filter(room=room, seq__lte=room.chat_seq - KEEP_MESSAGES).delete()
        body = message_dict(message)
        transaction.on_commit(partial(chat_message_posted.send, sender=ChatMessage, room=slug, message=body))
    return accepted(payload={"message": body})


def chat_messages_after(*, slug: str, after: int = 0, limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """Messages with id > ``after``, oldest first, at most ``limit``: the oldest of them when ``after`` > 0
    (a client catching up reads on from there), the newest when ``after`` is 0. Raises Room.DoesNotExist."""
    room_id = Room.objects.filter(slug=slug).values_list("id", flat=True).get()
    visible = ChatMessage.objects.filter(room_id=room_id, deleted=False, seq__gt=after)
    if after > 0:
        return [message_dict(message) for message in visible.order_by("seq")[:limit]]
    newest = list(visible.order_by("-seq")[:limit])
    return [message_dict(message) for message in reversed(newest)]


def chat_message_delete(*, slug: str, access: Access, message_id: int) -> Result:
    """A moderator removes message ``message_id`` from the history; payload ``{"deleted": id}``."""
    if not access.moderates:
        return refused("denied", "only the owner and hosts may delete chat messages")
    with transaction.atomic():
        updated = ChatMessage.objects.filter(room__slug=slug, seq=message_id, deleted=False).update(
            deleted=True, text="")
        if not updated:
            return refused("not_found", f"no chat message {message_id} in this room")
        transaction.on_commit(partial(chat_message_deleted.send, sender=ChatMessage, room=slug,
                                      message_id=message_id))
    return accepted(payload={"deleted": message_id})


def member_mute(*, slug: str, access: Access, data: Any) -> Result:
    """A moderator mutes ``client_id`` for ``seconds`` (0 lifts it); payload ``{"client_id", "muted_until_ms"}``."""
    if not access.moderates:
        return refused("denied", "only the owner and hosts may mute members")
    if not isinstance(data, dict):
        return invalid("the body must be a JSON object", "body")
    client_id, seconds = data.get("client_id"), data.get("seconds")
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
        return invalid("client_id: must be a string of 1 to 64 characters", "client_id")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) \
            or not 0 <= seconds <= MAX_MUTE_S:
        return invalid(f"seconds: must be a number from 0 to {MAX_MUTE_S:.0f}", "seconds")
    until_ms = now_ms() + seconds * 1000.0 if seconds > 0 else None
    with transaction.atomic():
        member = Member.objects.select_for_update().filter(room__slug=slug, client_id=client_id).first()
        if member is None:
            return refused("not_found", f"no member {client_id!r} in this room")
        if member.role == Member.Role.OWNER:
            return refused("denied", "nobody can mute the owner")
        member.muted_until_ms = until_ms
        member.save(update_fields=["muted_until_ms"])
    return accepted(payload={"client_id": client_id, "muted_until_ms": until_ms})
