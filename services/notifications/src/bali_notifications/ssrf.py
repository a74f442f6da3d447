"""SSRF guard for webhook URLs (OWASP API7): checked at registration and again at connect time."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx
from bali_common.http.integers import parse_decimal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Resolves (host, port) to address strings; the default asks the system resolver in a thread.
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2048
# Hosts may hold letters, digits, dots, hyphens and (for IPv6 literals) colons only: anything
# else is either invalid or a trick (socket.inet_aton accepts "127.0.0.1 trailing-text").
_HOST_CHARACTERS = re.compile(r"[a-z0-9.\-:]+")
# RFC 6052 section 2.1: the well-known NAT64 prefix embeds an IPv4 address in its last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class BlockedDestination(ValueError):
    """The URL or the address it resolves to may not be called."""


@dataclass(frozen=True)
class WebhookTarget:
    """A parsed, checked webhook URL: the request is built from these parts, never re-parsed."""

    url: str
    scheme: str
    host: str
    port: int
    target: str


async def system_resolver(host: str, port: int) -> list[str]:
    """getaddrinfo in the loop's thread pool, so a slow DNS answer never blocks the service."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError) as error:
        raise BlockedDestination(f"host {host!r} does not resolve: {error}") from error
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as a number stands for, in any spelling the resolver accepts.

    Besides dotted quads and IPv6, C resolvers read `2130706433`, `0x7f000001`,
    `0177.0.0.1` and `127.1` as 127.0.0.1; inet_aton applies those same rules.
    """
    bare = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except OSError:
        return None


def refusal_reason(address: IPAddress) -> str | None:
    """Why an address may not be called, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None:
            reason = refusal_reason(embedded)
            if reason is not None:
                return f"{reason} (embedded in {address})"
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "not globally routable"),
    )
    for refused, reason in checks:
        if refused:
            return f"{reason} address {address}"
    return None


class EgressGuard:
    """Decides whether a webhook URL may be called and which address to connect to.

    A URL passes when it is https and every address its host resolves to is
    globally routable, or when its host:port (or every resolved address) is on the
    operator's allow-list. The check runs again at connect time, and the
    connection goes to the very address that was checked, so a DNS answer that
    changes between the two (rebinding) cannot reach an internal service.
    """

    def __init__(self, allow_list: Sequence[str], resolver: Resolver | None = None) -> None:
        self._resolver = resolver or system_resolver
        self._allowed_origins: set[tuple[str, int]] = set()
        self._allowed_networks: list[IPNetwork] = []
        for entry in allow_list:
            self._add_allowed(entry.strip().lower())

    def _add_allowed(self, entry: str) -> None:
        if "/" in entry:
            self._allowed_networks.append(ipaddress.ip_network(entry, strict=False))
            return
        host, separator, port_text = entry.rpartition(":")
        port = parse_decimal(port_text, maximum=65_535) if separator else None
        if port is None:
            raise ValueError(f"allow-list entry {entry!r} is neither host:port nor a CIDR block")
        self._allowed_origins.add((host.strip("[]"), port))

    def parse(self, url: str) -> WebhookTarget:
        """Syntax only: an absolute http(s) URL without credentials or fragment."""
        if len(url) > MAX_URL_LENGTH:
            raise BlockedDestination(f"URL longer than {MAX_URL_LENGTH} characters")
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as error:
            raise BlockedDestination(f"not a valid URL: {error}") from error
        if parsed.scheme not in ("http", "https"):
            raise BlockedDestination("only http(s) URLs can receive webhooks")
        if parsed.userinfo:
            raise BlockedDestination("credentials in the URL are not accepted")
        if parsed.fragment:
            raise BlockedDestination("a URL fragment is never sent; remove it")
        host = parsed.raw_host.decode("ascii").lower()
        if not host or not _HOST_CHARACTERS.fullmatch(host):
            raise BlockedDestination(f"invalid host {host!r}")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        return WebhookTarget(
            url=str(parsed),
            scheme=parsed.scheme,
            host=host,
            port=port,
            target=parsed.raw_path.decode("ascii"),
        )

    async def check(self, url: str) -> WebhookTarget:
        """Registration-time check: syntax, scheme, and every resolved address."""
        target = self.parse(url)
        await self.addresses_for(target.host, target.port, scheme=target.scheme)
        return target

    async def addresses_for(self, host: str, port: int, *, scheme: str = "https") -> list[str]:
        """The checked addresses to connect to; raises BlockedDestination if any is refused."""
        if scheme != "https" and not self._may_use_http(host, port):
            raise BlockedDestination("webhook URLs must use https")
        literal = literal_address(host)
        addresses = [str(literal)] if literal is not None else await self._resolver(host, port)
        if not addresses:
            raise BlockedDestination(f"host {host!r} has no address")
        parsed = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
        if self._allow_listed(host, port, parsed):
            return [str(a) for a in parsed]
        if scheme != "https":
            raise BlockedDestination("webhook URLs must use https")
        for address in parsed:
            reason = refusal_reason(address)
            if reason is not None:
                raise BlockedDestination(f"{host} is refused: {reason}")
        return [str(a) for a in parsed]

    def _may_use_http(self, host: str, port: int) -> bool:
        """Plain http only to an allow-listed origin or network (networks checked once resolved)."""
        return (host.strip("[]"), port) in self._allowed_origins or bool(self._allowed_networks)

    def _allow_listed(self, host: str, port: int, addresses: Sequence[IPAddress]) -> bool:
        if (host.strip("[]"), port) in self._allowed_origins:
            return True
        return bool(self._allowed_networks) and all(
            any(address in network for network in self._allowed_networks) for address in addresses
        )
