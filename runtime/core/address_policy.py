"""The address policy: which hosts and local files the server and its plugins may reach.

Loopback, link-local, private, shared (CGNAT), multicast, reserved and unspecified addresses,
and IPv6 forms that stand for or carry one of them (`::ffff:127.0.0.1`, NAT64, 6to4, Teredo),
are refused unless an allowed network (STREAMSPACE_ALLOWED_NETWORKS) holds them. Names are
checked after they are resolved, every address they resolve to, and connections go to the
checked addresses: aiohttp sessions made here resolve through `PolicyResolver` and open each
socket through the policy, so redirects and literal addresses pass the same check. `file://`
URLs may name only files under the policy's roots (the data directory and
STREAMSPACE_FILE_REPOSITORY_ROOTS).

Example:
    >>> policy = AddressPolicy(parse_networks("10.0.0.0/8"))
    >>> policy.permits(ip_address("10.1.2.3")), policy.permits(ip_address("192.168.0.1"))
    (True, False)
    >>> print(policy.refusal("localhost", ip_address("127.0.0.1")))  # doctest: +ELLIPSIS
    refused by the address policy: localhost resolves to a loopback address (...)
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohappyeyeballs
import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from runtime.core.address_refusals import AddressRefused as AddressRefused
from runtime.core.address_refusals import PathRefused as PathRefused

log = logging.getLogger(__name__)

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
ALLOWED_NETWORKS_SETTING = "STREAMSPACE_ALLOWED_NETWORKS"
FILE_ROOTS_SETTING = "STREAMSPACE_FILE_REPOSITORY_ROOTS"
# The networks a test or a one-machine example lets the server reach: its own loopback.
LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"
_SHARED = IPv4Network("100.64.0.0/10")
_NAT64 = IPv6Network("64:ff9b::/96")
HAPPY_EYEBALLS_DELAY = 0.25


def parse_networks(text: str | None) -> tuple[Network, ...]:
    """Comma-separated CIDRs (`127.0.0.0/8,10.0.0.0/8`); a bare address is one host."""
    networks: list[Network] = []
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        try:
            networks.append(ip_network(item))
        except ValueError as error:
            raise ValueError(
                f"{ALLOWED_NETWORKS_SETTING} (--allowed-networks): {item!r} is not a network "
                f"in CIDR notation such as 10.0.0.0/8 ({error})"
            ) from None
    return tuple(networks)


def parse_roots(text: str | None) -> tuple[Path, ...]:
    """Colon-separated directories, each resolved (symlinks followed) as files will be."""
    return tuple(Path(item).resolve() for item in (text or "").split(":") if item.strip())


def _translated(address: Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64): what is reached."""
    if isinstance(address, IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def _tunnelled(address: Address) -> list[IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (6to4, Teredo): a relay may deliver to them,
    so each is judged as well as the address."""
    if isinstance(address, IPv4Address):
        return []
    found = [address.sixtofour] if address.sixtofour is not None else []
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def kind_of(address: Address) -> str | None:
    """What makes `address` unfit to reach by default ("loopback", "private", …); None when
    it is a public unicast address."""
    translated = _translated(address)
    if translated is not None:
        return kind_of(translated)
    for inner in _tunnelled(address):
        kind = kind_of(inner)
        if kind is not None:
            return kind
    site_local = isinstance(address, IPv6Address) and address.is_site_local
    # Each flag alone, as well as is_global: their definitions moved between Python releases.
    for kind, applies in (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("shared (carrier-grade NAT)", address in _SHARED),
        ("reserved", address.is_reserved),
        ("private", address.is_private or site_local),
        ("non-public", not address.is_global),
    ):
        if applies:
            return kind
    return None


def literal_address(host: str) -> Address | None:
    """The address a URL's host spells, in any form the system's resolver reads as one
    (`127.0.0.1`, `[::1]`, `2130706433`, `0x7f.1`, `0177.0.0.1`), else None (a name)."""
    bare = host.strip("[]")
    try:
        return ip_address(bare)
    except ValueError:
        pass
    if bare and all(char in "0123456789abcdefxABCDEFX." for char in bare):
        try:
            return IPv4Address(socket.inet_aton(bare))
        except OSError:
            return None
    return None


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses and files may be reached. The default refuses every address that is
    not public and every file:// URL."""

    allowed_networks: tuple[Network, ...] = ()
    file_roots: tuple[Path, ...] = ()
    # Where names are looked up: aiohttp's default resolver, unless a test substitutes one.
    lookup: Callable[[], AbstractResolver] = field(default=DefaultResolver, compare=False)

    @classmethod
    def unrestricted(cls) -> AddressPolicy:
        """Everything allowed: for unit tests of plugins (PluginHarness), never a server."""
        return cls(parse_networks("0.0.0.0/0,::/0"), (Path("/"),))

    def allowing(self, networks: str, *roots: Path) -> AddressPolicy:
        """This policy with more networks and file roots allowed."""
        return AddressPolicy(
            (*self.allowed_networks, *parse_networks(networks)),
            (*self.file_roots, *(root.resolve() for root in roots)),
            self.lookup,
        )

    # -- addresses --------------------------------------------------------------------------

    def permits(self, address: Address) -> bool:
        translated = _translated(address)
        forms = (address, *([translated] if translated else []), *_tunnelled(address))
        if any(form in network for form in forms for network in self.allowed_networks):
            return True
        return kind_of(address) is None

    def refusal(self, host: str, address: Address) -> AddressRefused:
        """The error for `host` (a name, or an address as written) refused for `address`."""
        kind = kind_of(address) or "non-public"
        verb = "is" if literal_address(host) is not None else "resolves to"
        return AddressRefused(
            f"refused by the address policy: {host} {verb} {_article(kind)} {kind} address "
            f"({ALLOWED_NETWORKS_SETTING} names the networks that may be reached)"
        )

    def check(self, host: str, address: str) -> None:
        """Raise AddressRefused unless `address` (what `host` came to) may be reached."""
        try:
            parsed = ip_address(address.split("%", 1)[0])
        except ValueError:
            raise AddressRefused(
                f"refused by the address policy: {host} is not an address it can judge"
            ) from None
        if not self.permits(parsed):
            log.debug("address refused", extra={"host": host, "address": str(parsed)})
            raise self.refusal(host, parsed)

    def check_host(self, host: str) -> None:
        """Refuse a host that spells a refused address; a name is judged once resolved."""
        address = literal_address(host)
        if address is not None:
            self.check(host, str(address))

    async def resolve(self, host: str, port: int) -> list[ResolveResult]:
        """Every address `host` resolves to, all allowed, or AddressRefused (or the resolver's
        OSError when the name does not resolve)."""
        self.check_host(host)
        resolver = PolicyResolver(self)
        try:
            return await resolver.resolve(host.strip("[]"), port, family=socket.AF_UNSPEC)
        finally:
            await resolver.close()

    def open_socket(self, addr_info: aiohappyeyeballs.AddrInfoType) -> socket.socket:
        """The socket for one connection attempt, made only for an allowed address: the last
        check before connecting, whatever resolved the address (or none did)."""
        family, type_, proto, _, address = addr_info
        self.check(str(address[0]), str(address[0]))
        return socket.socket(family=family, type=type_, proto=proto)

    async def connect(self, host: str, port: int) -> socket.socket:
        """A TCP socket connected to `host` at an allowed address (for protocols other than
        HTTP, such as SMTP). Raises AddressRefused, or OSError when no address answers."""
        answers = await self.resolve(host, port)
        infos: list[aiohappyeyeballs.AddrInfoType] = [
            (
                answer["family"],
                socket.SOCK_STREAM,
                answer["proto"],
                "",
                (answer["host"], answer["port"], 0, 0)
                if answer["family"] == socket.AF_INET6
                else (answer["host"], answer["port"]),
            )
            for answer in answers
        ]
        return await aiohappyeyeballs.start_connection(
            infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, socket_factory=self.open_socket
        )

    def connector(self, **options: Any) -> aiohttp.TCPConnector:
        """An aiohttp connector whose every connection, redirects included, obeys the policy."""
        return aiohttp.TCPConnector(
            resolver=PolicyResolver(self), socket_factory=self.open_socket, **options
        )

    def session(self, **options: Any) -> aiohttp.ClientSession:
        """An aiohttp session on `connector()`. Proxies from the environment are ignored: a
        proxy would connect on the session's behalf, past the policy."""
        return aiohttp.ClientSession(connector=self.connector(), trust_env=False, **options)

    # -- files ------------------------------------------------------------------------------

    def local_path(self, url: str) -> Path:
        """The file a file:// URL names, resolved (symlinks followed), once it lies under a
        root; PathRefused otherwise."""
        parts = urlsplit(url)
        if parts.netloc not in {"", "localhost"}:
            raise PathRefused(f"{url}: a file:// URL may not name a host")
        raw = unquote(parts.path)
        if ".." in PurePosixPath(raw).parts:
            raise PathRefused(f"{url}: a file:// URL may not climb out of a folder ('..')")
        try:
            path = Path(raw).resolve()
        except (OSError, RuntimeError):  # a symlink loop
            raise PathRefused(f"{url} cannot be resolved to a file") from None
        if not any(path.is_relative_to(root) for root in self.file_roots):
            raise PathRefused(
                f"{url} is outside the folders file:// repositories may use: the data "
                f"directory and those {FILE_ROOTS_SETTING} names"
            )
        return path


class PolicyResolver(AbstractResolver):
    """Resolves through `policy.lookup` and refuses a name when any address it resolves to is
    refused: answers mixing public and private addresses are a rebinding trick."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        # A lookup resolver per name, closed at once: a connector never closes a resolver it
        # was given, and the connector caches what it resolves anyway.
        names = self._policy.lookup()
        try:
            answers = await names.resolve(host, port, family)
        finally:
            await names.close()
        for answer in answers:
            self._policy.check(host, answer["host"])
        return answers

    async def close(self) -> None:
        pass
