"""Real-browser fixtures: Debian's Chromium through Playwright, a server of our own, a delay proxy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from rooms.state import RoomState
from tests.e2e.proxy import DelayProxy
from tests.e2e.support import CHROMIUM, CHROMIUM_ARGS
from tests.support.servers import ROOT, LiveServer, migrate, server_env

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    # A missing browser is a broken test environment, not a reason to skip.
    assert CHROMIUM.exists(), f"e2e tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)"
    with sync_playwright() as playwright:
        # launch() gives every run a fresh temporary user-data-dir.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def _close_leftover_pages(request: pytest.FixtureRequest) -> Iterator[None]:
    """A page a test leaves open goes on playing its video in the shared browser, and the next
    tests pay for it in CPU: whatever a browser test opened is closed after it."""
    yield
    if "browser" in request.fixturenames:
        browser: Browser = request.getfixturevalue("browser")
        for context in list(browser.contexts):
            context.close()


@pytest.fixture(scope="module")
def e2e_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server for this module alone: tests here restart it."""
    env = server_env(tmp_path_factory.mktemp("e2e-server"))
    migrate(env)
    server = LiveServer(env=env).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def slow_network(e2e_server: LiveServer) -> Iterator[DelayProxy]:
    """100 ms each way, ±10 ms jitter."""
    proxy = DelayProxy(upstream_port=e2e_server.port, delay_ms=100, jitter_ms=10).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


class Room:
    """A fresh room on the e2e server, read directly (not through the proxy)."""

    def __init__(self, server: LiveServer, name: str) -> None:
        self.server = server
        created = httpx.post(f"{server.url}/api/rooms", json={"name": name}).json()
        self.slug = created["room"]
        # The room's policy is its owner's (CONTRACT v2): the test acts as the owner for it.
        self.owner_token = created["owner_token"]

    def state(self) -> RoomState:
        return RoomState.from_dict(httpx.get(f"{self.server.url}/api/rooms/{self.slug}/state").json())

    def command(self, **body: object) -> httpx.Response:
        body.setdefault("client_id", "c-test")
        body.setdefault("client_ms", time.time() * 1000.0)
        return httpx.post(f"{self.server.url}/api/rooms/{self.slug}/commands", json=body)

    def members(self) -> dict:
        return httpx.get(f"{self.server.url}/api/rooms/{self.slug}/members").json()

    def policy(self, **body: object) -> None:
        owner = {"Authorization": f"Bearer {self.owner_token}"}
        answer = httpx.post(f"{self.server.url}/api/rooms/{self.slug}/policy", json=body, headers=owner)
        assert answer.status_code == 200, answer.text


@pytest.fixture
def make_room(e2e_server: LiveServer):
    return lambda name: Room(e2e_server, name)
