"""System checks for the push transports' configuration."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

PUBSUB_LAYER = "channels_redis.pubsub.RedisPubSubChannelLayer"


@register()
def check_channel_layer(app_configs: Any, **kwargs: Any) -> list[Error | Warning]:
    layers = getattr(settings, "CHANNEL_LAYERS", {})
    if "default" not in layers:
        return [Error("CHANNEL_LAYERS has no 'default' layer; the push transports need one.",
                      hint="Set REDIS_URL, or keep the in-memory default.", id="transports.E001")]
    backend = layers["default"].get("BACKEND", "")
    if getattr(settings, "REDIS_URL", "") and backend != PUBSUB_LAYER:
        return [Warning(f"REDIS_URL is set but the channel layer is {backend}.",
                        hint=f"The hub is written for {PUBSUB_LAYER}: one subscription per room.",
                        id="transports.W001")]
    if backend == "channels.layers.InMemoryChannelLayer" and not settings.DEBUG:
        return [Warning("The in-memory channel layer serves one process only; rooms are not shared.",
                        hint="Set REDIS_URL to run several processes.", id="transports.W002")]
    return []
