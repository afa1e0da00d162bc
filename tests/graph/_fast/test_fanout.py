"""Subscription messages over graphql-transport-ws: shared payloads and direct delivery.

The view is driven in-process as an ASGI WebSocket application, so the frames it sends are
seen byte for byte.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from graph._fast.fanout import next_prefix, run_eagerly
from graph._fast.websocket_frames import FRAMES_EXTENSION, FrameWriter, text_frame
from graph.app import GraphQLApp
from graph.context import Services
from models import Delivery, EventRow
from runtime.core.auth import Role
from runtime.delivery.emitter import DELIVERY_CHANNEL
from runtime.delivery.messages import outcome_message
from runtime.hosting.host import STATUS_CHANNEL
from tests.conftest import Database, QueryCounter, needs_fast_paths

EVENTS = (
    "subscription { pluginEvents(filter: {status: SUCCEEDED}) "
    "{ plugin status event { id type payload } delivery { id status attempts } } }"
)
STATUS = "subscription { pluginStatus { plugin status } }"


class Client:
    """One WebSocket connection to the view, as the ASGI server would make it."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.frames: list[str] = []
        self.closed: dict[str, Any] | None = None
        self._arrived = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            assert message.get("text") is not None, "graphql-transport-ws frames are text"
            self.frames.append(message["text"])
        elif message["type"] == "websocket.close":
            self.closed = message
        self._arrived.set()

    def say(self, message: dict[str, Any]) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "text": json.dumps(message)})

    async def wait_for(self, count: int) -> list[str]:
        async with asyncio.timeout(5):
            while len(self.frames) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.frames

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(frame) for frame in self.frames]


def token(services: Services) -> str:
    return services.tokens.issue(Role.ADMIN, "ops")


