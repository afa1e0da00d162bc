"""A WebSocket connection bound to its token, the view driven in-process as an ASGI application.

The wall clock the connection reads is moved past the token's expiry while the timer that
closes the connection at expiry still sleeps: what an operation started in that moment meets
is the check made on every operation.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from graph.context import Services
from graph.transport import websocket_auth
from models import Repository
from runtime.core.auth import Role
from runtime.hosting.host import STATUS_CHANNEL
from tests.graph.websocket_session import LEGACY_WS, STATUS, TRANSPORT_WS, connected, start

ADD_REPOSITORY = 'mutation { addRepository(input: {name: "late", url: "file:///nowhere"}) { id } }'


# graphql-ws carries subscriptions only; graphql-transport-ws mutations too.
REFUSED = {TRANSPORT_WS: ADD_REPOSITORY, LEGACY_WS: STATUS}


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_operation_started_once_the_token_has_expired_is_refused_and_the_socket_closed(
    services: Services, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    token = services.tokens.issue(Role.ADMIN, "ops", timedelta(seconds=60))
    async with connected(services, protocol, token) as client:
        later = time.time() + 61
        monkeypatch.setattr(websocket_auth, "time", SimpleNamespace(time=lambda: later))
        client.say(start(protocol, REFUSED[protocol]))
        closed = await client.heard()
    assert closed == {"type": "websocket.close", "code": 4403, "reason": "the token has expired"}
    assert not await Repository.filter(name="late").exists()


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_subscription_started_before_the_token_expires_streams(
    services: Services, protocol: str
) -> None:
    token = services.tokens.issue(Role.ADMIN, "ops", timedelta(seconds=60))
    async with connected(services, protocol, token) as client:
        client.say(start(protocol, STATUS))
        await asyncio.sleep(0.1)  # the subscription listens once its resolver has subscribed
        change = {"plugin": "p", "status": "ACTIVE", "at": datetime.now(UTC).isoformat()}
        await services.host.hub.publish(STATUS_CHANNEL, change)
        result = await client.heard()
    assert result["payload"] == {"data": {"pluginStatus": {"plugin": "p", "status": "ACTIVE"}}}
