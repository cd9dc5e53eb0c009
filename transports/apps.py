from __future__ import annotations

from django.apps import AppConfig


class TransportsConfig(AppConfig):
    name = "transports"
    verbose_name = "Transports"

    def ready(self) -> None:
        from rooms.signals import (
            chat_message_deleted,
            chat_message_posted,
            member_ended,
            room_access_changed,
            room_state_changed,
        )
        from transports import checks  # noqa: F401 -- registers the system checks
        from transports.hub import (
            on_chat_message_deleted,
            on_chat_message_posted,
            on_member_ended,
            on_room_access_changed,
            on_room_state_changed,
        )

        room_state_changed.connect(on_room_state_changed, dispatch_uid="transports.hub")
        member_ended.connect(on_member_ended, dispatch_uid="transports.hub.member_ended")
        room_access_changed.connect(on_room_access_changed, dispatch_uid="transports.hub.access_changed")
        chat_message_posted.connect(on_chat_message_posted, dispatch_uid="transports.hub.chat")
        chat_message_deleted.connect(on_chat_message_deleted, dispatch_uid="transports.hub.chat_delete")
