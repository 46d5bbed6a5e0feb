"""Outbound HTTP that cannot reach inside: fetches of URLs that users give (image URLs, webhooks).

A URL from a user may name the host's own loopback, the cloud metadata service (169.254.169.254) or
a private network; fetching it would let the caller read or probe what only meshforge can reach
(server-side request forgery). So every fetch made here:

1. parses the URL itself: http or https only, no credentials, and every IPv4 literal form that browsers
   or libc accept (2130706433, 0x7f.1, 0177.0.0.1, 127.1, a trailing dot) read as the address it means;
2. resolves the host once and goes on only if every address is public (meshforge.addresses) or in the
   allow-list (``MESHFORGE_OUTBOUND_ALLOWED_NETWORKS``);
3. connects to exactly the address it checked, with the Host header, TLS SNI and the certificate check
   set to the name, so a second DNS answer (rebinding) is never asked for;
4. follows redirects by hand, every hop through steps 1-3, and ignores proxy environment variables.

Messages name the URL with credentials removed and say only "not allowed" or "could not be fetched":
never what a server answered, so the fetcher cannot be used to map a network.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from meshforge.addresses import (
    LOOPBACK,
    AllowedNetworks,
    IPAddress,
    IPNetwork,
    is_allowed,
    is_public_address,
    parse_host,
    parse_networks,
    to_address,
)
from meshforge.errors import InvalidInput

__all__ = [
    "AllowedNetworks",
    "OutboundClient",
    "OutboundFailed",
    "OutboundRefused",
    "Resolver",
    "Target",
    "is_public_address",
    "parse_networks",
    "precheck_url",
    "redact",
    "system_resolver",
]

Resolver = Callable[[str, int], Awaitable[Sequence[str | IPAddress]]]
"""host, port → the addresses to connect to; ``OSError`` when the name does not resolve."""

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
REDIRECTS = (301, 302, 303, 307, 308)
ADDRESS_REFUSED = (
    "only public internet addresses can be fetched "
    "(an operator can allow more networks with MESHFORGE_OUTBOUND_ALLOWED_NETWORKS)"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Spaces, controls and "\" (browsers read it as "/", so "http://a\@b" would mean another host).
_FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")
# A scheme, its slashes (browsers also accept "http:u:p@h" and "http:\\u:p@h"), then userinfo up to "@".
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*:[/\\]*)[^/?#\s\\]*@")
_LOCALHOST = re.compile(r"(.+\.)?localhost")  # RFC 6761: always the host's own loopback


class OutboundRefused(InvalidInput):
    """The URL (or a redirect it leads to) may not be fetched: scheme, credentials or address."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(f"{url} is not allowed: {why}")
        self.url = url
        self.why = why


