"""The plugin runtime end to end: the server as a process, a webhook receiver on 127.0.0.1,
subscriptions over a real graphql-transport-ws WebSocket, on SQLite + memory:// and on
PostgreSQL + Redis.

The receiver checks the Standard Webhooks signature by hand (hmac, hashlib), as a customer's
endpoint would. Redis is shared with whatever else runs on this machine, so subscribers keep
only what concerns this test (its own event ids, its own server's replica).

Nothing here asserts how fast anything is: waits are bounded by deadlines only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import (
    REQUIRE_SERVICES,
    create_database,
    drop_database,
    reachable,
    require_postgres,
    run_apart,
)
from tests.e2e.conftest import (
    Server,
    check_clean_exit,
    clean_env,
    cli_path,
    data_of,
    start_server,
)
from tests.e2e.ws_client import GraphQLWebSocket, graphql_ws
from tests.local_http import serve

pytestmark = pytest.mark.e2e

REDIS_URL = os.environ.get("STREAMSPACE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
WEBHOOK = "streamspace-webhook"
TEAMS = "streamspace-teams"
SECRET_KEY = b"e2e-signing-key-0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()
FINAL = {"SUCCEEDED", "DEAD", "SKIPPED"}
HANG = 0  # a receiver's answer: none
DEADLINE = 60.0  # a safety limit for anything that hangs, never an expectation

DELIVERY_FIELDS = """
    id eventId plugin hook status attempts nextAttemptAt durationMs result error createdAt updatedAt
"""
OUTCOME_FIELDS = f"""
    plugin status at
    delivery {{ {DELIVERY_FIELDS} }}
    event {{ id type idempotencyKey occurredAt receivedAt }}
"""
PLUGIN_EVENTS = f"""
    subscription Outcomes($filter: PluginEventsFilter) {{
        pluginEvents(filter: $filter) {{ {OUTCOME_FIELDS} }}
    }}
"""
EVENT_OUTCOMES = f"""
    subscription One($id: ID!) {{ eventOutcomes(eventId: $id) {{ {OUTCOME_FIELDS} }} }}
"""
EMIT = """
    mutation Emit($input: EmitEventInput!) {
        emitEvent(input: $input) { duplicate event { id type } deliveries { id plugin status } }
    }
"""
EMIT_MANY = """
    mutation EmitMany($inputs: [EmitEventInput!]!) { emitEvents(inputs: $inputs) { event { id } } }
"""
DELIVERIES = """
    query Deliveries($filter: DeliveryFilter, $after: String) {
        deliveries(filter: $filter, first: 100, after: $after) {
            edges { node { id eventId plugin status attempts error } }
            pageInfo { endCursor hasNextPage }
        }
    }
