"""The one publish hook: sent after a new room version has committed."""

from __future__ import annotations

from django.dispatch import Signal

# Sent with ``state`` (a RoomState) once the transaction that made it has committed,
# never before: a viewer must not see a version that a rollback undid.
room_state_changed = Signal()
