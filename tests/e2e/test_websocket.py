"""Subscriptions' transport against the server process: authentication in connection_init,
every error coded, and connections that live no longer than their token."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from runtime.core.auth import Role, TokenIssuer
from runtime.core.settings import JWT_SECRET_FILE
from tests.e2e.conftest import Server, data_of, run_cli

pytestmark = pytest.mark.e2e

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive(timeout=30)
    assert message.type == aiohttp.WSMsgType.TEXT, (message.type, message.data, message.extra)
    data: dict[str, Any] = message.json()
    return data


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Wait for the server to close the socket; return the close code."""
    message = await ws.receive(timeout=30)
    assert message.type in {
        aiohttp.WSMsgType.CLOSE,
        aiohttp.WSMsgType.CLOSING,
        aiohttp.WSMsgType.CLOSED,
    }, (message.type, message.data)
    return ws.close_code


async def test_connection_init_with_a_token_then_a_query(
    http: aiohttp.ClientSession, server: Server
) -> None:
    async with http.ws_connect(server.ws_url, protocols=(TRANSPORT_WS,)) as ws:
        assert ws.protocol == TRANSPORT_WS
        await ws.send_json(
            {
                "type": "connection_init",
                "payload": {"Authorization": f"Bearer {server.admin_token}"},
            }
        )
        assert (await receive(ws))["type"] == "connection_ack"

        await ws.send_json({"type": "ping"})
        assert (await receive(ws))["type"] == "pong"

        await ws.send_json(
            {"id": "1", "type": "subscribe", "payload": {"query": "{ viewer { subject } }"}}
        )
        first = await receive(ws)
        assert first["type"] == "next", first
        assert first["id"] == "1"
        assert first["payload"] == {"data": {"viewer": {"subject": "admin"}}}
        assert await receive(ws) == {"type": "complete", "id": "1"}


@pytest.mark.parametrize("key", ["authorization", "token"])
async def test_the_other_spellings_of_the_token_are_accepted(
    http: aiohttp.ClientSession, server: Server, key: str
) -> None:
    result = await run_cli(
        "token", "--role", "platform", "--subject", "core", "--data-dir", str(server.data_dir)
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    value = f"Bearer {token}" if key == "authorization" else token
    async with http.ws_connect(server.ws_url, protocols=(TRANSPORT_WS,)) as ws:
        await ws.send_json({"type": "connection_init", "payload": {key: value}})
        assert (await receive(ws))["type"] == "connection_ack"
        await ws.send_json(
            {"id": "a", "type": "subscribe", "payload": {"query": "{ viewer { subject } }"}}
        )
        assert (await receive(ws))["payload"] == {"data": {"viewer": {"subject": "core"}}}
        assert (await receive(ws))["type"] == "complete"


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"token": ""},
    ],
    ids=["no-payload", "empty", "bad-token", "wrong-scheme", "empty-token"],
)
async def test_connection_init_without_a_good_token_is_closed_4403(
    http: aiohttp.ClientSession, server: Server, payload: dict[str, Any] | None
) -> None:
    async with http.ws_connect(server.ws_url, protocols=(TRANSPORT_WS,)) as ws:
        message: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            message["payload"] = payload
        await ws.send_json(message)
        assert await closed_with(ws) == 4403


async def test_a_forged_token_is_closed_4403(http: aiohttp.ClientSession, server: Server) -> None:
    header, claims, _ = server.admin_token.split(".")
    forged = f"{header}.{claims}.{'A' * 43}"
    async with http.ws_connect(server.ws_url, protocols=(TRANSPORT_WS,)) as ws:
        await ws.send_json(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {forged}"}}
        )
        assert await closed_with(ws) == 4403


async def test_the_legacy_protocol_authenticates_too(
    http: aiohttp.ClientSession, server: Server
) -> None:
    async with http.ws_connect(server.ws_url, protocols=(LEGACY_WS,)) as ws:
        assert ws.protocol == LEGACY_WS
        await ws.send_json(
            {
                "type": "connection_init",
                "payload": {"Authorization": f"Bearer {server.admin_token}"},
            }
        )
        assert (await receive(ws))["type"] == "connection_ack"
        # graphql-ws carries subscriptions only; acceptance is what this test is about.
        await ws.send_json({"type": "connection_terminate"})
        await closed_with(ws)

    async with http.ws_connect(server.ws_url, protocols=(LEGACY_WS,)) as ws:
        await ws.send_json({"type": "connection_init", "payload": {}})
        refused = await receive(ws)
        assert refused["type"] == "connection_error"
        await closed_with(ws)