class OutboundFailed(InvalidInput):
    """An allowed URL could not be fetched; ``why`` never describes what a server answered."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(f"{url} could not be fetched: {why}")
        self.url = url
        self.why = why


def redact(text: str) -> str:
    """``text`` with the credentials (``user:pw@``) of every URL in it removed: for messages and logs."""
    return _USERINFO.sub(r"\1", text)


@dataclass(frozen=True)
class Target:
    """A parsed URL: where to connect, and what to call the server."""

    url: httpx.URL  # normalised: no credentials or fragment, the host as a name or canonical address
    shown: str  # the URL as given, credentials removed: what messages name
    host: str  # the name (IDNA, lower case, no trailing dot) or the address text
    port: int
    address: IPAddress | None  # set when the host is an address literal

    @property
    def is_localhost(self) -> bool:
        return self.address is None and _LOCALHOST.fullmatch(self.host) is not None


def parse_target(url: str, *, shown: str | None = None, hop: int = 0) -> Target:
    """Parse ``url`` (needs no network); ``OutboundRefused`` for a scheme, credentials or a bad host."""
    shown = redact(url) if shown is None else shown

    def refuse(why: str) -> OutboundRefused:
        return OutboundRefused(shown, why + _at(hop))

    if _FORBIDDEN_CHARACTERS.search(url):
        raise refuse("a URL may not contain spaces, control characters or backslashes")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS:
        raise refuse("only http and https URLs can be fetched")
    authority, path = re.match(r"([^/?#]*)(.*)", rest).groups()  # type: ignore[union-attr]
    if "@" in authority:
        raise refuse("credentials in URLs are not accepted")
    host_text, port = _split_port(authority, refuse)
    try:
        host, address = parse_host(host_text)
    except ValueError as exc:
        raise refuse(str(exc)) from None
    netloc = host if address is None or address.version == 4 else f"[{address.compressed}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    try:
        normalised = httpx.URL(f"{scheme}://{netloc}{path.partition('#')[0] or '/'}")
    except httpx.InvalidURL:
        raise refuse("it is not a valid URL") from None
    return Target(normalised, shown, host, port or _DEFAULT_PORTS[scheme], address)


def _split_port(authority: str, refuse: Callable[[str], OutboundRefused]) -> tuple[str, int | None]:
    """(host, port or None); an IPv6 host keeps its brackets, its zone id unescaped (RFC 6874)."""
    if authority.startswith("["):
        inside, bracket, tail = authority[1:].partition("]")
        if not bracket or not inside or (tail and not tail.startswith(":")):
            raise refuse("its IPv6 address is not valid")
        host, digits = f"[{inside.replace('%25', '%')}]", tail[1:]
    else:
        host, colon, digits = authority.rpartition(":")
        if not colon:
            host, digits = authority, ""
    if not digits:
        return host, None
    if not digits.isascii() or not digits.isdigit() or not 0 < int(digits) < 65536:
        raise refuse("its port is not a number from 1 to 65535")
    return host, int(digits)


def precheck_url(url: str, allowed_networks: Iterable[IPNetwork | str] = ()) -> Target:
    """The checks that need no network: scheme, credentials, the host's form, a literal address (or
    localhost) that is neither public nor allowed. Raises ``OutboundRefused`` (an ``InvalidInput``)."""
    target = parse_target(url)
    _check_literal(target, parse_networks(allowed_networks))
    return target


def _check_literal(target: Target, allowed: tuple[IPNetwork, ...], hop: int = 0) -> None:
    if target.address is not None:
        candidates: list[IPAddress] = [target.address]
    elif target.is_localhost:
        candidates = list(LOOPBACK)
    else:
        return
    if not all(is_allowed(address, allowed) for address in candidates):
        raise OutboundRefused(target.shown, ADDRESS_REFUSED + _at(hop))


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's answer (getaddrinfo, without blocking the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class OutboundClient:
    """An HTTP client for user-given URLs: every hop is checked, then pinned to the checked address.

    ``resolver`` and ``transport`` are injectable (tests answer names with loopback addresses, record
    which address a request was sent to); connections are never kept alive, so a pooled connection to
    one name is never reused for another name that shares its address.
    """

    def __init__(
        self,
        *,
        allowed_networks: Iterable[IPNetwork | str] = (),
        resolver: Resolver = system_resolver,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.allowed_networks = parse_networks(allowed_networks)
        self.resolver = resolver
        limits = httpx.Limits(max_keepalive_connections=0)
        self._client = httpx.AsyncClient(
            transport=transport or httpx.AsyncHTTPTransport(limits=limits),
            trust_env=False,  # HTTP(S)_PROXY would send the request somewhere else than checked
            follow_redirects=False,
            timeout=timeout,
        )

    async def __aenter__(self) -> OutboundClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    @asynccontextmanager
    async def stream(
        self,
        url: str,
        *,
        max_redirects: int = 3,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """The final answer to ``url`` (redirects followed, each hop checked), its body unread.

        Every redirect is followed with GET and without ``content``; ``headers`` are dropped once a
        redirect leaves the URL's origin (scheme, host, port). httpx errors while connecting, or while
        reading the body inside the ``async with``, become ``OutboundFailed``."""
        target = parse_target(url)
        origin = _origin(target)
        for hop in range(max_redirects + 1):
            response = await self._send(method, target, headers, content, hop)
            location = response.headers.get("location")
            if response.status_code not in REDIRECTS or not location:
                try:
                    yield response
                except httpx.HTTPError as exc:
                    raise OutboundFailed(target.shown, _describe(exc)) from None
                finally:
                    await response.aclose()
                return
            await response.aclose()
            method, content = "GET", None
            target = parse_target(urljoin(str(target.url), location), shown=target.shown, hop=hop + 1)
            if _origin(target) != origin:
                headers = None  # for good: a later hop back to the origin gets none either
        raise OutboundFailed(target.shown, f"more than {max_redirects} redirects")

    async def _send(
        self, method: str, target: Target, headers: dict[str, str] | None, content: bytes | None, hop: int
    ) -> httpx.Response:
        """Send to the checked addresses in the resolver's order until one accepts the connection."""
        extensions = {"sni_hostname": target.host} if target.address is None else {}
        failure: httpx.HTTPError | None = None
        for address in await self._checked_addresses(target, hop):
            try:
                request = self._client.build_request(
                    method,
                    target.url.copy_with(host=address.compressed),
                    headers={**(headers or {}), "Host": target.url.netloc.decode("ascii")},
                    content=content,
                    extensions=extensions,  # TLS: SNI and the certificate check are for the name
                )
                return await self._client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure = exc  # nothing was sent: the next checked address may answer
            except httpx.HTTPError as exc:
                raise OutboundFailed(target.shown, _describe(exc)) from None
        raise OutboundFailed(target.shown, _describe(failure or httpx.ConnectError("")))

    async def _checked_addresses(self, target: Target, hop: int) -> list[IPAddress]:
        """Where to connect: the literal, or the name's addresses from one resolution, every one of
        which must pass (one refused answer refuses the URL: the resolver chose the order, not us)."""
        _check_literal(target, self.allowed_networks, hop)
        if target.address is not None:
            return [target.address]
        try:
            answers = await self.resolver(target.host, target.port)
            addresses = list(dict.fromkeys(to_address(answer) for answer in answers))
        except (OSError, ValueError):
            raise OutboundFailed(target.shown, "its host name could not be resolved") from None
        if not addresses:
            raise OutboundFailed(target.shown, "its host name could not be resolved")
        if not all(is_allowed(address, self.allowed_networks) for address in addresses):
            raise OutboundRefused(target.shown, ADDRESS_REFUSED + _at(hop))
        return addresses


def _origin(target: Target) -> tuple[str, str, int]:
    return target.url.scheme, target.host, target.port


def _at(hop: int) -> str:
    return f" (at redirect {hop})" if hop else ""


def _describe(exc: httpx.HTTPError) -> str:
    """A reason that says what went wrong on our side of the wire, never what a server said."""
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        return "the server could not be reached"
    if isinstance(exc, httpx.TimeoutException):
        return "the server took too long to answer"
    return "the transfer failed"
