"""Which IP addresses an outbound fetch may reach, and how a URL's host names one.

``is_public_address`` accepts only globally routable unicast addresses. The lists are explicit rather
than Python's ``is_global``, which differs between Python versions (3.11 calls 224.0.0.1 global).
``parse_host`` reads a host the way browsers (the WHATWG URL standard) and libc's ``inet_aton`` do, so
that 2130706433, 0x7f.1, 0177.0.0.1, 127.1 and "127.0.0.1." are all seen as the 127.0.0.1 they reach.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from typing import Annotated, Any

import idna
from pydantic import BeforeValidator
from pydantic_settings import NoDecode

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


_V4_REFUSED = _networks(
    "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the host itself on Linux
    "10.0.0.0/8",
    "100.64.0.0/10",  # carrier-grade NAT (shared address space)
    "127.0.0.0/8",
    "169.254.0.0/16",  # link-local, where cloud metadata (169.254.169.254) lives
    "172.16.0.0/12",
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation (TEST-NET-1)
    "192.88.99.0/24",  # 6to4 relay anycast
    "192.168.0.0/16",
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation (TEST-NET-2)
    "203.0.113.0/24",  # documentation (TEST-NET-3)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and 255.255.255.255 (broadcast)
)
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")  # everything else (::1, ::ffff:0:0/96, fc00::/7, …)
_V6_REFUSED = _networks(
    "2001::/23",  # IETF protocol assignments: Teredo 2001::/32, benchmarking 2001:2::/48, ORCHID
    "2001:db8::/32",  # documentation
    "3fff::/20",  # documentation (RFC 9637)
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known NAT64: the IPv4 address is the last 32 bits
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")  # 6to4: the IPv4 address is bits 16-48
LOOPBACK = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))


def is_public_address(ip: IPAddress | str) -> bool:
    """Whether ``ip`` is a globally routable unicast address (IPv4-mapped and -compatible IPv6, NAT64
    of a non-public IPv4, 6to4 of one, Teredo and the local-use NAT64 64:ff9b:1::/48 are not)."""
    ip = to_address(ip)
    if isinstance(ip, ipaddress.IPv4Address):
        return not any(ip in network for network in _V4_REFUSED) and ip.is_global
    if ip in _NAT64:
        return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip not in _V6_GLOBAL_UNICAST or any(ip in network for network in _V6_REFUSED):
        return False
    if ip in _SIX_TO_FOUR:
        return ip.sixtofour is not None and is_public_address(ip.sixtofour)
    return True


def is_allowed(ip: IPAddress, allowed: Iterable[IPNetwork]) -> bool:
    """Public, or inside one of the ``allowed`` networks (the operator's allow-list)."""
    ip = to_address(ip)
    return is_public_address(ip) or any(ip.version == net.version and ip in net for net in allowed)


def to_address(value: IPAddress | str) -> IPAddress:
    """An address object without its IPv6 zone id (``fe80::1%eth0`` → ``fe80::1``); ``ValueError``."""
    if isinstance(value, ipaddress.IPv6Address) and value.scope_id:
        value = str(value)
    if isinstance(value, str):
        return ipaddress.ip_address(value.split("%", 1)[0])
    return value


def parse_networks(value: Any) -> tuple[IPNetwork, ...]:
    """A list of networks from a JSON list, comma-separated CIDRs or an iterable; host bits allowed."""
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else [p for p in text.split(",") if p.strip()]
    return tuple(ipaddress.ip_network(str(item).strip(), strict=False) for item in value)


AllowedNetworks = Annotated[tuple[IPNetwork, ...], NoDecode, BeforeValidator(parse_networks)]
"""A settings field type: networks as ``["127.0.0.0/8", "::1/128"]`` or ``127.0.0.0/8,::1/128``."""

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def parse_host(text: str) -> tuple[str, IPAddress | None]:
    """(host, address): the name (IDNA, lower case, no trailing dot) and None, or an address literal's
    canonical text and the address. ``text`` is a URL's host, an IPv6 literal in brackets.
    ``ValueError`` (its message says why) for anything that is neither a name nor an address."""
    if text.startswith("["):
        try:
            address = to_address(text[1:-1])
        except ValueError:
            raise ValueError("its IPv6 address is not valid") from None
        if address.version != 6:
            raise ValueError("its IPv6 address is not valid")
        return address.compressed, address
    host = text if text.isascii() else _idna(text)
    host = host.lower()
    labels = host.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()  # one trailing dot: "example.com." is "example.com"
    if labels and _ends_in_number(labels[-1]):
        ipv4 = _ipv4(labels)
        if ipv4 is None:
            raise ValueError("its host looks like an IPv4 address but is not a valid one")
        return ipv4.compressed, ipv4
    if not labels or len(".".join(labels)) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError("its host is not a valid host name")
    return ".".join(labels), None


def _idna(text: str) -> str:
    try:
        return idna.encode(text, uts46=True).decode("ascii")  # also maps full-width digits and dots
    except idna.IDNAError:
        raise ValueError("its host is not a valid host name") from None


def _ends_in_number(label: str) -> bool:
    return label != "" and (label.isdigit() or _ipv4_number(label) is not None)


def _ipv4_number(part: str) -> int | None:
    """One dotted part: 0x… hexadecimal, 0… octal, else decimal (as inet_aton and browsers read it)."""
    if part[:2] in ("0x", "0X"):
        digits, base, alphabet = part[2:], 16, "0123456789abcdef"
    elif len(part) > 1 and part.startswith("0"):
        digits, base, alphabet = part[1:], 8, "01234567"
    else:
        digits, base, alphabet = part, 10, "0123456789"
    if not part or not all(c in alphabet for c in digits.lower()):
        return None
    return int(digits, base) if digits else 0


def _ipv4(parts: list[str]) -> ipaddress.IPv4Address | None:
    """1 to 4 parts; the last one fills the remaining bytes: 127.1 is 127.0.0.1, 2130706433 too."""
    numbers = [n for n in map(_ipv4_number, parts) if n is not None]
    if len(parts) > 4 or len(numbers) != len(parts):
        return None
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (4 - len(leading)):
        return None
    value = sum(n << (8 * (3 - i)) for i, n in enumerate(leading)) + last
    return ipaddress.IPv4Address(value)
