"""Keep resolved stream URLs playable: re-resolve before they expire and when a viewer's player fails.

A refresh is a new version with the new URL and the same trajectory (see
``state.refresh_media``), so viewers swap the source without moving.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass

from rooms.background import PeriodicThread
from rooms.conf import conf
from rooms.media.sources import refresh_due, resolve_media
from rooms.models import Room
from rooms.services import now_ms, room_refresh_media
from rooms.state import InvalidCommand, RoomState

logger = logging.getLogger(__name__)

# After a failed re-resolution the background check leaves the room alone this long,
# so a site that is down is not asked again every interval for every room.
FAILURE_BACKOFF_S = 300.0


class RefreshFailed(Exception):
    """Re-resolving failed; ``str()`` is the short reason."""


@dataclass(frozen=True)
class RefreshOutcome:
    """``reason``: refreshed, unchanged (same URL again), not_refreshable, or stale (the
    reported URL is no longer the room's)."""

    state: RoomState
    reason: str

    @property
    def refreshed(self) -> bool:
        return self.reason == "refreshed"


_room_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
_room_locks_guard = threading.Lock()
_failed_until_ms: dict[str, float] = {}


def room_media_refresh(*, slug: str, reported_url: str | None = None) -> RefreshOutcome:
    """Re-resolve room ``slug``'s media from its page URL and push the new stream URL.

    With ``reported_url`` (a viewer's failing URL), nothing happens unless it is still
    the room's URL. Blocking. Raises Room.DoesNotExist and RefreshFailed.
    """
    with _room_locks_guard:
        lock = _room_locks[slug]
    # One re-resolution per room at a time: when a URL expires every viewer reports it,
    # and all but the first find the room already refreshed (stale).
    with lock:
        room = Room.objects.get(slug=slug)
        state = room.room_state
        if reported_url is not None and reported_url != state.media.url:
            return RefreshOutcome(state, "stale")
        if not room.media_page_url or state.media.source != "youtube":
            return RefreshOutcome(state, "not_refreshable")
        try:
            resolved = resolve_media(room.media_page_url, replacing=state.media.url)
        except InvalidCommand as exc:
            raise RefreshFailed(exc.error) from None
        result = room_refresh_media(slug=slug, page_url=room.media_page_url, media=resolved.media,
                                    expires_ms=resolved.expires_ms, replaces_url=state.media.url)
    if result is None:
        return RefreshOutcome(Room.objects.get(slug=slug).room_state, "unchanged")
    return RefreshOutcome(result, "refreshed")


def refresh_due_rooms(at_ms: float | None = None) -> list[str]:
    """Refresh every room whose stream URL is within the margin of expiring; the slugs refreshed."""
    at_ms = now_ms() if at_ms is None else at_ms
    latest_ms = at_ms + conf.RESOLVE_REFRESH_MARGIN_S * 1000.0
    due = Room.objects.filter(media_expires_ms__isnull=False, media_expires_ms__lte=latest_ms)
    refreshed = []
    for slug, expires_ms in due.values_list("slug", "media_expires_ms"):
        if not refresh_due(expires_ms, at_ms) or _failed_until_ms.get(slug, 0.0) > at_ms:
            continue
        try:
            if room_media_refresh(slug=slug).refreshed:
                refreshed.append(slug)
            _failed_until_ms.pop(slug, None)
        except RefreshFailed as exc:
            logger.warning("re-resolving the media of room %s failed: %s", slug, exc)
            _failed_until_ms[slug] = at_ms + FAILURE_BACKOFF_S * 1000.0
        except Room.DoesNotExist:
            continue
    return refreshed


def _refresh_and_log() -> None:
    refreshed = refresh_due_rooms()
    if refreshed:
        logger.info("refreshed expiring media of rooms %s", ", ".join(refreshed))


_refresher = PeriodicThread(name="media-refresher", work=_refresh_and_log,
                            interval_s=lambda: conf.RESOLVE_CHECK_INTERVAL_S)


def ensure_refresher() -> None:
    """Start this process's background check for due rooms, once (VSYNC_RESOLVE_CHECK_INTERVAL_S > 0)."""
    if conf.RESOLVE_CHECK_INTERVAL_S > 0:
        _refresher.ensure_started()


def stop_refresher() -> None:
    """Stop the background check and wait for it (tests; a process that exits needs nothing)."""
    _refresher.stop()
