"""Every VSYNC_* setting in one typed place, read from django.conf.settings with its default.

Properties, not module constants: ``override_settings`` in tests, and settings changed
after import, are seen at once. vsync/settings.py reads the environment; this module
only names and types what it read. Use ``from rooms.conf import conf``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


def _get(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


class Settings:
    @property
    def UPLOAD_MAX_BYTES(self) -> int:
        return int(_get("VSYNC_UPLOAD_MAX_BYTES", 512 * 1024**2))

    @property
    def MEDIA_ALLOW_HOSTS(self) -> list[str]:
        return list(_get("VSYNC_MEDIA_ALLOW_HOSTS", []))

    @property
    def MEDIA_MAX_HEIGHT(self) -> int:
        return int(_get("VSYNC_MEDIA_MAX_HEIGHT", 720))

    @property
    def RESOLVE_TIMEOUT_S(self) -> float:
        return float(_get("VSYNC_RESOLVE_TIMEOUT_S", 20.0))

    @property
    def RESOLVE_REFRESH_MARGIN_S(self) -> float:
        return float(_get("VSYNC_RESOLVE_REFRESH_MARGIN_S", 600.0))

    @property
    def RESOLVE_MAX_AGE_S(self) -> float:
        return float(_get("VSYNC_RESOLVE_MAX_AGE_S", 6 * 3600.0))

    @property
    def RESOLVE_CHECK_INTERVAL_S(self) -> float:
        return float(_get("VSYNC_RESOLVE_CHECK_INTERVAL_S", 30.0))

    @property
    def ADDRESS_LIMITS(self) -> bool:
        """Per-address limits (CONTRACT v2); False only when VSYNC_ADDRESS_LIMITS=off (load tests)."""
        return bool(_get("VSYNC_ADDRESS_LIMITS", True))

    @property
    def TRUSTED_PROXIES(self) -> list[str]:
        """Addresses whose X-Forwarded-For last hop is believed (the reverse proxy of make serve)."""
        return list(_get("VSYNC_TRUSTED_PROXIES", []))

    @property
    def SSE_HEARTBEAT_S(self) -> float:
        """How often an idle SSE stream carries a comment (the contract asks for at least every 15 s)."""
        return float(_get("VSYNC_SSE_HEARTBEAT_S", 10.0))

    @property
    def MAX_CONNECTIONS_PER_ADDRESS(self) -> int:
        return int(_get("VSYNC_MAX_CONNECTIONS_PER_ADDRESS", 1000))

    @property
    def UPLOAD_GRACE_S(self) -> float:
        return float(_get("VSYNC_UPLOAD_GRACE_S", 600.0))

    @property
    def UPLOAD_BYTES_PER_HOUR(self) -> int:
        return int(_get("VSYNC_UPLOAD_BYTES_PER_HOUR", 2 * 1024**3))

    @property
    def X_ACCEL_MEDIA(self) -> str:
        """make serve's internal nginx prefix for media handed over by X-Accel-Redirect ("": Django serves)."""
        return str(_get("VSYNC_X_ACCEL_MEDIA", ""))

    @property
    def END_SCHEDULER(self) -> bool:
        """Whether a serving process steps rooms on at the end of their media (tests turn it off)."""
        return bool(_get("VSYNC_END_SCHEDULER", True))

    @property
    def UPLOAD_SWEEPER(self) -> bool:
        """Whether a serving process deletes unreferenced uploads in the background (tests turn it off)."""
        return bool(_get("VSYNC_UPLOAD_SWEEPER", True))


conf = Settings()
