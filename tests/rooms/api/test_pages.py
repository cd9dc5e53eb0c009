"""The pages: lobby, room on a transport, lab, and 404 for an unknown room."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_lobby_lists_rooms_with_member_counts(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/r/demo" in html
    assert "0 watching" in html
    assert "vsync/lobby.js" in html


@pytest.mark.parametrize("transport", ["poll", "longpoll", "sse", "ws"])
def test_room_page_carries_its_transport_and_state(client, transport):
    response = client.get(f"/r/demo?transport={transport}")
    assert response.status_code == 200
    config = response.context["config"]
    assert config["transport"] == transport
    assert config["state"]["room"] == "demo"
    assert 'id="vsync-config"' in response.content.decode()


def test_an_unknown_transport_falls_back_to_websocket(client):
    assert client.get("/r/demo?transport=pigeon").context["config"]["transport"] == "ws"


def test_controls_have_labels_for_screen_readers(client):
    html = client.get("/r/demo").content.decode()
    for label in ('aria-label="Play"', 'aria-label="Seek"', 'aria-label="Mute"', 'aria-label="Fullscreen"',
                  'aria-label="Volume"', 'aria-label="Playback rate"'):
        assert label in html


def test_lab_shows_four_players(client):
    html = client.get("/r/demo/lab").content.decode()
    assert html.count("<video") == 4


def test_unknown_room_is_404(client):
    assert client.get("/r/no-such-room").status_code == 404
    assert client.get("/r/no-such-room/lab").status_code == 404