@asynccontextmanager
async def connected(
    services: Services, write_frame: FrameWriter | None = None
) -> AsyncIterator[Client]:
    """A connection; with `write_frame`, its server offers that frame writer in the scope."""
    app = GraphQLApp(services)
    client = Client()
    extensions = {} if write_frame is None else {FRAMES_EXTENSION: {"write": write_frame}}
    scope = {
        "extensions": extensions,
        "type": "websocket",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "scheme": "ws",
        "headers": [(b"host", b"test"), (b"sec-websocket-protocol", b"graphql-transport-ws")],
        "subprotocols": ["graphql-transport-ws"],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    client.incoming.put_nowait({"type": "websocket.connect"})
    task = asyncio.create_task(app(scope, client.receive, client.send))
    client.say(
        {"type": "connection_init", "payload": {"Authorization": f"Bearer {token(services)}"}}
    )
    await client.wait_for(1)
    assert client.messages()[0] == {"type": "connection_ack"}
    try:
        yield client
    finally:
        client.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
        async with asyncio.timeout(5):
            await task


async def subscribed(client: Client, query: str, operation_id: str = "o") -> None:
    client.say({"id": operation_id, "type": "subscribe", "payload": {"query": query}})
    await asyncio.sleep(0.1)  # the subscription listens once its resolver has subscribed


async def outcome(index: int, status: str = "SUCCEEDED") -> dict[str, Any]:
    """An outcome message, as the dispatcher publishes it, of a delivery written to the database
    (`event { payload }` reads it from there)."""
    now = datetime.now(UTC)
    event = await EventRow.create(type="session.created", payload={"n": index}, occurred_at=now)
    delivery = await Delivery.create(
        event_id=event.id, plugin="echo", hook="on_session_created", next_attempt_at=now,
        status=status, attempts=1,
    )  # fmt: skip
    return outcome_message(delivery, event)


def next_frames(client: Client, operation_id: str = "o") -> list[str]:
    return [f for f in client.frames if json.loads(f).get("id") == operation_id]


def encode(message: object) -> str:
    return orjson.dumps(message).decode()


async def test_subscribers_of_one_operation_get_byte_identical_payloads(
    db: Database, services: Services
) -> None:
    hub = services.host.hub
    async with connected(services) as ann, connected(services) as bob:
        await subscribed(ann, EVENTS, "a")
        await subscribed(bob, EVENTS, "b")
        await hub.publish(DELIVERY_CHANNEL, await outcome(1, "RETRYING"))  # filtered out
        messages = [await outcome(index) for index in (2, 3)]
        for message in messages:
            await hub.publish(DELIVERY_CHANNEL, message)
        ann_frames = (await ann.wait_for(3))[1:]
        bob_frames = (await bob.wait_for(3))[1:]
    for frame_a, frame_b in zip(ann_frames, bob_frames, strict=True):
        message_a, message_b = json.loads(frame_a), json.loads(frame_b)
        assert (message_a["id"], message_a["type"]) == ("a", "next")
        assert (message_b["id"], message_b["type"]) == ("b", "next")
        payload_a = frame_a.removeprefix(next_prefix(encode, "a") or "")[:-1]
        payload_b = frame_b.removeprefix(next_prefix(encode, "b") or "")[:-1]
        assert payload_a == payload_b
        # Exactly what encoding the whole message gives, as clients received it so far.
        assert frame_a == encode(message_a)
    payloads = [json.loads(f)["payload"]["data"]["pluginEvents"]["event"] for f in ann_frames]
    assert [p["id"] for p in payloads] == [str(m["event"]["id"]) for m in messages]
    assert [p["payload"] for p in payloads] == [{"n": 2}, {"n": 3}]


async def test_another_operation_gets_its_own_payload(db: Database, services: Services) -> None:
    other = "subscription { pluginEvents(filter: {status: SUCCEEDED}) { plugin status } }"
    hub = services.host.hub
    async with connected(services) as client:
        await subscribed(client, EVENTS, "full")
        await subscribed(client, other, "short")
        message = await outcome(7)
        await hub.publish(DELIVERY_CHANNEL, message)
        await client.wait_for(3)
    full, short = next_frames(client, "full"), next_frames(client, "short")
    assert json.loads(short[0])["payload"] == {
        "data": {"pluginEvents": {"plugin": "echo", "status": "SUCCEEDED"}}
    }
    assert json.loads(full[0])["payload"]["data"]["pluginEvents"]["delivery"] == {
        "id": str(message["delivery"]["id"]),
        "status": "SUCCEEDED",
        "attempts": 1,
    }


def inbox_reads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What subscribers' own tasks read from their inboxes (direct delivery reads nothing)."""
    from runtime.broadcast.hub import Inbox

    read: list[object] = []
    get = Inbox.get

    async def counted_get(self: Inbox) -> Any:
        message = await get(self)
        read.append(message)
        return message

    monkeypatch.setattr(Inbox, "get", counted_get)
    return read


@needs_fast_paths
async def test_an_idle_subscriber_is_served_without_waking_its_task(
    db: Database, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = inbox_reads(monkeypatch)
    hub = services.host.hub
    async with connected(services) as one, connected(services) as two:
        await subscribed(one, STATUS)
        await subscribed(two, STATUS)
        for index in range(5):
            await hub.publish(
                STATUS_CHANNEL,
                {"plugin": f"p{index}", "status": "ACTIVE", "at": "2026-01-01T00:00:00+00:00"},
            )
        await one.wait_for(6)
        await two.wait_for(6)
    assert read == []
    plugins = [m["payload"]["data"]["pluginStatus"]["plugin"] for m in one.messages()[1:]]
    assert plugins == [f"p{index}" for index in range(5)]
    assert one.frames[1:] == two.frames[1:]  # the same operation id on both connections


@needs_fast_paths
async def test_outcomes_queued_while_the_first_is_made_go_out_together_once_made(
    db: Database, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = inbox_reads(monkeypatch)
    hub = services.host.hub
    async with connected(services) as one, connected(services) as two:
        await subscribed(one, EVENTS)
        await subscribed(two, EVENTS)
        messages = [await outcome(index) for index in range(5)]
        for message in messages:
            # As the emitter leaves them: every execution finishes in the same turn.
            services.host.events.add(await EventRow.get(id=message["event"]["id"]))
        for message in messages:
            await hub.publish(DELIVERY_CHANNEL, message)
        await one.wait_for(6)
        await two.wait_for(6)
    assert read == []  # none of them woke a subscriber's task
    for client in (one, two):
        events = [m["payload"]["data"]["pluginEvents"]["event"] for m in client.messages()[1:]]
        assert [e["payload"] for e in events] == [{"n": index} for index in range(5)]


async def test_a_backlog_reaches_subscribers_of_different_operations_each_as_theirs(
    db: Database, services: Services
) -> None:
    short = "subscription { pluginEvents(filter: {status: SUCCEEDED}) { plugin status } }"
    elsewhere = 'subscription { pluginEvents(filter: {plugin: "other"}) { plugin } }'
    hub = services.host.hub
    async with connected(services) as one, connected(services) as two:
        await subscribed(one, EVENTS, "full")
        await subscribed(one, elsewhere, "none")
        await subscribed(two, short, "short")
        await subscribed(two, EVENTS, "full")
        messages = [await outcome(index) for index in range(4)]
        for message in messages:
            services.host.events.add(await EventRow.get(id=message["event"]["id"]))
        for message in messages:
            await hub.publish(DELIVERY_CHANNEL, message)
        await one.wait_for(5)
        await two.wait_for(9)
        await asyncio.sleep(0.1)
    assert next_frames(one, "none") == []
    for client in (one, two):
        full = [
            json.loads(f)["payload"]["data"]["pluginEvents"] for f in next_frames(client, "full")
        ]
        assert [f["event"]["payload"] for f in full] == [{"n": index} for index in range(4)]
    assert [json.loads(f)["payload"] for f in next_frames(two, "short")] == [
        {"data": {"pluginEvents": {"plugin": "echo", "status": "SUCCEEDED"}}}
    ] * 4


async def test_an_outcome_s_event_payload_comes_from_the_host_s_event_cache(
    db: Database, services: Services, sql_counter: QueryCounter
) -> None:
    hub = services.host.hub
    async with connected(services) as client:
        await subscribed(client, EVENTS)
        cached, missed = await outcome(1), await outcome(2)
        services.host.events.add(await EventRow.get(id=cached["event"]["id"]))
        before = sql_counter.count
        await hub.publish(DELIVERY_CHANNEL, cached)
        await client.wait_for(2)
        assert sql_counter.count == before
        await hub.publish(DELIVERY_CHANNEL, missed)  # not kept: read from its row
        await client.wait_for(3)
    payloads = [
        m["payload"]["data"]["pluginEvents"]["event"]["payload"] for m in client.messages()[1:]
    ]
    assert payloads == [{"n": 1}, {"n": 2}]


@needs_fast_paths
async def test_next_messages_go_to_the_server_s_frame_writer_when_it_offers_one(
    db: Database, services: Services
) -> None:
    written: list[bytes] = []
    refuse = False

    def write_frame(frame: bytes) -> bool:
        if refuse:
            return False
        written.append(frame)
        return True

    hub = services.host.hub
    async with connected(services, write_frame) as ann, connected(services, write_frame) as bob:
        await subscribed(ann, STATUS)
        await subscribed(bob, STATUS)
        status = {"plugin": "p", "status": "ACTIVE", "at": "2026-01-01T00:00:00+00:00"}
        await hub.publish(STATUS_CHANNEL, status)
        await asyncio.sleep(0.1)
        refuse = True  # e.g. the socket asks writers to wait: the ordinary send path
        await hub.publish(STATUS_CHANNEL, {**status, "plugin": "q"})
        await ann.wait_for(2)
        await bob.wait_for(2)
    message = {"id": "o", "type": "next", "payload": {"data": {"pluginStatus": {
        "plugin": "p", "status": "ACTIVE"}}}}  # fmt: skip
    assert written == [text_frame(encode(message).encode())] * 2
    for client in (ann, bob):
        assert client.messages()[1]["payload"]["data"]["pluginStatus"]["plugin"] == "q"


async def test_completed_operation_gets_nothing_more(db: Database, services: Services) -> None:
    hub = services.host.hub
    async with connected(services) as client:
        await subscribed(client, STATUS)
        client.say({"id": "o", "type": "complete"})
        await asyncio.sleep(0)  # the handler has read it; the operation's task may not have run
        await hub.publish(
            STATUS_CHANNEL,
            {"plugin": "late", "status": "ACTIVE", "at": "2026-01-01T00:00:00+00:00"},
        )
        await asyncio.sleep(0.1)
    assert [m.get("type") for m in client.messages()] == ["connection_ack"]


async def test_a_lagging_websocket_subscriber_is_told_what_it_missed(
    db: Database, services: Services
) -> None:
    hub = services.host.hub
    async with connected(services) as client:
        await subscribed(client, STATUS)
        # The broadcast link drops: the gap notice goes through the subscriber's task, and
        # what follows it is not sent ahead of it.
        hub._link_changed(False)
        hub._link_changed(True)
        await hub.publish(
            STATUS_CHANNEL,
            {"plugin": "after", "status": "ACTIVE", "at": "2026-01-01T00:00:00+00:00"},
        )
        await client.wait_for(3)
    first, second = client.messages()[1:3]
    assert first["payload"]["data"] is None
    assert first["payload"]["errors"][0]["extensions"]["code"] == "MISSED_MESSAGES"
    assert second["payload"]["data"] == {"pluginStatus": {"plugin": "after", "status": "ACTIVE"}}


async def test_run_eagerly_finishes_in_the_caller_or_resumes_in_a_task() -> None:
    steps: list[str] = []

    async def quick() -> str:
        steps.append("quick")
        return "done"

    assert run_eagerly(quick()) is None
    assert steps == ["quick"]

    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def waits() -> str:
        steps.append("before")
        value = await gate
        await asyncio.sleep(0)
        steps.append(f"after {value}")
        return value

    rest = run_eagerly(waits())
    assert rest is not None and steps == ["quick", "before"]
    gate.set_result("open")
    assert await rest == "open"
    assert steps[-1] == "after open"

    async def fails() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError):
        run_eagerly(fails())


def test_next_prefix_splits_the_encoded_message() -> None:
    prefix = next_prefix(encode, "op-1")
    assert prefix is not None
    message = {"id": "op-1", "type": "next", "payload": {"data": {"x": [1, "é"]}}}
    assert prefix + encode({"data": {"x": [1, "é"]}}) + "}" == encode(message)
    assert next_prefix(lambda m: json.dumps(m, indent=1), "op-1") is None