"""


# -- the receiver ------------------------------------------------------------------------------


@dataclass
class Received:
    webhook_id: str
    timestamp: str
    body: dict[str, Any]
    signature_ok: bool
    answered: int


@dataclass
class Receiver:
    """An aiohttp endpoint that verifies Standard Webhooks signatures and records each request.

    `answer(webhook_id, attempt)` gives the HTTP status for the attempt-th request (1-based)
    carrying that webhook-id; 200 unless changed. HANG holds the request unanswered (and sets
    `hanging`), as a receiver that stalls while the sender dies.
    """

    url: str = ""
    key: bytes = SECRET_KEY
    received: list[Received] = field(default_factory=list)
    answer: Callable[[str, int], int] = lambda _id, _attempt: 200
    hanging: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def signature_ok(self, webhook_id: str, timestamp: str, body: str, header: str) -> bool:
        signed = f"{webhook_id}.{timestamp}.{body}".encode()
        expected = base64.b64encode(hmac.new(self.key, signed, hashlib.sha256).digest()).decode()
        for candidate in header.split():
            version, _, signature = candidate.partition(",")
            if version == "v1" and hmac.compare_digest(signature, expected):
                return True
        return False

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        webhook_id = request.headers.get("webhook-id", "")
        timestamp = request.headers.get("webhook-timestamp", "")
        ok = (
            bool(webhook_id)
            and timestamp.isdigit()
            and abs(time.time() - int(timestamp)) < 300
            and self.signature_ok(
                webhook_id, timestamp, body, request.headers.get("webhook-signature", "")
            )
        )
        attempt = 1 + sum(1 for r in self.received if r.webhook_id == webhook_id)
        status = self.answer(webhook_id, attempt) if ok else 401
        self.received.append(Received(webhook_id, timestamp, json.loads(body), ok, status))
        if status == HANG:
            self.hanging.set()
            await self.release.wait()  # at cleanup; the answer then goes nowhere
        return web.Response(status=status, text="ok" if status < 300 else "not now")

    def about(self, session_id: str) -> list[Received]:
        """The requests whose body carries the session `session_id`."""
        return [r for r in self.received if r.body.get("data", {}).get("id") == session_id]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    async with serve(found.handle) as url:
        found.url = url
        try:
            yield found
        finally:
            found.release.set()  # a held request must end before the server can stop


# -- servers -----------------------------------------------------------------------------------


@dataclass
class Running:
    server: Server
    platform_token: str
    plugin_ids: dict[str, str] = field(default_factory=dict)

    @property
    def replica_suffix(self) -> str:
        return f":{self.server.process.pid}"


def platform_token(server: Server) -> str:
    result = subprocess.run(
        [
            cli_path(),
            "token",
            "--role",
            "platform",
            "--subject",
            "core",
            "--data-dir",
            str(server.data_dir),
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def require_redis() -> None:
    if reachable(REDIS_URL.replace("redis://", "tcp://")):
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}")
    pytest.skip(f"Redis is not reachable at {REDIS_URL}")


@dataclass
class Backend:
    name: str
    database_url: str | None
    broadcast_url: str


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """SQLite with memory:// broadcast, or a fresh PostgreSQL database with Redis."""
    if request.param == "sqlite":
        yield Backend("sqlite", None, "memory://")
        return
    require_postgres()
    require_redis()
    name = f"ssp_runtime_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = run_apart(create_database(name))
    try:
        yield Backend("postgres", url, REDIS_URL)
    finally:
        run_apart(drop_database(name))


def fresh_database(backend: Backend) -> tuple[str | None, Callable[[], None]]:
    """A database of its own for a test that restarts servers (PostgreSQL); SQLite uses files."""
    if backend.database_url is None:
        return None, lambda: None
    name = f"ssp_crash_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = run_apart(create_database(name))
    return url, lambda: run_apart(drop_database(name))


def launch(directory: Path, backend: Backend, database_url: str | None, **env: str) -> Running:
    server = start_server(
        directory,
        backend.name,
        database_url,
        STREAMSPACE_BROADCAST_URL=backend.broadcast_url,
        **env,
    )
    return Running(server, platform_token(server))


