"""The checks of meshforge.outbound that need no network: address classes, host forms, URL prechecks.

Nothing here connects anywhere: private, link-local and metadata addresses are only classified.
"""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from meshforge.addresses import is_allowed, parse_host
from meshforge.errors import InvalidInput
from meshforge.outbound import (
    OutboundRefused,
    is_public_address,
    parse_networks,
    precheck_url,
    redact,
)
from meshforge.settings import ImageSettings

NOT_PUBLIC = [
    # IPv4
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "100.64.0.1",  # carrier-grade NAT
    "100.127.255.254",
    "192.0.0.8",
    "192.0.2.1",  # documentation
    "198.51.100.7",
    "203.0.113.9",
    "198.18.0.1",  # benchmarking
    "198.19.255.255",
    "192.88.99.1",
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",  # broadcast
    # IPv6
    "::",
    "::1",
    "fe80::1",
    "fe80::1%eth0",
    "fec0::1",  # site-local
    "fd00::1",  # unique local
    "fc00::1",
    "ff02::1",  # multicast
    "ff05::1:3",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:93.184.216.34",  # mapped even when public: connect to the IPv4 address instead
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "::10.0.0.1",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::5db8:d822",  # local-use NAT64 prefix
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:2::1",  # benchmarking
    "2001:db8::1",  # documentation
    "3fff::1",  # documentation (RFC 9637)
    "100::1",  # discard
    "5f00::1",  # SRv6 SIDs
]
PUBLIC = [
    "93.184.216.34",
    "1.1.1.1",
    "11.0.0.1",  # just outside 10/8
    "100.128.0.1",  # just outside 100.64/10
    "172.32.0.1",  # just outside 172.16/12
    "126.255.255.255",
    "128.0.0.1",
    "2606:4700::1111",
    "2001:4860:4860::8888",
    "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34: how an IPv6-only network reaches it
    "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_addresses_that_are_not_globally_routable_are_refused(address: str) -> None:
    assert not is_public_address(address)
    assert not is_allowed(ipaddress.ip_address(address.split("%")[0]), ())


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_accepted(address: str) -> None:
    assert is_public_address(address)


def test_the_allow_list_admits_its_networks_and_nothing_else() -> None:
    allowed = parse_networks("127.0.0.2/32")
    assert is_allowed(ipaddress.ip_address("127.0.0.2"), allowed)
    assert not is_allowed(ipaddress.ip_address("127.0.0.1"), allowed)
    assert not is_allowed(ipaddress.ip_address("::ffff:127.0.0.2"), allowed)  # another address family


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),  # one decimal number
        ("0x7f000001", "127.0.0.1"),  # one hexadecimal number
        ("0X7F000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),  # one octal number
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),  # octal parts
        ("0177.1", "127.0.0.1"),
        ("127.000.000.001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),  # short forms: the last part fills the remaining bytes
        ("127.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),  # a trailing dot
        ("0x7f.0.0.0x1", "127.0.0.1"),
        ("１２７．０．０．１", "127.0.0.1"),  # full-width digits and dots (IDNA mapping)
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("3232235777", "192.168.1.1"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("[fe80::1%eth0]", "fe80::1"),  # a zone id
    ],
)
def test_ipv4_and_ipv6_literal_forms_are_read_as_the_address_they_reach(host: str, address: str) -> None:
    assert parse_host(host) == (address, ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "host",
    [
        "1.2.3.4.5",
        "256.0.0.1",
        "1.256.1",
        "127.16777216",
        "08.0.0.1",
        "127.0.0.09",
        "%31%32%37.0.0.1",
    ],
)
def test_hosts_ending_in_a_number_that_are_no_ipv4_address_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match="not a valid one"):
        parse_host(host)


