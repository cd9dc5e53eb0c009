"""Admin: rooms with their live state, the event log, and actions that go through the service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from rooms.media.refresh import RefreshFailed, room_media_refresh
from rooms.media.sources import DEMO_MEDIA
from rooms.membership import room_clear_bans, room_transfer_ownership
from rooms.models import Member, Room, RoomEvent
from rooms.presence import room_member_counts, room_members
from rooms.services import now_ms, room_create, room_server_command
from rooms.state import Rejected

EVENTS_PER_PAGE = 20

if TYPE_CHECKING:  # the admin's classes are generic only in django-stubs, not at run time
    from django.forms import ModelForm

    EventFormSetBase = BaseInlineFormSet[RoomEvent, Room, ModelForm[RoomEvent]]
    EventInlineBase = admin.TabularInline[RoomEvent, Room]
    RoomAdminBase = admin.ModelAdmin[Room]
    RoomEventAdminBase = admin.ModelAdmin[RoomEvent]
else:
    EventFormSetBase = BaseInlineFormSet
    EventInlineBase = admin.TabularInline
    RoomAdminBase = RoomEventAdminBase = admin.ModelAdmin


class EventPageFormSet(EventFormSetBase):
    """Shows one page of the log, newest first; the page comes from ?events_page=."""

    request: HttpRequest | None = None

    def get_queryset(self) -> QuerySet[RoomEvent]:
        if not hasattr(self, "_page_queryset"):
            events = super().get_queryset().order_by("-version")
            number = self.request.GET.get("events_page", "1") if self.request else "1"
            self.page = Paginator(events, EVENTS_PER_PAGE).get_page(number)
            self._page_queryset = events.filter(pk__in=[event.pk for event in self.page.object_list])
        return self._page_queryset


class RoomEventInline(EventInlineBase):
    model = RoomEvent
    formset = EventPageFormSet
    template = "admin/rooms/event_inline.html"
    fields = ("version", "command", "author", "accepted_ms", "state")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset: Any = super().get_formset(request, obj, **kwargs)
        formset.request = request
        return formset


@admin.register(Room)
class RoomAdmin(RoomAdminBase):
    list_display = ("slug", "name", "playing", "position_now", "version", "members", "media_source",
                    "control", "owned", "has_password", "listed", "buffering_policy")
    list_filter = ("playing", "control", "listed", "buffering_policy")
    search_fields = ("slug", "name")
    readonly_fields = ("version", "playing", "position_now", "members", "who", "media_source", "media_title",
                       "media_stream_url", "media_duration", "media_thumbnail", "media_page_url", "media_expires",
                       "state", "created_at", "owned", "has_password", "hosts", "bans")
    fieldsets = (
        (None, {"fields": ("slug", "name")}),
        ("Live state", {"fields": ("version", "playing", "position_now", "members", "who", "state")}),
        ("Media", {"fields": ("media_title", "media_source", "media_stream_url", "media_duration", "media_thumbnail",
                              "media_page_url", "media_expires")}),
        ("Policy", {"fields": ("control", "start_lead_ms", "buffering_policy", "buffering_timeout_s")}),
        # Whether there is an owner or a password, never the secrets (only their hashes are stored).
        ("Ownership", {"fields": ("owned", "has_password", "listed", "hosts", "bans")}),
    )
    inlines = [RoomEventInline]
    actions = ["pause_everyone", "seek_everyone_to_start", "re_resolve_media", "transfer_ownership", "clear_bans"]

    def get_readonly_fields(self, request: HttpRequest, obj: Room | None = None) -> tuple[str, ...]:
        # The slug names the room on the wire; changing it would orphan every viewer.
        return self.readonly_fields + (("slug",) if obj else ())

    @admin.display(description="position now (s)")
    def position_now(self, room: Room) -> str:
        return f"{room.room_state.position_at(now_ms()):.1f}"

    @admin.display(description="members")
    def members(self, room: Room) -> int:
        return room_member_counts([room.slug]).get(room.slug, 0)

    @admin.display(description="who is here")
    def who(self, room: Room) -> str:
        # Read-only text, not an inline: viewers write members, and an inline formset
        # would make every policy edit carry its management form.
        members = room_members(room)
        return "; ".join(f"{m['name'] or m['client_id']} ({m['transport']}, {m['status']})" for m in members) or "-"

    @admin.display(description="owner", boolean=True)
    def owned(self, room: Room) -> bool:
        return bool(room.owner_token_hash)

    @admin.display(description="password", boolean=True)
    def has_password(self, room: Room) -> bool:
        return bool(room.password_hash)

    @admin.display(description="hosts")
    def hosts(self, room: Room) -> str:
        hosts = room.members.filter(role=Member.Role.HOST).exclude(token_hash="")
        return ", ".join(m.name or m.client_id for m in hosts) or "-"

    @admin.display(description="bans")
    def bans(self, room: Room) -> str:
        bans = list(room.bans.all()[:20])
        return "; ".join(f"{ban.client_id}" + (f" ({ban.address})" if ban.address else "") for ban in bans) or "-"

    @admin.display(description="media source")
    def media_source(self, room: Room) -> str:
        return room.room_state.media.source

    @admin.display(description="media title")
    def media_title(self, room: Room) -> str:
        return room.room_state.media.title

    @admin.display(description="stream URL")
    def media_stream_url(self, room: Room) -> str:
        return room.room_state.media.url

    @admin.display(description="duration (s)")
    def media_duration(self, room: Room) -> str:
        duration = room.state["media"].get("duration")
        return "unknown" if duration is None else f"{duration:.1f}"

    @admin.display(description="thumbnail")
    def media_thumbnail(self, room: Room) -> str:
        return room.state["media"].get("thumbnail") or "-"

    @admin.display(description="stream URL expires")
    def media_expires(self, room: Room) -> str:
        if room.media_expires_ms is None:
            return "never"
        left_s = (room.media_expires_ms - now_ms()) / 1000.0
        when = datetime.fromtimestamp(room.media_expires_ms / 1000.0, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{when} (in {left_s / 60:.0f} min)" if left_s > 0 else f"{when} (expired)"

    def save_model(self, request: HttpRequest, obj: Room, form: Any, change: bool) -> None:
        if not change:
            created = room_create(name=obj.name, slug=obj.slug, media=DEMO_MEDIA)
            obj.pk, obj.slug, obj.created_at = created.pk, created.slug, created.created_at
            obj.set_room_state(created.room_state)
            obj._state.adding = False
        # Policy fields only: the state is written by the service, never by the form.
        super().save_model(request, obj, form, change)

    @admin.action(description="Pause everyone (a versioned command, pushed to every viewer)")
    def pause_everyone(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        for room in queryset:
            position = room.room_state.position_at(now_ms())
            self._report(request, room, room_server_command(slug=room.slug, type="pause", position=position))

    @admin.action(description="Seek everyone to 0:00")
    def seek_everyone_to_start(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        for room in queryset:
            self._report(request, room, room_server_command(slug=room.slug, type="seek", position=0.0))

    @admin.action(description="Re-resolve media from its page (a new stream URL, same position)")
    def re_resolve_media(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        for room in queryset:
            try:
                outcome = room_media_refresh(slug=room.slug)
            except RefreshFailed as exc:
                self.message_user(request, f"{room.slug}: re-resolving failed: {exc}", messages.ERROR)
                continue
            if outcome.refreshed:
                self.message_user(request, f"{room.slug}: new stream URL at version {outcome.state.version}")
            else:
                reason = outcome.reason.replace("_", " ")
                self.message_user(request, f"{room.slug}: nothing to do ({reason})", messages.WARNING)

    @admin.action(description="Transfer ownership: a new owner token, shown once (the old owner's members "
                              "become viewers)")
    def transfer_ownership(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        for room in queryset:
            token = room_transfer_ownership(slug=room.slug)
            # Shown here once and never stored in the clear: copy it now.
            self.message_user(request, f"{room.slug}: new owner token {token}", messages.WARNING)

    @admin.action(description="Clear bans")
    def clear_bans(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        for room in queryset:
            self.message_user(request, f"{room.slug}: {room_clear_bans(slug=room.slug)} ban(s) lifted")

    def _report(self, request: HttpRequest, room: Room, result: Any) -> None:
        if isinstance(result, Rejected):
            self.message_user(request, f"{room.slug}: refused ({result.reason})", messages.WARNING)
        else:
            self.message_user(request, f"{room.slug}: now at version {result.version}")


@admin.register(RoomEvent)
class RoomEventAdmin(RoomEventAdminBase):
    list_display = ("room", "version", "author", "accepted_ms")
    list_filter = ("room",)
    search_fields = ("room__slug", "author")
    readonly_fields = ("room", "version", "command", "author", "accepted_ms", "state")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