async def connected(http: aiohttp.ClientSession, server: Server) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(server.ws_url, protocols=(TRANSPORT_WS,))
    await ws.send_json(
        {"type": "connection_init", "payload": {"Authorization": f"Bearer {server.admin_token}"}}
    )
    assert (await receive(ws))["type"] == "connection_ack"
    return ws


def codes(payload: Any) -> list[str]:
    errors = payload if isinstance(payload, list) else payload.get("errors", [])
    return [error["extensions"]["code"] for error in errors]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        # A syntax error closed the socket (4400) without a code.
        ({"query": "{ viewer { subject }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": "subscription { pluginLogs { messag } }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": "query A { __typename }", "operationName": "B"}, "BAD_REQUEST"),
    ],
    ids=["syntax", "validation", "unknown-operation"],
)
async def test_an_operation_refused_before_it_runs_is_one_coded_error(
    http: aiohttp.ClientSession, server: Server, payload: dict[str, Any], code: str
) -> None:
    async with await connected(http, server) as ws:
        await ws.send_json({"id": "1", "type": "subscribe", "payload": payload})
        refused = await receive(ws)
        assert (refused["type"], refused["id"], codes(refused["payload"])) == ("error", "1", [code])
        # The connection, and any other operation on it, goes on.
        await ws.send_json({"type": "ping"})
        assert (await receive(ws))["type"] == "pong"


async def test_an_error_a_subscription_raises_is_coded(
    http: aiohttp.ClientSession, server: Server
) -> None:
    document = 'subscription { eventOutcomes(eventId: "424242") { status } }'
    async with await connected(http, server) as ws:
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": document}})
        result = await receive(ws)
        assert (result["type"], codes(result["payload"])) == ("next", ["NOT_FOUND"])
        assert result["payload"]["errors"][0]["message"] == "event 424242 does not exist"
        assert await receive(ws) == {"type": "complete", "id": "1"}


async def test_operations_past_the_connection_limit_are_rate_limited(
    http: aiohttp.ClientSession, server: Server
) -> None:
    async with await connected(http, server) as ws:
        for index in range(100):  # strawberry's max_subscriptions_per_connection
            query = "subscription { pluginLogs { message } }"
            await ws.send_json({"id": str(index), "type": "subscribe", "payload": {"query": query}})
        await ws.send_json(
            {"id": "over", "type": "subscribe", "payload": {"query": "{ __typename }"}}
        )
        refused = await receive(ws)
        assert (refused["type"], refused["id"], codes(refused["payload"])) == (
            "error",
            "over",
            ["RATE_LIMITED"],
        )


async def test_the_legacy_protocol_codes_its_errors_too(
    http: aiohttp.ClientSession, server: Server
) -> None:
    async with http.ws_connect(server.ws_url, protocols=(LEGACY_WS,)) as ws:
        await ws.send_json(
            {
                "type": "connection_init",
                "payload": {"Authorization": f"Bearer {server.admin_token}"},
            }
        )
        assert (await receive(ws))["type"] == "connection_ack"
        await ws.send_json(
            {"id": "1", "type": "start", "payload": {"query": "subscription { pluginLogs {"}}
        )
        refused = await receive(ws)
        assert refused["type"] == "error"
        assert refused["payload"]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


@pytest.mark.parametrize("event_id", ["abc", str(2**63)])
async def test_an_event_id_that_is_no_bigint_is_bad_input(
    http: aiohttp.ClientSession, server: Server, event_id: str
) -> None:
    # It was Python's own message ("invalid literal for int() ..."), without a code.
    document = f'subscription {{ eventOutcomes(eventId: "{event_id}") {{ status }} }}'
    async with await connected(http, server) as ws:
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": document}})
        result = await receive(ws)
        assert (result["type"], codes(result["payload"])) == ("next", ["BAD_USER_INPUT"])
        assert result["payload"]["errors"][0]["message"].startswith("eventId: ")
        assert await receive(ws) == {"type": "complete", "id": "1"}