@pytest.fixture(scope="module")
def running(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The server shared by this module's tests on one backend, with quick retries."""
    directory = tmp_path_factory.mktemp(f"runtime-{backend.name}")
    started = launch(
        directory,
        backend,
        backend.database_url,
        STREAMSPACE_DELIVERY_BACKOFF_BASE="0.05",
        STREAMSPACE_DELIVERY_MAX_ATTEMPTS="8",
    )
    try:
        yield started
    finally:
        check_clean_exit(started.server, started.server.stop())


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


# -- GraphQL helpers ---------------------------------------------------------------------------


async def catalog_id(http: aiohttp.ClientSession, server: Server, name: str) -> str:
    found = await data_of(
        http,
        server,
        "query C($s: String) { catalog(filter: {search: $s}) { edges { node { id name } } } }",
        {"s": name},
    )
    [entry] = [e["node"] for e in found["catalog"]["edges"] if e["node"]["name"] == name]
    return str(entry["id"])


async def wait_status(
    http: aiohttp.ClientSession, server: Server, name: str, wanted: str
) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE
    while True:
        found = await data_of(
            http,
            server,
            "query P($n: String) { installedPlugin(name: $n) { id status lastError } }",
            {"n": name},
        )
        plugin: dict[str, Any] = found["installedPlugin"]
        if plugin["status"] == wanted:
            return plugin
        assert time.monotonic() < deadline, f"{name} did not become {wanted}: {plugin}"
        await asyncio.sleep(0.05)


async def point_webhook(
    http: aiohttp.ClientSession,
    running: Running,
    url: str,
    settings: dict[str, Any] | None = None,
    **config: Any,
) -> str:
    """Install (first time) or reconfigure the webhook plugin to POST to `url`, with the run
    `settings` given (its hook timeout, say); wait for ACTIVE."""
    server = running.server
    wanted = {"url": url, "secret": SECRET, "timeoutSeconds": 5, **config}
    plugin_id = running.plugin_ids.get(WEBHOOK)
    if plugin_id is None:
        installed = await data_of(
            http,
            server,
            "mutation I($id: ID!, $config: JSON, $settings: PluginSettingsInput) {"
            " installPlugin(catalogPluginId: $id, config: $config, enable: true,"
            " settings: $settings) { id enabled } }",
            {
                "id": await catalog_id(http, server, WEBHOOK),
                "config": wanted,
                "settings": settings,
            },
        )
        plugin_id = running.plugin_ids[WEBHOOK] = str(installed["installPlugin"]["id"])
        assert installed["installPlugin"]["enabled"] is True
    else:
        await data_of(
            http,
            server,
            "mutation U($id: ID!, $config: JSON, $settings: PluginSettingsInput) {"
            " updatePlugin(id: $id, config: $config, enabled: true, settings: $settings) { id } }",
            {"id": plugin_id, "config": wanted, "settings": settings},
        )
    await wait_status(http, server, WEBHOOK, "ACTIVE")
    return plugin_id


def session_payload(session_id: str) -> dict[str, Any]:
    return {"id": session_id, "user_id": "alice", "template_name": "firefox", "state": "running"}


async def emit(
    http: aiohttp.ClientSession,
    running: Running,
    session_id: str,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    event_input: dict[str, Any] = {
        "type": "session.created",
        "payload": session_payload(session_id),
    }
    if idempotency_key is not None:
        event_input["idempotencyKey"] = idempotency_key
    found = await data_of(
        http, running.server, EMIT, {"input": event_input}, running.platform_token
    )
    result: dict[str, Any] = found["emitEvent"]
    return result


async def emit_many(
    http: aiohttp.ClientSession, running: Running, session_ids: list[str]
) -> list[str]:
    inputs = [{"type": "session.created", "payload": session_payload(s)} for s in session_ids]
    found = await data_of(
        http, running.server, EMIT_MANY, {"inputs": inputs}, running.platform_token
    )
    return [str(result["event"]["id"]) for result in found["emitEvents"]]


async def deliveries(
    http: aiohttp.ClientSession, server: Server, **filter: Any
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = (await data_of(http, server, DELIVERIES, {"filter": filter, "after": after}))[
            "deliveries"
        ]
        found += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


async def wait_final(
    http: aiohttp.ClientSession, server: Server, event_ids: set[str], plugin: str = WEBHOOK
) -> list[dict[str, Any]]:
    """The plugin's deliveries of these events, once every one of them is final."""
    deadline = time.monotonic() + DEADLINE
    while True:
        rows = [
            row
            for row in await deliveries(http, server, plugin=plugin)
            if str(row["eventId"]) in event_ids
        ]
        if {str(row["eventId"]) for row in rows} == event_ids and all(
            row["status"] in FINAL for row in rows
        ):
            return rows
        assert time.monotonic() < deadline, f"deliveries not final in {DEADLINE}s: {rows}"
        await asyncio.sleep(0.1)


async def subscriber_count(http: aiohttp.ClientSession, server: Server) -> int:
    async with http.get(f"{server.base}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("streamspace_subscribers "):
            return int(float(line.split()[1]))
    raise AssertionError(f"no streamspace_subscribers in /metrics:\n{text}")


async def wait_subscribers(http: aiohttp.ClientSession, server: Server, at_least: int) -> None:
    """Until the server holds `at_least` subscription inboxes (they listen right after)."""
    deadline = time.monotonic() + DEADLINE
    while await subscriber_count(http, server) < at_least:
        assert time.monotonic() < deadline, "the subscriptions never started"
        await asyncio.sleep(0.05)


def outcome_of(message: dict[str, Any], key: str = "pluginEvents") -> dict[str, Any] | None:
    """The DeliveryOutcome of a `next` message, or None for anything else."""
    if message.get("type") != "next":
        return None
    data = message["payload"].get("data")
    if not data:
        return None
    outcome: dict[str, Any] = data[key]
    return outcome


def missed_of(message: dict[str, Any]) -> int:
    """`missed` of a MISSED_MESSAGES notice, else 0."""
    if message.get("type") != "next" or message["payload"].get("data") is not None:
        return 0
    [error] = message["payload"]["errors"]
    assert error["extensions"]["code"] == "MISSED_MESSAGES", error
    missed: int = error["extensions"]["missed"]
    return missed


# -- 1. the admin's path -----------------------------------------------------------------------


async def test_an_admin_enables_the_webhook_and_watches_a_signed_delivery_arrive(
    http: aiohttp.ClientSession, running: Running, receiver: Receiver
) -> None:
    server = running.server
    await point_webhook(http, running, receiver.url)
    async with graphql_ws(server.ws_url, server.admin_token) as ws:
        before = await subscriber_count(http, server)
        await ws.subscribe(
            "events",
            PLUGIN_EVENTS,
            {"filter": {"plugin": WEBHOOK, "eventType": "session.created"}},
        )
        await wait_subscribers(http, server, before + 1)
        # Should the broadcast subscription still be settling, an outcome could pass it by:
        # emit again until one arrives (the first one normally does).
        emitted: dict[str, str] = {}
        outcome: dict[str, Any] | None = None
        deadline = time.monotonic() + DEADLINE
        while outcome is None:
            assert time.monotonic() < deadline, "no outcome reached the subscriber"
            session_id = f"s-{uuid.uuid4().hex}"
            result = await emit(http, running, session_id)
            assert result["duplicate"] is False
            assert [d["plugin"] for d in result["deliveries"]] == [WEBHOOK]
            emitted[str(result["event"]["id"])] = session_id
            try:
                while outcome is None:
                    candidate = outcome_of(await ws.receive(5))
                    if candidate and str(candidate["event"]["id"]) in emitted:
                        outcome = candidate
            except TimeoutError:
                continue

    assert outcome["status"] == "SUCCEEDED", outcome
    assert outcome["plugin"] == WEBHOOK
    assert outcome["event"]["type"] == "session.created"
    delivery = outcome["delivery"]
    assert delivery["status"] == "SUCCEEDED" and delivery["plugin"] == WEBHOOK
    assert delivery["attempts"] == 1 and delivery["error"] is None
    assert delivery["result"] == {"status": 200, "webhookId": f"msg_{delivery['id']}"}

    session_id = emitted[str(outcome["event"]["id"])]
    [request] = receiver.about(session_id)
    assert request.signature_ok, "the receiver could not verify the signature"
    assert request.webhook_id == f"msg_{delivery['id']}"
    assert set(request.body) == {"type", "timestamp", "data"}
    assert request.body["type"] == "session.created"
    data = request.body["data"]
    # Normalised once at emitEvent: every spelling present.
    assert data["id"] == session_id
    assert data["user"] == data["userId"] == "alice"
    assert data["template"] == data["templateName"] == "firefox"


# -- 2. eventOutcomes completes ----------------------------------------------------------------


async def test_event_outcomes_streams_the_retries_and_completes_when_final(
    http: aiohttp.ClientSession, running: Running, receiver: Receiver
) -> None:
    receiver.answer = lambda _id, attempt: 503 if attempt <= 2 else 200
    await point_webhook(http, running, receiver.url)
    session_id = f"s-{uuid.uuid4().hex}"
    event_id = str((await emit(http, running, session_id))["event"]["id"])

    outcomes: list[dict[str, Any]] = []
    async with graphql_ws(running.server.ws_url, running.server.admin_token) as ws:
        await ws.subscribe("one", EVENT_OUTCOMES, {"id": event_id})
        deadline = time.monotonic() + DEADLINE
        while True:
            assert time.monotonic() < deadline, outcomes
            message = await ws.receive(DEADLINE)
            if message["type"] == "complete":
                assert message["id"] == "one"
                break
            assert message["type"] == "next", message
            outcome = outcome_of(message, "eventOutcomes")
            assert outcome is not None, message
            outcomes.append(outcome)

    assert all(str(o["event"]["id"]) == event_id for o in outcomes)
    statuses = [o["status"] for o in outcomes]
    assert "RETRYING" in statuses, statuses  # the failed attempts streamed before the end
    assert statuses[-1] == "SUCCEEDED", statuses
    assert all(s not in FINAL for s in statuses[:-1]), statuses
    assert outcomes[-1]["delivery"]["attempts"] == 3
    requests = receiver.about(session_id)
    assert [r.answered for r in requests] == [503, 503, 200]
    assert len({r.webhook_id for r in requests}) == 1  # constant across retries of one delivery
    assert all(r.signature_ok for r in requests)


# -- 3. a slow subscriber ----------------------------------------------------------------------

# The kernel's socket buffers on loopback grow to megabytes (the server's send buffer to 4 MiB)
# before the server's own sends block; each outcome is made large (the same fields under many
# aliases) so that what the kernel absorbs is a few hundred outcomes, and the 256 of the
# subscriber's buffer in the hub overflow well within the bulk.
BULK_BATCHES = 3  # of 500 events
WIDE_ALIASES = 24
WIDE_EVENTS = f"""
    subscription Wide($filter: PluginEventsFilter) {{
        pluginEvents(filter: $filter) {{
            {OUTCOME_FIELDS}
            {" ".join(f"copy{n}: delivery {{ {DELIVERY_FIELDS} }}" for n in range(WIDE_ALIASES))}
        }}
    }}
"""


async def test_a_slow_subscriber_is_told_what_it_missed_and_goes_on(
    http: aiohttp.ClientSession, running: Running, receiver: Receiver
) -> None:
    server = running.server
    await point_webhook(http, running, receiver.url)
    query_filter = {"filter": {"plugin": WEBHOOK}}
    async with (
        graphql_ws(server.ws_url, server.admin_token, small_buffer=True) as slow,
        graphql_ws(server.ws_url, server.admin_token) as fast,
    ):
        before = await subscriber_count(http, server)
        await slow.subscribe("slow", WIDE_EVENTS, query_filter)
        await fast.subscribe("fast", PLUGIN_EVENTS, query_filter)
        await wait_subscribers(http, server, before + 2)

        # Both listen: a warm-up event reaches each (re-emitted should one slip past).
        async def sees(ws: GraphQLWebSocket, event_ids: set[str]) -> bool:
            try:
                while True:
                    outcome = outcome_of(await ws.receive(5))
                    if outcome and str(outcome["event"]["id"]) in event_ids:
                        return True
            except TimeoutError:
                return False

        warm: set[str] = set()
        for _ in range(10):
            warm.add(str((await emit(http, running, f"warm-{uuid.uuid4().hex}"))["event"]["id"]))
            if await sees(slow, warm) and await sees(fast, warm):
                break
        else:
            pytest.fail("the subscribers never received a warm-up outcome")

        # The fast subscriber reads everything as it comes; the slow one reads nothing.
        bulk: set[str] = set()
        fast_seen: set[str] = set()
        fast_missed: list[int] = []
        bulk_done = asyncio.Event()

        async def read_fast() -> None:
            while not (bulk_done.is_set() and bulk <= fast_seen):
                message = await fast.receive(DEADLINE)
                if missed := missed_of(message):
                    fast_missed.append(missed)
                outcome = outcome_of(message)
                if outcome and outcome["status"] == "SUCCEEDED":
                    fast_seen.add(str(outcome["event"]["id"]))

        reading = asyncio.create_task(read_fast())
        try:
            for batch in range(BULK_BATCHES):
                ids = [f"bulk-{batch}-{n}-{uuid.uuid4().hex[:8]}" for n in range(500)]
                bulk.update(await emit_many(http, running, ids))
            bulk_done.set()
            await asyncio.wait_for(asyncio.shield(reading), DEADLINE)
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
        assert not fast_missed, f"the fast subscriber missed {fast_missed}"
        assert bulk <= fast_seen

        # Every bulk delivery is done; the slow subscriber starts reading again. What the
        # kernel held comes first, then the notice, then what the hub buffered.
        await wait_final(http, server, bulk)
        missed = 0
        slow_seen: set[str] = set()
        deadline = time.monotonic() + DEADLINE
        while not missed:
            assert time.monotonic() < deadline, "the slow subscriber was never told it missed"
            message = await slow.receive(DEADLINE)
            missed += missed_of(message)
            if outcome := outcome_of(message):
                slow_seen.add(str(outcome["event"]["id"]))

        # The subscription goes on: a later event's outcome arrives. (One emitted while the
        # hub's buffer is still full would be missed in turn, so emit until one gets through.)
        later: set[str] = set()
        while not later & slow_seen:
            assert time.monotonic() < deadline, "the slow subscriber stopped receiving"
            later.add(str((await emit(http, running, f"later-{uuid.uuid4().hex}"))["event"]["id"]))
            with contextlib.suppress(TimeoutError):
                while not later & slow_seen:
                    message = await slow.receive(5)
                    missed += missed_of(message)
                    if outcome := outcome_of(message):
                        slow_seen.add(str(outcome["event"]["id"]))
        await slow.ping()  # and the connection is alive

    assert 0 < len(slow_seen & bulk) < len(bulk)
    assert len(slow_seen & bulk) + missed >= len(bulk)


# -- 4. crash recovery -------------------------------------------------------------------------


async def test_deliveries_survive_a_sigkill_mid_retry(
    http: aiohttp.ClientSession, backend: Backend, receiver: Receiver, tmp_path: Path
) -> None:
    """Each delivery fails once (503), then its retry hangs at the receiver: the server is
    killed while deliveries are RETRYING and at least one is RUNNING. A new server on the same
    data finishes them all: SQLite takes RUNNING rows back at start, PostgreSQL once the lease
    (2·timeout + 5 s; a hook timeout of 1 s keeps it short) runs out.

    Four events, as five consecutive failures would open the plugin's circuit breaker and hold
    the retries back for its cooldown.
    """
    receiver.answer = lambda _id, attempt: 503 if attempt == 1 else HANG
    database_url, drop = fresh_database(backend)
    settings = {
        "STREAMSPACE_DELIVERY_BACKOFF_BASE": "0.2",
        "STREAMSPACE_DELIVERY_MAX_ATTEMPTS": "50",
    }
    try:
        first = await asyncio.to_thread(launch, tmp_path, backend, database_url, **settings)
        try:
            await point_webhook(
                http, first, receiver.url, settings={"timeoutSeconds": 1}, timeoutSeconds=1
            )
            sessions = [f"crash-{n}-{uuid.uuid4().hex[:8]}" for n in range(4)]
            event_ids = set(await emit_many(http, first, sessions))
            deadline = time.monotonic() + DEADLINE
            while True:
                rows = await deliveries(http, first.server, plugin=WEBHOOK)
                if (
                    len(rows) == len(event_ids)
                    and all(r["attempts"] >= 1 for r in rows)
                    and any(r["status"] == "RETRYING" for r in rows)
                ):
                    break
                assert time.monotonic() < deadline, rows
                await asyncio.sleep(0.02)
            async with asyncio.timeout(DEADLINE):
                await receiver.hanging.wait()  # a retry is running now
        finally:
            first.server.process.kill()  # SIGKILL: no shutdown, nothing handed back
            await asyncio.to_thread(first.server.process.wait)
        assert [r.answered for r in receiver.received].count(503) >= 1
        assert HANG in [r.answered for r in receiver.received]

        receiver.answer = lambda _id, _attempt: 200
        second = await asyncio.to_thread(launch, tmp_path, backend, database_url, **settings)
        # Not the data directory's first start: the server prints no admin token again.
        second.server.admin_token = first.server.admin_token
        try:
            rows = await wait_final(http, second.server, event_ids)
        finally:
            status = await asyncio.to_thread(second.server.stop)
        check_clean_exit(second.server, status)
    finally:
        drop()

    assert all(r["status"] == "SUCCEEDED" for r in rows), rows
    expected = {f"msg_{r['id']}" for r in rows}
    assert len(expected) == len(sessions)
    assert all(r.signature_ok for r in receiver.received)
    assert {r.webhook_id for r in receiver.received} == expected
    for webhook_id in expected:
        carried = [r for r in receiver.received if r.webhook_id == webhook_id]
        # Every request about one delivery carries its webhook-id and the same event: any
        # duplicate is a retry of that delivery. Each ends answered 200.
        assert len({json.dumps(r.body, sort_keys=True) for r in carried}) == 1
        assert carried[-1].answered == 200, [r.answered for r in carried]
    assert {r.body["data"]["id"] for r in receiver.received} == set(sessions)


# -- 5. idempotency ----------------------------------------------------------------------------


async def test_concurrent_emits_with_one_idempotency_key_deliver_once(
    http: aiohttp.ClientSession, running: Running, receiver: Receiver
) -> None:
    await point_webhook(http, running, receiver.url)
    session_id = f"s-{uuid.uuid4().hex}"
    key = f"key-{uuid.uuid4().hex}"
    results = await asyncio.gather(*(emit(http, running, session_id, key) for _ in range(10)))
    assert len({str(r["event"]["id"]) for r in results}) == 1, results
    assert [r["duplicate"] for r in results].count(False) == 1, results
    event_id = str(results[0]["event"]["id"])

    [row] = await wait_final(http, running.server, {event_id})
    assert row["status"] == "SUCCEEDED"
    [request] = receiver.about(session_id)
    assert request.webhook_id == f"msg_{row['id']}" and request.signature_ok


# -- 6. plugin status and logs -----------------------------------------------------------------

STATUS = """
    subscription S($p: String) { pluginStatus(plugin: $p) { plugin status previousStatus replica } }
"""
LOGS = "subscription L($p: String) { pluginLogs(plugin: $p) { plugin level message data } }"


async def test_plugin_status_and_logs_stream_while_enabling_and_disabling(
    http: aiohttp.ClientSession, running: Running, receiver: Receiver
) -> None:
    """streamspace-teams writes a log entry when it loads, so it stands in for any plugin."""
    server = running.server
    installed = await data_of(
        http,
        server,
        "mutation I($id: ID!, $config: JSON) {"
        " installPlugin(catalogPluginId: $id, config: $config) { id status } }",
        {"id": await catalog_id(http, server, TEAMS), "config": {"webhookUrl": receiver.url}},
    )
    plugin_id = installed["installPlugin"]["id"]
    enable = f'mutation {{ enablePlugin(id: "{plugin_id}") {{ id }} }}'
    disable = f'mutation {{ disablePlugin(id: "{plugin_id}") {{ id }} }}'

    async def changes_until(
        ws: GraphQLWebSocket, final: str, log: bool = False
    ) -> tuple[list[str], list[str]]:
        """Statuses (of this server) and log messages until `final` (and with `log`, a log
        entry: they are written in batches, so one may come after the status) or a quiet
        spell."""
        statuses: list[str] = []
        logs: list[str] = []
        try:
            while final not in statuses or (log and not logs):
                message = await ws.receive(5)
                if message.get("type") != "next" or not message["payload"].get("data"):
                    continue
                data = message["payload"]["data"]
                if message["id"] == "status":
                    change = data["pluginStatus"]
                    assert change["plugin"] == TEAMS
                    if str(change["replica"]).endswith(running.replica_suffix):
                        statuses.append(change["status"])
                else:
                    entry = data["pluginLogs"]
                    assert entry["plugin"] == TEAMS
                    logs.append(f"{entry['level']} {entry['message']}")
        except TimeoutError:
            pass
        return statuses, logs

    try:
        async with graphql_ws(server.ws_url, server.admin_token) as ws:
            before = await subscriber_count(http, server)
            await ws.subscribe("status", STATUS, {"p": TEAMS})
            await ws.subscribe("logs", LOGS, {"p": TEAMS})
            await wait_subscribers(http, server, before + 2)
            # Enable; should a subscription still have been settling, go round again.
            for _ in range(5):
                await data_of(http, server, enable)
                statuses, logs = await changes_until(ws, "ACTIVE", log=True)
                if statuses == ["LOADING", "ACTIVE"] and logs:
                    break
                await data_of(http, server, disable)
                await changes_until(ws, "DISABLED")
            else:
                pytest.fail(f"no LOADING → ACTIVE with a log entry: {statuses} {logs}")
            assert statuses == ["LOADING", "ACTIVE"], statuses
            assert any(line.startswith("INFO streamspace-teams ready") for line in logs), logs

            await data_of(http, server, disable)
            statuses, _ = await changes_until(ws, "DISABLED")
            assert statuses == ["DISABLED"], statuses

        stored = await data_of(
            http,
            server,
            "query L($p: String!) { pluginLogs(plugin: $p, level: INFO, first: 20) {"
            " edges { node { level message } } } }",
            {"p": TEAMS},
        )
        messages = [e["node"]["message"] for e in stored["pluginLogs"]["edges"]]
        assert any(m.startswith("streamspace-teams ready") for m in messages), messages
    finally:
        await data_of(http, server, f'mutation {{ uninstallPlugin(id: "{plugin_id}") }}')
