"""Resolving URLs people bring, through yt-dlp's generic and html5 extractors, on 127.0.0.1 only."""

from __future__ import annotations

import time

import pytest
from yt_dlp.networking.exceptions import RequestError, TransportError
from yt_dlp.utils import DownloadError, ExtractorError, UnsupportedError

from rooms.media import ytdlp
from rooms.media.netguard import ForbiddenAddress
from rooms.media.sources import resolution_cache, resolve_media, stream_expiry_ms
from rooms.state import InvalidCommand
from tests.support import media_site as fixtures

# Fixtures shared by the media tests.
loopback_only, media_settings, media_site = fixtures.loopback_only, fixtures.media_settings, fixtures.media_site
pytestmark = pytest.mark.usefixtures("media_settings")


def refused(url: str) -> str:
    with pytest.raises(InvalidCommand) as info:
        resolve_media(url)
    assert info.value.field == "url"
    return info.value.error


def test_a_direct_webm_url_resolves_to_itself_as_direct_media(media_site):
    resolved = resolve_media(f"{media_site.url}/clip.webm")
    assert resolved.media.url == f"{media_site.url}/clip.webm"
    assert resolved.media.source == "direct"
    assert resolved.media.title == "clip"
    assert resolved.expires_ms is None
    assert not resolved.refreshable


def test_a_page_with_a_video_tag_resolves_to_its_stream_with_title_and_thumbnail(media_site):
    resolved = resolve_media(f"{media_site.url}/page.html")
    assert resolved.media.source == "youtube"
    assert resolved.media.url.startswith(f"{media_site.url}/clip.webm?sig=1&expire=")
    assert resolved.media.title.startswith("Test Page")
    assert resolved.media.thumbnail == f"{media_site.url}/thumb.jpg"
    assert resolved.page_url == f"{media_site.url}/page.html"
    assert resolved.refreshable


def test_the_stream_expiry_is_the_urls_expire_parameter(media_site):
    media_site.expire_in_s = 120
    before_ms = time.time() * 1000
    resolved = resolve_media(f"{media_site.url}/page.html")
    assert before_ms + 118_000 <= resolved.expires_ms <= before_ms + 121_000


def test_a_stream_url_without_expiry_is_trusted_for_the_maximum_age(settings):
    settings.VSYNC_RESOLVE_MAX_AGE_S = 60
    assert stream_expiry_ms("https://cdn.test/v.mp4", 1_000_000.0) == 1_060_000.0
    assert stream_expiry_ms("https://cdn.test/v.mp4?expire=999999999999", 1_000_000.0) == 1_060_000.0
    assert stream_expiry_ms("https://cdn.test/v.mp4?expire=1010", 1_000_000.0) == 1_010_000.0


def test_the_height_cap_picks_the_tallest_progressive_format_under_it(media_site, settings):
    settings.VSYNC_MEDIA_MAX_HEIGHT = 720
    assert resolve_media(f"{media_site.url}/sizes.html").media.url.endswith("?h=480")
    settings.VSYNC_MEDIA_MAX_HEIGHT = 200
    resolution_cache.clear()
    assert resolve_media(f"{media_site.url}/sizes.html").media.url.endswith("?h=240")


def test_resolutions_are_cached_until_shortly_before_expiry(media_site, settings):
    url = f"{media_site.url}/page.html"
    first = resolve_media(url)
    assert resolve_media(url) == first
    assert media_site.hits["/page.html"] == 1
    settings.VSYNC_RESOLVE_REFRESH_MARGIN_S = 7 * 3600  # every cached stream is now due
    assert resolve_media(url).media.url != first.media.url
    assert media_site.hits["/page.html"] == 2


def test_a_missing_page_is_not_found(media_site):
    assert refused(f"{media_site.url}/missing.html") == "not found: the page does not exist"


def test_a_text_file_is_not_media(media_site):
    assert "not a media file" in refused(f"{media_site.url}/notes.txt")


def test_a_page_without_video_is_unsupported(media_site):
    assert refused(f"{media_site.url}/empty.html") == "this site is not supported"


def test_a_closed_port_is_network_unreachable(media_site):
    media_site.stop()  # the port is now closed
    site_url = f"http://127.0.0.1:{_free_port()}"
    assert refused(f"{site_url}/clip.webm").startswith("network unreachable")


def test_a_slow_site_times_out(media_site, settings):
    settings.VSYNC_RESOLVE_TIMEOUT_S = 0.5
    media_site.delay_s = 3
    started = time.monotonic()
    refused(f"{media_site.url}/page.html")
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("url", ["file:///etc/passwd", "data:video/webm;base64,GkXfow==", "javascript:alert(1)",
                                 "ftp://127.0.0.1/clip.webm"])
def test_refused_schemes(url):
    assert refused(url) == "only http and https URLs are supported"


def test_loopback_is_refused_unless_allowed(media_site, settings):
    settings.VSYNC_MEDIA_ALLOW_HOSTS = []
    assert "non-public" in refused(f"{media_site.url}/clip.webm")
    assert media_site.hits == {}


def test_a_dns_name_for_loopback_is_refused_when_127_0_0_1_is_not_allowed(media_site, settings):
    settings.VSYNC_MEDIA_ALLOW_HOSTS = []
    port = media_site.url.rsplit(":", 1)[1]
    assert "non-public" in refused(f"http://localhost:{port}/clip.webm")
    assert media_site.hits == {}


@pytest.mark.parametrize("target", ["10.0.0.1/clip.webm", "169.254.169.254/latest/meta-data/",
                                    "[::ffff:169.254.169.254]/x", "2130706433/clip.webm"])
def test_a_redirect_to_a_refused_address_is_refused_without_connecting(media_site, target):
    # 2130706433 is 127.0.0.1: allowed by address, so the redirect itself must be checked.
    url = f"{media_site.url}/redirect/http/{target}"
    if target.startswith("2130706433"):
        port = media_site.url.rsplit(":", 1)[1]
        resolved = resolve_media(f"{media_site.url}/redirect/http/2130706433:{port}/clip.webm")
        assert resolved.media.source == "direct"
        return
    assert "non-public" in refused(url)


@pytest.mark.parametrize("scheme", ["file", "ftp", "data"])
def test_a_redirect_to_another_scheme_is_refused(media_site, scheme):
    error = refused(f"{media_site.url}/redirect/{scheme}//etc/passwd")
    assert error == "only http and https URLs are supported (the site redirected elsewhere)"


def test_yt_dlp_error_types_become_short_messages():
    forbidden = TransportError(cause=ForbiddenAddress("h resolves to a non-public address (10.0.0.1)"))
    assert "non-public" in ytdlp.explain(DownloadError("ERROR: x", (None, ExtractorError("x", cause=forbidden),
                                                                    None)))
    assert ytdlp.explain(DownloadError("ERROR: x", (None, UnsupportedError("https://x.test/"), None))) == \
        "this site is not supported"
    assert ytdlp.explain(RequestError('Unsupported url scheme: "file"')) == "only http and https URLs are supported"
    assert ytdlp.explain(TransportError(cause=ConnectionRefusedError())).startswith("network unreachable")
    assert ytdlp.explain(DownloadError("ERROR: Requested format is not available")).startswith("no format")


def _free_port() -> int:
    from tests.support.servers import free_port

    return free_port()
