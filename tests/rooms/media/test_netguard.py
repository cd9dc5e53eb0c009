"""The address check: which URLs and addresses the server may fetch media from.

Nothing here connects anywhere: private and link-local addresses are tested through
the check itself, and ``loopback_only`` fails any test that tries to connect out.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from rooms.media.netguard import ForbiddenAddress, UnknownHost, check_url, guarded_connection, is_public
from tests.support import media_site as fixtures

loopback_only = fixtures.loopback_only
pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
def allow(settings):
    def set_allowed(*hosts: str) -> None:
        settings.VSYNC_MEDIA_ALLOW_HOSTS = list(hosts)

    set_allowed()
    return set_allowed


@pytest.fixture
def fake_dns(monkeypatch):
    """Answer getaddrinfo for made-up names from a table; numeric hosts resolve as usual."""
    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in table:
            return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                     (ip, port, 0, 0) if ":" in ip else (ip, port)) for ip in table[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


@pytest.mark.parametrize("url", ["file:///etc/passwd", "data:video/webm;base64,GkXfow==", "javascript:alert(1)",
                                 "ftp://127.0.0.1/a.webm", "gopher://127.0.0.1/", "//127.0.0.1/a.webm",
                                 "/etc/passwd", "view-source:http://127.0.0.1/"])
def test_only_http_and_https_are_fetched(allow, url):
    allow("127.0.0.1")
    with pytest.raises(ForbiddenAddress, match="only http and https"):
        check_url(url)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "169.254.0.1",
    "100.64.0.1", "100.100.100.200", "0.0.0.0", "224.0.0.1", "255.255.255.255", "192.0.0.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "2002:7f00:1::1", "2002:a9fe:a9fe::1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",
])
def test_loopback_private_link_local_and_metadata_addresses_are_not_public(address):
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8",
                                     "64:ff9b::808:808"])
def test_public_addresses_are_public(address):
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("host", [
    "127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "017700000001",  # loopback, numeric forms
    "10.0.0.1", "167772161", "169.254.169.254", "2852039166", "0xa9fea9fe",  # private, metadata as integers
    "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[fe80::1]", "[fd00:ec2::254]", "[::ffff:a9fe:a9fe]",
])
def test_numeric_hosts_of_refused_classes_are_refused(allow, host):
    with pytest.raises(ForbiddenAddress, match="non-public"):
        check_url(f"http://{host}/video.webm")


def test_a_dns_name_resolving_to_loopback_is_refused_when_loopback_is_not_allowed(allow):
    with pytest.raises(ForbiddenAddress, match="non-public"):
        check_url("http://localhost:8000/video.webm")


def test_every_address_of_a_name_is_checked_not_just_the_first(allow, fake_dns):
    fake_dns["mixed.test"] = ["93.184.215.14", "10.1.2.3"]
    with pytest.raises(ForbiddenAddress) as refused:
        check_url("https://mixed.test/video.webm")
    assert refused.value.address == "10.1.2.3"


def test_the_refusal_names_no_address(allow):
    with pytest.raises(ForbiddenAddress) as refused:
        check_url("http://localhost:8000/video.webm")
    assert "127.0.0.1" not in str(refused.value) and "localhost" not in str(refused.value)


def test_a_public_name_passes(allow, fake_dns):
    fake_dns["public.test"] = ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    assert check_url("https://public.test/watch?v=1") == "public.test"


def test_a_listed_address_is_allowed_and_opens_nothing_else(allow):
    allow("127.0.0.1")
    check_url("http://127.0.0.1:8000/video.webm")
    for host in ("127.0.0.2", "10.0.0.1", "169.254.169.254", "[::1]", "192.168.0.1"):
        with pytest.raises(ForbiddenAddress):
            check_url(f"http://{host}/video.webm")


def test_a_listed_host_name_is_allowed_but_not_other_names_for_the_same_address(allow, fake_dns):
    allow("media.lan")
    fake_dns["media.lan"] = ["10.1.2.3"]
    fake_dns["other.lan"] = ["10.1.2.3"]
    check_url("http://media.lan/film.webm")
    with pytest.raises(ForbiddenAddress):
        check_url("http://other.lan/film.webm")


def test_a_listed_network_allows_only_its_addresses(allow):
    allow("10.9.0.0/16")
    check_url("http://10.9.1.1/film.webm")
    with pytest.raises(ForbiddenAddress):
        check_url("http://10.8.1.1/film.webm")


def test_an_unknown_host_is_reported_as_such(allow, fake_dns, monkeypatch):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    with pytest.raises(UnknownHost):
        check_url("https://no-such-host.test/")


def test_the_connection_guard_refuses_before_connecting(allow, fake_dns):
    fake_dns["rebind.test"] = ["169.254.169.254"]
    for address in (("rebind.test", 80), ("10.0.0.1", 80), ("::ffff:127.0.0.1", 80), ("127.0.0.1", 80)):
        with pytest.raises(ForbiddenAddress):
            guarded_connection(address, timeout=1)


def test_the_connection_guard_connects_to_an_allowed_address(allow):
    allow("127.0.0.1")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with guarded_connection(listener.getsockname(), timeout=1) as sock:
            assert sock.getpeername() == listener.getsockname()
