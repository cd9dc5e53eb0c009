"""Delete uploads that no room uses any more, VSYNC_UPLOAD_GRACE_S after their last reference ended.

A sweep in each serving process (like rooms.media.refresh's thread) reads which
``/media/...`` names rooms reference (media, queue items, subtitles), marks the
uploads that nothing references with the moment it noticed, and deletes those
marked at least the grace period ago (viewers still loading one can finish). The
sweep runs every SWEEP_INTERVAL_S, so a file goes at most two intervals after the
grace period ends: within the contract's 5 s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

from rooms.background import PeriodicThread
from rooms.conf import conf
from rooms.models import Room, Upload

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 2.0


def referenced_names() -> set[str]:
    """Every file name under MEDIA_URL that some room's state names (media, queue, subtitles)."""
    prefix = settings.MEDIA_URL
    names: set[str] = set()
    for state in Room.objects.values_list("state", flat=True).iterator():
        names.update(url.split("?", 1)[0].removeprefix(prefix) for url in _urls(state) if url.startswith(prefix))
    return names


def _urls(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "url" and isinstance(item, str):
                yield item
            else:
                yield from _urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from _urls(item)


def uploads_sweep(now_ms: float | None = None) -> list[str]:
    """One sweep: mark newly unreferenced uploads, delete those past the grace period; the names deleted."""
    now_ms = time.time() * 1000.0 if now_ms is None else now_ms
    grace_ms = conf.UPLOAD_GRACE_S * 1000.0
    referenced = referenced_names()
    Upload.objects.filter(name__in=referenced, unreferenced_since_ms__isnull=False).update(unreferenced_since_ms=None)
    Upload.objects.exclude(name__in=referenced).filter(unreferenced_since_ms__isnull=True).update(
        unreferenced_since_ms=now_ms)
    deleted = []
    due = Upload.objects.exclude(name__in=referenced).filter(unreferenced_since_ms__lte=now_ms - grace_ms)
    for upload in due:
        (Path(settings.MEDIA_ROOT) / upload.name).unlink(missing_ok=True)
        upload.delete()
        deleted.append(upload.name)
    return deleted


def _sweep_and_log() -> None:
    deleted = uploads_sweep()
    if deleted:
        logger.info("deleted %d unreferenced upload(s): %s", len(deleted), ", ".join(deleted))


_sweeper = PeriodicThread(name="upload-sweeper", work=_sweep_and_log,
                          interval_s=lambda: min(SWEEP_INTERVAL_S, max(0.2, conf.UPLOAD_GRACE_S / 2)))


def ensure_upload_sweeper() -> None:
    """Start this process's sweep thread, once (a serving process; off with VSYNC_UPLOAD_SWEEPER = False)."""
    if conf.UPLOAD_SWEEPER:
        _sweeper.ensure_started()


def stop_upload_sweeper() -> None:
    _sweeper.stop()
