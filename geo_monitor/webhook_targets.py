"""Where webhooks may be sent: public addresses only, unless the operator allows a host (SSRF guard).

A webhook subscription makes the server send requests to a URL a partner
chose. Without a check, a partner key could point it at the server's own
network: ``http://127.0.0.1:5432``, ``http://169.254.169.254/`` (cloud
metadata), a router at ``192.168.1.1``. So destinations that are loopback,
private, link-local (IPv4 and IPv6), multicast, reserved, unspecified or
otherwise not globally routable are refused:

- when a subscription is made (:func:`check_destination`; an IP literal or a
  name resolving to such an address is refused; a name that does not
  resolve now is accepted, because the delivery check decides), and
- on every delivery (:func:`guarded_connect`), because DNS answers can
  change after the subscription was checked. The connection goes to the
  very address that was checked, so a second, different DNS answer cannot
  slip in between check and connect.

``webhook_allowed_hosts`` (settings) lists exceptions: host names or IP
addresses matched against the URL's host, and networks in CIDR notation
(``10.20.0.0/16``) matched against the resolved addresses. Tests use it for
their loopback receivers; an operator may use it for a partner inside the
same private network.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from geo_monitor.errors import InvalidInputError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Resolves (host, port, family, type) to addresses: socket.getaddrinfo, replaceable in tests.
Resolver = Callable[..., list[tuple[Any, ...]]]


class ForbiddenDestinationError(InvalidInputError):
    """A webhook URL whose host is, or resolves to, an address webhooks may not be sent to."""


@dataclass(frozen=True)
class DestinationPolicy:
    """Which non-public destinations are allowed anyway (none by default)."""

    hosts: frozenset[str] = frozenset()  # lower-case host names or IP literals, matched against the URL's host
    networks: tuple[IPNetwork, ...] = field(default_factory=tuple)  # matched against resolved addresses

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> DestinationPolicy:
        """From ``webhook_allowed_hosts``: names, IP addresses and CIDR networks."""
        hosts, networks = set(), []
        for entry in entries:
            text = entry.strip().lower().rstrip(".")
            if "/" in text:
                networks.append(ipaddress.ip_network(text, strict=False))
            elif text:
                hosts.add(_bare(text))
        return cls(hosts=frozenset(hosts), networks=tuple(networks))

    def allows_host(self, host: str) -> bool:
        return _bare(host.lower().rstrip(".")) in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return is_public(address) or any(address in network for network in self.networks)


STRICT = DestinationPolicy()


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is a globally routable unicast address (what a partner's server has)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address.is_global and not (
        address.is_multicast or address.is_loopback or address.is_link_local or address.is_private
        or address.is_reserved or address.is_unspecified
    )


def describe(address: IPAddress) -> str:
    """What kind of non-public address this is, for the error message."""
    for name in ("loopback", "link_local", "multicast", "private", "reserved", "unspecified"):
        if getattr(address, f"is_{name}"):
            return name.replace("_", "-")
    return "not globally routable"


def check_destination(url: str, policy: DestinationPolicy = STRICT, resolve: Resolver = socket.getaddrinfo) -> None:
    """Refuse (:class:`ForbiddenDestinationError`) a webhook URL pointing at a non-public address.

    A host name that does not resolve now passes: every delivery checks again.
    """
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host or policy.allows_host(host):
        return  # not a URL webhooks can use at all: the store refuses it with its own message
    literal = _ip(host)
    if literal is not None:
        _check(host, [literal], policy)
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ForbiddenDestinationError(f"url has an invalid port: {url!r}") from None
    try:
        infos = resolve(host, port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError):  # socket.gaierror: does not resolve (now)
        return
    _check(host, [_ip(info[4][0]) for info in infos], policy)


def guarded_connect(
    policy: DestinationPolicy, resolve: Resolver = socket.getaddrinfo
) -> Callable[..., socket.socket]:
    """A ``socket.create_connection`` that connects only to allowed addresses, the ones it checked.

    Every address the host resolves to must be allowed (one private answer
    among public ones is refused too).
    """

    def connect(address: tuple[str, int], timeout: float | object = socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
                source_address: tuple[str, int] | None = None) -> socket.socket:
        host, port = address
        infos = resolve(host, port, 0, socket.SOCK_STREAM)
        if not policy.allows_host(host):
            _check(host, [_ip(info[4][0]) for info in infos], policy)
        error: OSError | None = None
        for family, kind, proto, _name, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                    sock.settimeout(timeout)  # type: ignore[arg-type]
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                error = exc
                sock.close()
        raise error or OSError(f"{host} resolved to no address")

    return connect


def _check(host: str, addresses: list[IPAddress | None], policy: DestinationPolicy) -> None:
    for address in addresses:
        if address is None or not policy.allows_address(address):
            kind = "unusable" if address is None else describe(address)
            raise ForbiddenDestinationError(
                f"webhook host {host!r} is or resolves to {address} ({kind} address); webhooks are sent to "
                "public addresses only (an operator can allow a host with the webhook_allowed_hosts setting)"
            )


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(_bare(text).split("%", 1)[0])  # drop an IPv6 zone id ("fe80::1%eth0")
    except ValueError:
        return None


def _bare(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host
