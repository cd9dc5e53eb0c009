"""``GET /healthz`` (do the database and Redis answer?) and ``GET /metrics`` (Prometheus text, loopback or token).

Both are for the machine's operator and its load balancer, not for viewers: /healthz says
only ok or not, /metrics needs the loopback address or ``Authorization: Bearer $METRICS_TOKEN``.
"""

from __future__ import annotations

import hmac
import ipaddress

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse

from rooms.api.http import json_error, json_response
from vsync.observability import METRICS_CONTENT_TYPE, client_address, metrics_text

# A load balancer asks every few seconds; an answer slower than this is as good as none.
CHECK_TIMEOUT_S = 2.0


def healthz(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return json_error(405, "use GET")
    checks = {"database": _database(), "redis": _redis()}
    ok = checks["database"] == "ok" and checks["redis"] in ("ok", "not configured")
    return json_response({"ok": ok, **checks}, status=200 if ok else 503, Cache_Control="no-store")


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return "ok"
    except Exception as exc:  # any failure is an answer here, not a 500
        return f"error: {type(exc).__name__}"


def _redis() -> str:
    if not settings.REDIS_URL:
        return "not configured"
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=CHECK_TIMEOUT_S,
                                  socket_connect_timeout=CHECK_TIMEOUT_S)
    try:
        return "ok" if client.ping() else "error: no PONG"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    finally:
        client.close()


def metrics(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return json_error(405, "use GET")
    if not (_from_loopback(request) or _has_token(request)):
        return json_error(403, "metrics are served to loopback or with Authorization: Bearer $METRICS_TOKEN")
    return HttpResponse(metrics_text(), content_type=METRICS_CONTENT_TYPE, headers={"Cache-Control": "no-store"})


def _from_loopback(request: HttpRequest) -> bool:
    headers = [(name.lower().encode(), value.encode("latin-1", "replace")) for name, value in request.headers.items()]
    address = client_address(request.META.get("REMOTE_ADDR"), headers, settings.VSYNC_TRUSTED_PROXIES)
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _has_token(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    offered = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(offered.encode(), f"Bearer {token}".encode())
