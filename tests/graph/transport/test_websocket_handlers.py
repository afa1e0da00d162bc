"""One handler per WebSocket protocol: the operation limit answered RATE_LIMITED, and the
token's expiry checked before it. The view is driven in-process as an ASGI application."""

from __future__ import annotations

import time
from datetime import timedelta
from types import SimpleNamespace

import pytest

from graph.context import Services
from graph.transport import websocket_auth
from runtime.core.auth import Role
from tests.graph.websocket_session import LEGACY_WS, STATUS, TRANSPORT_WS, connected, start

LIMIT = 2
# Answered at once: a subscription that runs and finds nothing to follow.
OUTCOMES_OF_NO_EVENT = 'subscription { eventOutcomes(eventId: "424242") { status } }'


def error_of(protocol: str, message: dict[str, object]) -> dict[str, object]:
    """The one error an `error` message carries (graphql-transport-ws sends a list)."""
    payload = message["payload"]
    if protocol == TRANSPORT_WS:
        assert isinstance(payload, list) and len(payload) == 1
        payload = payload[0]
    assert isinstance(payload, dict)
    return payload


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_operation_past_the_limit_is_rate_limited_and_the_connection_goes_on(
    services: Services, protocol: str
) -> None:
    token = services.tokens.issue(Role.ADMIN, "ops", timedelta(seconds=60))
    async with connected(services, protocol, token, max_operations=LIMIT) as client:
        for index in range(LIMIT):
            client.say(start(protocol, STATUS, str(index)))
        client.say(start(protocol, STATUS, "over"))
        refused = await client.heard()
        assert (refused["type"], refused["id"]) == ("error", "over")
        assert error_of(protocol, refused) == {
            "message": f"at most {LIMIT} operations run at once on one connection",
            "extensions": {"code": "RATE_LIMITED", "limit": LIMIT},
        }
        # Once one stops, another may start.
        client.say({"type": "complete" if protocol == TRANSPORT_WS else "stop", "id": "0"})
        client.say(start(protocol, OUTCOMES_OF_NO_EVENT, "next"))
        answered = await client.heard()
        while answered.get("id") == "0":  # graphql-ws says the stopped one is complete
            answered = await client.heard()
    assert answered["id"] == "next"
    assert answered["payload"]["errors"][0]["extensions"] == {"code": "NOT_FOUND"}


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_at_the_limit_an_expired_token_closes_the_socket_rather_than_rate_limit(
    services: Services, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    token = services.tokens.issue(Role.ADMIN, "ops", timedelta(seconds=60))
    async with connected(services, protocol, token, max_operations=LIMIT) as client:
        for index in range(LIMIT):
            client.say(start(protocol, STATUS, str(index)))
        client.say(start(protocol, STATUS, "over"))
        assert (await client.heard())["type"] == "error"  # the connection is at its limit
        later = time.time() + 61
        monkeypatch.setattr(websocket_auth, "time", SimpleNamespace(time=lambda: later))
        client.say(start(protocol, STATUS, "late"))
        heard = [await client.heard()]
        while heard[-1]["type"] != "websocket.close":
            heard.append(await client.heard())
    # graphql-ws says each stopped operation is complete before the socket closes.
    assert [message["type"] for message in heard[:-1]] in ([], ["complete"] * LIMIT)
    assert heard[-1] == {"type": "websocket.close", "code": 4403, "reason": "the token has expired"}