# -- a connection lives no longer than its token -------------------------------------------------

STATUS = "subscription { pluginStatus { plugin status } }"
SHORT_TTL = timedelta(seconds=2)
REPOSITORY_URL = "https://plugins.example.com/"


def short_lived_token(server: Server) -> tuple[str, float]:
    """An admin token signed with the server's secret that expires in 1-2 s, and its expiry."""
    issuer = TokenIssuer((server.data_dir / JWT_SECRET_FILE).read_text())
    token = issuer.issue(Role.ADMIN, "short-lived", SHORT_TTL)
    return token, issuer.verify(token).expires_at


async def closed_with_reason(
    ws: aiohttp.ClientWebSocketResponse, limit: float
) -> tuple[int | None, str]:
    """Skip what the server sends until it closes the socket; the close code and reason."""
    async with asyncio.timeout(limit):
        while True:
            message = await ws.receive()
            if message.type is aiohttp.WSMsgType.CLOSE:
                return message.data, message.extra
            if message.type in {aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED}:
                return ws.close_code, ""
            assert message.type is aiohttp.WSMsgType.TEXT, (message.type, message.data)


async def initialised(ws: aiohttp.ClientWebSocketResponse, token: str) -> None:
    await ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    assert (await receive(ws))["type"] == "connection_ack"


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_idle_socket_is_closed_4403_when_its_token_expires(
    http: aiohttp.ClientSession, server: Server, protocol: str
) -> None:
    token, expires_at = short_lived_token(server)
    async with http.ws_connect(server.ws_url, protocols=(protocol,), autoclose=False) as ws:
        await initialised(ws, token)
        code, reason = await closed_with_reason(ws, expires_at - time.time() + 30)
    assert (code, reason) == (4403, "the token has expired")
    assert time.time() >= expires_at  # not before


async def test_a_streaming_subscription_is_stopped_and_its_socket_closed_at_expiry(
    http: aiohttp.ClientSession, server: Server
) -> None:
    token, expires_at = short_lived_token(server)
    async with http.ws_connect(server.ws_url, protocols=(TRANSPORT_WS,), autoclose=False) as ws:
        await initialised(ws, token)
        await ws.send_json({"id": "s", "type": "subscribe", "payload": {"query": STATUS}})
        # While the token holds, operations over the socket run beside the subscription.
        await ws.send_json(
            {"id": "q", "type": "subscribe", "payload": {"query": "{ viewer { subject } }"}}
        )
        answer = await receive(ws)
        assert answer["payload"] == {"data": {"viewer": {"subject": "short-lived"}}}, answer
        assert await receive(ws) == {"type": "complete", "id": "q"}
        code, reason = await closed_with_reason(ws, expires_at - time.time() + 30)
    assert (code, reason) == (4403, "the token has expired")
    assert time.time() >= expires_at


async def test_a_mutation_sent_after_the_token_expired_is_refused(
    http: aiohttp.ClientSession, server: Server
) -> None:
    token, expires_at = short_lived_token(server)
    before, after = (f"{when}-{uuid.uuid4().hex[:8]}" for when in ("in-time", "late"))

    def add(name: str) -> str:
        fields = f'name: "{name}", url: "{REPOSITORY_URL}"'
        return f"mutation {{ addRepository(input: {{{fields}}}) {{ name }} }}"

    async with http.ws_connect(server.ws_url, protocols=(TRANSPORT_WS,), autoclose=False) as ws:
        await initialised(ws, token)
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": add(before)}})
        added = await receive(ws)
        assert added["payload"] == {"data": {"addRepository": {"name": before}}}, added
        await asyncio.sleep(expires_at - time.time() + 0.2)
        with contextlib.suppress(ConnectionError):  # the socket may be closed already
            await ws.send_json({"id": "2", "type": "subscribe", "payload": {"query": add(after)}})
        code, reason = await closed_with_reason(ws, 30)
    assert (code, reason) == (4403, "the token has expired")
    repositories = await data_of(http, server, "{ repositories { name } }")
    names = [repository["name"] for repository in repositories["repositories"]]
    assert before in names
    assert after not in names