@pytest.mark.parametrize(
    "host", ["exa mple.com", "a..b", "", "ex%41mple.com", "-", "a" * 64 + ".com", "[1.2.3.4]"]
)
def test_hosts_that_are_no_valid_name_are_refused(host: str) -> None:
    with pytest.raises(ValueError):
        parse_host(host)


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("Example.COM.", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("a_b.example.com", "a_b.example.com"),
        ("1.example", "1.example"),
    ],
)
def test_names_are_normalised_for_resolving(host: str, name: str) -> None:
    assert parse_host(host) == (name, None)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/a.png", "only public internet addresses"),
        ("http://[::1]/a.png", "only public internet addresses"),
        ("http://0x7f000001/", "only public internet addresses"),
        ("http://2130706433/", "only public internet addresses"),
        ("http://127.1:8080/", "only public internet addresses"),
        ("http://[::ffff:127.0.0.1]/", "only public internet addresses"),
        ("http://169.254.169.254/latest/meta-data/", "only public internet addresses"),
        ("http://[fd00::1]/", "only public internet addresses"),
        ("http://[fe80::1%25eth0]/", "only public internet addresses"),
        ("http://100.64.0.1/", "only public internet addresses"),
        ("http://localhost/", "only public internet addresses"),
        ("http://LOCALHOST./", "only public internet addresses"),
        ("http://api.localhost/", "only public internet addresses"),
        ("http://user:pw@93.184.216.34/", "credentials in URLs are not accepted"),
        ("http://user@images.example/", "credentials in URLs are not accepted"),
        ("http://:pw@images.example/", "credentials in URLs are not accepted"),
        ("http://93.184.216.34@127.0.0.1/", "credentials in URLs are not accepted"),
        ("file:///etc/passwd", "only http and https"),
        ("ftp://images.example/a.png", "only http and https"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "only http and https"),
        ("//images.example/a.png", "only http and https"),
        ("http:/images.example/a.png", "only http and https"),
        ("http://images.example\\@127.0.0.1/", "backslashes"),
        ("http://images.example/a b.png", "spaces"),
        ("http://images.example:0/", "port"),
        ("http://images.example:99999/", "port"),
        ("http://images.example:80a/", "port"),
        ("http://1.2.3.4.5/", "not a valid one"),
    ],
)
def test_precheck_refuses_what_needs_no_network_to_know(url: str, why: str) -> None:
    with pytest.raises(OutboundRefused) as refused:
        precheck_url(url)
    assert isinstance(refused.value, InvalidInput) and refused.value.status_code == 422
    assert why in refused.value.why
    assert "pw" not in refused.value.message and "user" not in refused.value.message
    assert refused.value.message.startswith(redact(url)) and "is not allowed" in refused.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.216.34/a.png",
        "https://[2606:4700::1111]:8443/a.png?size=2",
        "https://images.example/a.png",  # a name: its addresses are checked when it is fetched
        "HTTP://Images.Example./a.png#fragment",
    ],
)
def test_precheck_accepts_public_addresses_and_names(url: str) -> None:
    target = precheck_url(url)
    assert target.url.scheme in ("http", "https") and not target.url.userinfo
    assert target.url.fragment == ""


def test_precheck_accepts_allow_listed_addresses_but_never_credentials() -> None:
    allowed = ["127.0.0.0/8", "::1/128"]
    assert precheck_url("http://127.0.0.1:8080/a.png", allowed).address == ipaddress.ip_address("127.0.0.1")
    assert precheck_url("http://localhost:8080/a.png", allowed).host == "localhost"
    assert precheck_url("http://[::1]/", allowed).url.host == "::1"
    with pytest.raises(OutboundRefused, match="credentials"):
        precheck_url("http://user:pw@127.0.0.1/", allowed)
    with pytest.raises(OutboundRefused, match="only public"):
        precheck_url("http://10.0.0.1/", allowed)


def test_localhost_needs_both_loopback_addresses_allowed() -> None:
    with pytest.raises(OutboundRefused):
        precheck_url("http://localhost/", ["127.0.0.0/8"])


def test_a_literal_form_is_normalised_to_the_address_it_reaches() -> None:
    target = precheck_url("http://0x7f.1:8080/a.png?x=1", ["127.0.0.0/8"])
    assert str(target.url) == "http://127.0.0.1:8080/a.png?x=1"
    assert target.shown == "http://0x7f.1:8080/a.png?x=1"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@host.example/a.png", "http://host.example/a.png"),
        ("https://a@b@c.example/x?d@e", "https://c.example/x?d@e"),
        ("http://host.example/a@b.png", "http://host.example/a@b.png"),
        ("HTTP://u:p@127.0.0.1:8/", "HTTP://127.0.0.1:8/"),
        ("http:user:pw@host.example/", "http:host.example/"),  # browsers read this as http://…
        ("the image at http://u:p@h.example/x: not allowed", "the image at http://h.example/x: not allowed"),
        ("http://h.example/?next=http://u:p@e.example/", "http://h.example/?next=http://e.example/"),
    ],
)
def test_redact_removes_the_credentials_of_every_url_only(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_allowed_networks_are_read_as_json_or_comma_separated() -> None:
    expected = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert parse_networks('["127.0.0.0/8", "::1/128"]') == expected
    assert parse_networks("127.0.0.1/8, ::1") == expected  # host bits and a bare address are fine
    assert parse_networks("") == () and parse_networks(None) == ()


def test_the_setting_is_empty_by_default_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MESHFORGE_OUTBOUND_ALLOWED_NETWORKS", raising=False)
    assert ImageSettings(_env_file=None).outbound_allowed_networks == ()
    monkeypatch.setenv("MESHFORGE_OUTBOUND_ALLOWED_NETWORKS", '["10.1.2.0/24"]')
    assert ImageSettings(_env_file=None).outbound_allowed_networks == (ipaddress.ip_network("10.1.2.0/24"),)
    monkeypatch.setenv("MESHFORGE_OUTBOUND_ALLOWED_NETWORKS", "10.1.2.0/33")
    with pytest.raises(ValidationError, match="outbound_allowed_networks"):
        ImageSettings(_env_file=None)
