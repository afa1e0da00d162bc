"""Processes apart from the shared fixture: stopping with open subscriptions, and two replicas
sharing PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import (
    REQUIRE_SERVICES,
    create_database,
    drop_database,
    reachable,
    require_postgres,
    run_apart,
)
from tests.e2e.conftest import Server, check_clean_exit, data_of, start_server

pytestmark = pytest.mark.e2e

REDIS_URL = os.environ.get("STREAMSPACE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
STATUS_SUBSCRIPTION = """
    subscription { pluginStatus(plugin: "streamspace-webhook") { plugin status replica } }
"""


@asynccontextmanager
async def connect(
    http: aiohttp.ClientSession, server: Server
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with http.ws_connect(server.ws_url, protocols=("graphql-transport-ws",)) as ws:
        await ws.send_json(
            {
                "type": "connection_init",
                "payload": {"Authorization": f"Bearer {server.admin_token}"},
            }
        )
        assert (await ws.receive_json(timeout=30))["type"] == "connection_ack"
        yield ws


async def test_sigterm_with_an_open_subscription_closes_it_and_exits_cleanly(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    server = await asyncio.to_thread(start_server, tmp_path, "sqlite")
    try:
        async with connect(http, server) as ws:
            await ws.send_json(
                {"id": "s", "type": "subscribe", "payload": {"query": STATUS_SUBSCRIPTION}}
            )
            await ws.send_json({"type": "ping"})
            assert (await ws.receive_json(timeout=30))["type"] == "pong"
            server.process.terminate()
            message = await ws.receive(timeout=60)
            assert message.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}
            assert ws.close_code == 1012  # service restart: clients reconnect
    finally:
        status = await asyncio.to_thread(server.stop)
    check_clean_exit(server, status)


@pytest.fixture
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """Two servers on one PostgreSQL database and one Redis, as production runs them."""
    require_postgres()
    if not reachable(REDIS_URL.replace("redis://", "tcp://")):
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis is not reachable at {REDIS_URL}")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    name = f"ssp_replicas_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = run_apart(create_database(name))
    started: list[Server] = []
    try:
        for label in ("a", "b"):
            directory = tmp_path_factory.mktemp(f"replica-{label}")
            if started:  # one data directory's secrets for both, so tokens work on either
                (directory / "data").symlink_to(started[0].data_dir)
            started.append(
                start_server(directory, "postgres", url, STREAMSPACE_BROADCAST_URL=REDIS_URL)
            )
        yield started[0], started[1]
    finally:
        statuses = [(server, server.stop()) for server in started]
        run_apart(drop_database(name))
    for server, status in statuses:
        check_clean_exit(server, status)


@pytest.mark.postgres
async def test_a_status_change_on_one_replica_reaches_subscribers_of_the_other(
    http: aiohttp.ClientSession, replicas: tuple[Server, Server]
) -> None:
    a, b = replicas
    b.admin_token = b.admin_token or a.admin_token
    catalog = await data_of(
        http,
        b,
        '{ catalog(filter: {search: "streamspace-webhook"}) { edges { node { id name } } } }',
    )
    [entry] = [
        e["node"] for e in catalog["catalog"]["edges"] if e["node"]["name"] == "streamspace-webhook"
    ]
    config = {
        "url": "http://127.0.0.1:9/hook",
        "secret": "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode(),
    }
    installed = await data_of(
        http,
        b,
        "mutation I($id: ID!, $config: JSON) { installPlugin(catalogPluginId: $id, config: $config)"
        " { id } }",
        {"id": entry["id"], "config": config},
    )
    plugin_id = installed["installPlugin"]["id"]
    b_replica = f":{b.process.pid}"

    async with connect(http, a) as ws:
        await ws.send_json(
            {"id": "s", "type": "subscribe", "payload": {"query": STATUS_SUBSCRIPTION}}
        )
        seen: list[dict[str, Any]] = []
        # The subscription starts listening at some point after `subscribe`; switch the plugin
        # on and off on the other replica until a change arrives here.
        for attempt in range(20):
            action = "enablePlugin" if attempt % 2 == 0 else "disablePlugin"
            await data_of(http, b, f'mutation {{ {action}(id: "{plugin_id}") {{ id }} }}')
            try:
                while True:
                    message = await ws.receive_json(timeout=3)
                    if message["type"] == "next" and message["payload"].get("data"):
                        change = message["payload"]["data"]["pluginStatus"]
                        if str(change.get("replica") or "").endswith(b_replica):
                            seen.append(change)
                            break
            except TimeoutError:
                continue
            break
        assert seen, "no status change from the other replica arrived"
        assert seen[0]["plugin"] == "streamspace-webhook"
