"""Per-address media resolution limits (issue 11, row 5): 429 + Retry-After, nothing changes; others unaffected."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from django.test import Client

from rooms import intake, limits
from rooms.media import sources, ytdlp
from rooms.models import Room
from rooms.results import Result

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fake_site(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The outside world's edge: no DNS and no yt-dlp here (the guard and the resolver have their own tests)."""
    limits.reset_all()
    sources.resolution_cache.clear()
    monkeypatch.setattr(sources, "check_url", lambda url: "video.example")
    monkeypatch.setattr(ytdlp, "extract", lambda url: ytdlp.Extracted(
        url=url, title="clip", duration=10.0, thumbnail="", direct=True))
    yield
    limits.reset_all()
    sources.resolution_cache.clear()


def media(client: Client, url: str, address: str, client_id: str = "resolver") -> tuple[int, dict, str]:
    body = {"type": "media", "client_id": client_id, "client_ms": time.time() * 1000, "url": url}
    response = client.post("/api/rooms/demo/commands", json.dumps(body), content_type="application/json",
                           REMOTE_ADDR=address)
    return response.status_code, response.json(), response.get("Retry-After", "")


def test_ten_resolutions_at_once_then_429_with_retry_after_and_nothing_changes() -> None:
    client = Client()
    for index in range(10):
        status, body, _ = media(client, f"https://video.example/{index}.mp4", "198.51.100.7", f"c{index}")
        assert status == 200, body
    version = Room.objects.get(slug="demo").version
    status, body, retry_after = media(client, "https://video.example/over.mp4", "198.51.100.7", "c-over")
    assert status == 429, body
    assert "error" in body and int(retry_after) >= 1
    assert Room.objects.get(slug="demo").version == version
    # Another address is not affected, and this server's own media never counts.
    assert media(client, "https://video.example/other.mp4", "198.51.100.8", "c-other")[0] == 200
    assert media(client, sources.DEMO_MEDIA.url, "198.51.100.7", "c-local")[0] == 200


def test_at_most_two_resolutions_run_at_once_per_address() -> None:
    release = threading.Event()
    started = threading.Semaphore(0)

    def slow_extract(url: str) -> ytdlp.Extracted:
        started.release()
        release.wait(10)
        return ytdlp.Extracted(url=url, title="slow", duration=None, thumbnail="", direct=True)

    results: list[object] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ytdlp, "extract", slow_extract)
        threads = [threading.Thread(target=lambda i=i: results.append(
            intake.resolve_for(f"https://slow.example/{i}.mp4", "198.51.100.9"))) for i in range(2)]
        for thread in threads:
            thread.start()
        assert started.acquire(timeout=5) and started.acquire(timeout=5)
        began = time.monotonic()
        third = intake.resolve_for("https://slow.example/3.mp4", "198.51.100.9")
        assert time.monotonic() - began < 1.0  # refused at once, not queued behind the slow ones
        assert isinstance(third, Result) and third.kind == "limited" and (third.retry_after_s or 0) >= 1
        release.set()
        for thread in threads:
            thread.join(10)
    assert [type(r) for r in results] == [sources.ResolvedMedia, sources.ResolvedMedia]
    assert len(limits.ADDRESS_RESOLUTIONS_IN_FLIGHT) == 0  # slots given back
    assert isinstance(intake.resolve_for("https://slow.example/4.mp4", "198.51.100.9"), sources.ResolvedMedia)
