"""The address policy: which addresses and files the server and its plugins may reach.

Loopback, link-local, private and other non-public addresses are refused unless an allowed
network holds them; names are judged by every address they resolve to; the sessions the policy
makes check every connection, literal addresses and redirects included.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from ipaddress import ip_address
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from runtime.core.address_policy import (
    AddressPolicy,
    AddressRefused,
    PathRefused,
    kind_of,
    literal_address,
    parse_networks,
    parse_roots,
)
from tests.local_http import local_network
from tests.name_table import with_names

STRICT = AddressPolicy()


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fec0::1", "private"),  # IPv6 site-local, long deprecated
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("100.127.255.254", "shared (carrier-grade NAT)"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "private"),  # documentation
        # IPv6 forms that carry a refused IPv4 address: mapped, 6to4, NAT64.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::", "loopback"),
        ("2002:a9fe:a9fe::1", "link-local"),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::a00:1", "private"),
    ],
)
def test_non_public_addresses_are_refused_by_default(address: str, kind: str) -> None:
    parsed = ip_address(address)
    assert not STRICT.permits(parsed)
    assert kind_of(parsed) == kind


def test_broadcast_is_refused_by_default() -> None:
    assert not STRICT.permits(ip_address("255.255.255.255"))


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ],
)
def test_public_addresses_are_permitted(address: str) -> None:
    assert STRICT.permits(ip_address(address))
    assert kind_of(ip_address(address)) is None


def test_an_allowed_network_permits_its_addresses_and_their_mapped_forms_only() -> None:
    policy = AddressPolicy(parse_networks("127.0.0.0/8, 10.1.0.0/16"))
    for allowed in ("127.0.0.1", "127.9.9.9", "::ffff:127.0.0.1", "10.1.2.3"):
        assert policy.permits(ip_address(allowed)), allowed
    for refused in ("::1", "10.2.0.1", "192.168.0.1", "169.254.169.254"):
        assert not policy.permits(ip_address(refused)), refused


@pytest.mark.parametrize(
    "spelling",
    ["127.0.0.1", "2130706433", "0x7f000001", "0x7f.1", "0177.0.0.1", "127.1", "[::ffff:7f00:1]"],
)
def test_every_spelling_of_a_loopback_address_is_refused(spelling: str) -> None:
    assert literal_address(spelling) in {ip_address("127.0.0.1"), ip_address("::ffff:7f00:1")}
    with pytest.raises(AddressRefused, match=re.escape(f"{spelling} is a loopback address")):
        STRICT.check_host(spelling)


@pytest.mark.parametrize("name", ["example.com", "cafe.be", "plugins.test", "deadbeef"])
def test_a_name_is_not_taken_for_an_address(name: str) -> None:
    assert literal_address(name) is None
    STRICT.check_host(name)  # judged once resolved


def test_the_refusal_names_the_host_and_the_setting_not_what_listens() -> None:
    error = STRICT.refusal("localhost", ip_address("127.0.0.1"))
    assert str(error) == (
        "refused by the address policy: localhost resolves to a loopback address "
        "(STREAMSPACE_ALLOWED_NETWORKS names the networks that may be reached)"
    )


def test_a_network_that_is_not_cidr_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match=r"STREAMSPACE_ALLOWED_NETWORKS.*'10\.0\.0\.0/33'"):
        parse_networks("127.0.0.0/8,10.0.0.0/33")
    with pytest.raises(ValueError, match="has host bits set"):
        parse_networks("10.1.2.3/8")
    assert parse_networks(" , ") == ()


def test_roots_are_resolved_with_symlinks_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert parse_roots(f"{tmp_path / 'link'}::{tmp_path}") == (
        (tmp_path / "real").resolve(),
        tmp_path.resolve(),
    )


# --- names ------------------------------------------------------------------------------------


async def test_localhost_is_refused_once_resolved() -> None:
    with pytest.raises(AddressRefused, match="localhost resolves to a loopback address"):
        await STRICT.resolve("localhost", 80)


async def test_a_name_with_any_refused_answer_is_refused() -> None:
    mixed = {"mixed.test": ["93.184.216.34", "10.0.0.5"], "public.test": ["93.184.216.34"]}
    policy = with_names(STRICT, mixed)
    with pytest.raises(AddressRefused, match=r"mixed\.test resolves to a private address"):
        await policy.resolve("mixed.test", 443)
    assert [answer["host"] for answer in await policy.resolve("public.test", 443)] == [
        "93.184.216.34"
    ]
    allowed = with_names(STRICT.allowing("10.0.0.0/8"), mixed)
    assert len(await allowed.resolve("mixed.test", 443)) == 2


# --- connections ------------------------------------------------------------------------------


@asynccontextmanager
async def recording_server(
    host: str = "127.0.0.1", redirect_to: str | None = None
) -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTP server on `host` answering 200 (or a 302 to `redirect_to`); its base URL and the
    paths it was asked for."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        if redirect_to is not None:
            raise web.HTTPFound(redirect_to)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://{host}:{port}", seen
    finally:
        await runner.cleanup()


async def get(policy: AddressPolicy, url: str) -> str:
    async with policy.session() as session, session.get(url) as response:
        return await response.text()


@pytest.mark.parametrize("spelling", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_a_session_reaches_no_loopback_server_by_default(spelling: str) -> None:
    async with recording_server() as (base, seen):
        port = base.rsplit(":", 1)[1]
        with pytest.raises(aiohttp.ClientConnectorError) as raised:
            await get(STRICT, f"http://{spelling}:{port}/secret")
        assert isinstance(raised.value.os_error, AddressRefused)
        assert "refused by the address policy" in str(raised.value)
        assert seen == []
        assert await get(local_network(), f"{base}/hello") == "ok"
        assert seen == ["/hello"]


async def test_a_redirect_to_a_refused_address_is_not_followed() -> None:
    only_first = AddressPolicy(parse_networks("127.0.0.1/32"))
    async with (
        recording_server("127.0.0.2") as (target, reached),
        recording_server(redirect_to=f"{target}/internal") as (base, _),
    ):
        with pytest.raises(aiohttp.ClientConnectorError) as raised:
            await get(only_first, f"{base}/start")
        assert "127.0.0.2 is a loopback address" in str(raised.value)
        assert reached == []
        # The same redirect, to an allowed address, is followed.
        assert await get(local_network(), f"{base}/start") == "ok"
        assert reached == ["/internal"]


async def test_a_session_ignores_proxies_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with recording_server() as (proxy, proxied), recording_server() as (base, seen):
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert await get(local_network(), f"{base}/direct") == "ok"
        assert (seen, proxied) == (["/direct"], [])


async def test_connect_opens_sockets_to_allowed_addresses_only() -> None:
    accepted: list[bool] = []

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(True)
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(AddressRefused, match=r"127\.0\.0\.1 is a loopback address"):
            await STRICT.connect("127.0.0.1", port)
        with pytest.raises(AddressRefused, match="localhost resolves to a loopback address"):
            await STRICT.connect("localhost", port)
        assert accepted == []
        connection = await local_network().connect("127.0.0.1", port)
        connection.close()
        await asyncio.sleep(0.05)
        assert accepted == [True]


def test_a_socket_is_made_only_for_an_allowed_address() -> None:
    info = (socket.AF_INET, socket.SOCK_STREAM, 0, "", ("169.254.169.254", 80))
    with pytest.raises(AddressRefused, match="link-local"):
        STRICT.open_socket(info)
    with pytest.raises(AddressRefused, match="not an address it can judge"):
        STRICT.open_socket((socket.AF_INET, socket.SOCK_STREAM, 0, "", ("2130706433", 80)))
    local_network().open_socket((*info[:4], ("127.0.0.1", 80))).close()


# --- files ------------------------------------------------------------------------------------


def test_a_file_under_a_root_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "index.json").write_text("{}")
    policy = AddressPolicy(file_roots=(tmp_path.resolve(),))
    url = (tmp_path / "repo" / "index.json").as_uri()
    assert policy.local_path(url) == (tmp_path / "repo" / "index.json").resolve()


@pytest.mark.parametrize("path", ["/etc/passwd", "/proc/self/environ", "/etc/"])
def test_files_outside_the_roots_are_refused_naming_the_setting(tmp_path: Path, path: str) -> None:
    policy = AddressPolicy(file_roots=(tmp_path.resolve(),))
    with pytest.raises(PathRefused, match="STREAMSPACE_FILE_REPOSITORY_ROOTS"):
        policy.local_path(f"file://{path}")


def test_the_default_allows_no_file_at_all(tmp_path: Path) -> None:
    with pytest.raises(PathRefused, match="outside the folders"):
        STRICT.local_path(tmp_path.as_uri())


def test_climbing_and_symlinks_out_of_a_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "escape").symlink_to("/etc")
    policy = AddressPolicy(file_roots=(root.resolve(),))
    with pytest.raises(PathRefused, match="may not climb"):
        policy.local_path(f"{root.as_uri()}/../root/index.json")
    with pytest.raises(PathRefused, match="may not climb"):
        policy.local_path(f"{root.as_uri()}/%2E%2E/secret")
    with pytest.raises(PathRefused, match="outside the folders"):
        policy.local_path(f"{root.as_uri()}/escape/passwd")


def test_a_file_url_naming_a_host_is_refused(tmp_path: Path) -> None:
    policy = AddressPolicy(file_roots=(Path("/"),))
    with pytest.raises(PathRefused, match="may not name a host"):
        policy.local_path("file://fileserver/share/index.json")
    assert policy.local_path("file://localhost/etc/hostname") == Path("/etc/hostname")
