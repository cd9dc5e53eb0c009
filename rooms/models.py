"""A room with its current state, and the append-only log of every accepted version."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from rooms.state import RoomState

SLUG_PATTERN = r"[a-z0-9-]{1,64}"

# A scheduled start must cover the slowest member's one-way delay, but a lead the
# person can feel (beyond about a second) makes the controls seem broken.
START_LEAD_MIN_MS = 100
START_LEAD_MAX_MS = 1500
START_LEAD_DEFAULT_MS = 300


class Room(models.Model):
    class Control(models.TextChoices):
        OPEN = "open", "Every member may control playback"
        HOSTS = "hosts", "Only the owner and hosts may control playback"
        LOCKED = "locked", "Only admins may control playback"

    class Buffering(models.TextChoices):
        WAIT = "wait", "Pause everyone while a member buffers"
        IGNORE = "ignore", "Let a buffering member catch up alone"

    slug = models.SlugField(max_length=64, unique=True, validators=[RegexValidator(f"^{SLUG_PATTERN}$")])
    name = models.CharField(max_length=100)
    state = models.JSONField(help_text="The current version, exactly as sent on the wire.")
    version = models.PositiveIntegerField(default=1, editable=False)
    playing = models.BooleanField(default=False, editable=False)
    media_page_url = models.URLField(max_length=2048, blank=True,
                                     help_text="The page or URL the media was resolved from.")
    media_expires_ms = models.FloatField(null=True, blank=True,
                                         help_text="When the resolved stream URL stops working.")
    control = models.CharField(max_length=8, choices=Control.choices, default=Control.OPEN)
    start_lead_ms = models.PositiveIntegerField(
        default=START_LEAD_DEFAULT_MS,
        validators=[MinValueValidator(START_LEAD_MIN_MS), MaxValueValidator(START_LEAD_MAX_MS)],
        help_text="How far ahead a play is scheduled so that everyone starts together.")
    buffering_policy = models.CharField(max_length=8, choices=Buffering.choices, default=Buffering.IGNORE)
    buffering_timeout_s = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(120)],
        help_text="Under 'wait', how long the room waits for a buffering member.")
    # Ownership (CONTRACT v2): secrets are stored only as hashes, never shown again.
    owner_token_hash = models.CharField(max_length=64, blank=True, editable=False,
                                        help_text="SHA-256 of the owner token; empty: nobody owns the room.")
    password_hash = models.CharField(max_length=128, blank=True, editable=False,
                                     help_text="Django password hash; empty: no password.")
    listed = models.BooleanField(default=True, help_text="Shown in the lobby (never while it has a password).")
    # Queue item ids increase per room and are never reused.
    next_queue_item_id = models.PositiveIntegerField(default=1, editable=False)
    # Chat message ids increase by one per message in the room.
    chat_seq = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name

    @property
    def room_state(self) -> RoomState:
        return RoomState.from_dict(self.state)

    def set_room_state(self, state: RoomState) -> None:
        self.state = state.to_dict()
        self.version = state.version
        self.playing = state.playing


class RoomEvent(models.Model):
    """One accepted version. Never updated or deleted: the record of the room's history."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="events")
    version = models.PositiveIntegerField()
    command = models.JSONField()
    author = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 -- null: the server
    accepted_ms = models.FloatField()
    state = models.JSONField()

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["room", "version"], name="room_event_version_unique")]

    def __str__(self) -> str:
        return f"{self.room_id} v{self.version} {self.command.get('type')}"


class Member(models.Model):
    """A viewer in a room: who joined (role, token) and what its last presence report described."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        HOST = "host", "Host"
        VIEWER = "viewer", "Viewer"

    class Transport(models.TextChoices):
        POLL = "poll", "Short polling"
        LONGPOLL = "longpoll", "Long polling"
        SSE = "sse", "Server-sent events"
        WS = "ws", "WebSocket"

    class Status(models.TextChoices):
        PLAYING = "playing", "Playing"
        PAUSED = "paused", "Paused"
        BUFFERING = "buffering", "Buffering"
        AWAY = "away", "Away"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="members")
    client_id = models.CharField(max_length=64)
    name = models.CharField(max_length=40, blank=True)
    transport = models.CharField(max_length=8, choices=Transport.choices)
    rtt_ms = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.PAUSED)
    drift_ms = models.FloatField(null=True, blank=True)
    # How long this page takes from play() to moving media (its sync engine learns it).
    startup_ms = models.FloatField(null=True, blank=True)
    # When the current run of buffering reports began; None while not buffering.
    buffering_since_ms = models.FloatField(null=True, blank=True)
    last_seen = models.DateTimeField()
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.VIEWER)
    # SHA-256 of the member token issued by /join; empty for presence-only members.
    token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    muted_until_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["name", "client_id"]
        constraints = [models.UniqueConstraint(fields=["room", "client_id"], name="member_client_unique")]

    def __str__(self) -> str:
        return f"{self.name or self.client_id} in {self.room_id}"


class BufferingHold(models.Model):
    """Under the `wait` policy: the room was paused by the server for a buffering member.

    ``version`` is the pause it made; if anyone changes the room after it, the hold
    is dropped instead of resumed, so a person's pause is never undone.
    """

    room = models.OneToOneField(Room, on_delete=models.CASCADE, related_name="buffering_hold")
    version = models.PositiveIntegerField()
    position = models.FloatField()
    since_ms = models.FloatField()

    def __str__(self) -> str:
        return f"hold on {self.room_id} at v{self.version}"


class Ban(models.Model):
    """Who may not join or send to a room again: by client_id, member token and address."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="bans")
    client_id = models.CharField(max_length=64)
    token_hash = models.CharField(max_length=64, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    banned_by = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.client_id} banned from {self.room_id}"


class ChatMessage(models.Model):
    """One chat message; ``seq`` is its id on the wire, increasing by one per room."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="chat_messages")
    seq = models.PositiveIntegerField()
    client_id = models.CharField(max_length=64)
    name = models.CharField(max_length=40, blank=True)
    text = models.CharField(max_length=500)
    ms = models.FloatField()
    deleted = models.BooleanField(default=False)

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["room", "seq"], name="chat_message_seq_unique")]

    def __str__(self) -> str:
        return f"{self.room_id} #{self.seq}"


class Upload(models.Model):
    """A file stored under MEDIA_ROOT (media or subtitles): who sent it, and since when nothing uses it."""

    class Kind(models.TextChoices):
        MEDIA = "media", "Media"
        SUBTITLES = "subtitles", "Subtitles"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.MEDIA)
    room = models.ForeignKey(Room, on_delete=models.SET_NULL, null=True, blank=True, related_name="uploads")
    client_id = models.CharField(max_length=64, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    created_ms = models.FloatField()
    # Set when the last room media or queue item that named it went away; deleted after the grace period.
    unreferenced_since_ms = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name
