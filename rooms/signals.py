"""The one publish hook: sent after a new room version has committed."""

from __future__ import annotations

from django.dispatch import Signal

# Sent with ``state`` (a RoomState) once the transaction that made it has committed,
# never before: a viewer must not see a version that a rollback undid.
room_state_changed = Signal()

# Sent (after commit) with ``room`` (slug), ``client_id`` and ``code`` when a member must
# lose its open connections at once: kicked or banned (code 4403). The hub ends that
# member's SSE streams, long polls and WebSockets (close code ``code``).
member_ended = Signal()

# Sent (after commit) with ``room`` (slug) when who may read the room changed (a password
# was set): the hub re-checks every open connection of the room and ends those that no
# longer pass (code 4401).
room_access_changed = Signal()

# Sent (after commit) with ``room`` (slug) and ``message`` (the message as on the wire:
# id, client_id, name, text, ms) for every new chat message, in id order per room.
chat_message_posted = Signal()

# Sent (after commit) with ``room`` (slug) and ``message_id`` when a moderator deleted a
# chat message: every page showing it should drop it.
chat_message_deleted = Signal()
