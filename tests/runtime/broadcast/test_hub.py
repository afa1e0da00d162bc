"""The fan-out hub: bounded inboxes, missed counts, one pump per channel."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from broadcaster import Broadcast
from broadcaster._backends.memory import MemoryBackend

from runtime.broadcast import hub as hub_module
from runtime.broadcast.hub import PUBLISH_AT_ONCE, Hub, Inbox, Message


async def test_every_subscriber_of_a_channel_receives_each_message() -> None:
    async with Hub("memory://") as hub:
        async with hub.subscribe("c") as first, hub.subscribe("c") as second:
            async with hub.subscribe("other") as other:
                await hub.publish("c", {"n": 1})
                await hub.publish("other", {"n": 2})
                assert await first.get() == Message({"n": 1})
                assert await second.get() == Message({"n": 1})
                assert await other.get() == Message({"n": 2})
            assert hub.subscriber_count() == 2
        assert hub.subscriber_count() == 0


async def test_a_full_inbox_counts_what_it_missed_then_goes_on() -> None:
    async with (
        Hub("memory://") as hub,
        hub.subscribe("c", buffer=2) as slow,
        hub.subscribe("c") as fast,
    ):
        for n in range(5):
            await hub.publish("c", {"n": n})
        for n in range(5):
            assert await fast.get() == Message({"n": n})  # the slow one held nobody up
        # The count stands where the dropped messages would have been.
        assert await slow.get() == Message({"n": 0})
        assert await slow.get() == Message({"n": 1})
        assert await slow.get() == Message(None, missed=3)
        await hub.publish("c", {"n": 5})
        assert await slow.get() == Message({"n": 5})


class Loopback(MemoryBackend):
    """A broadcast server stand-in: what is published comes back through the subscriptions,
    as from Redis (the hub treats it as shared, not as the in-process broadcast)."""


def _is_shared_loopback(backend: object) -> bool:
    return isinstance(backend, Loopback)


async def test_a_subscriber_after_the_pump_ended_gets_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub_module, "_is_shared", _is_shared_loopback)
    async with Hub(broadcast=Broadcast(backend=Loopback("loop://"))) as hub:
        assert hub.shared
        async with hub.subscribe("c"):
            pass
        pump = hub._pumps["c"]
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        async with hub.subscribe("c") as inbox:
            await hub.publish("c", {"n": 1})
            assert await inbox.get() == Message({"n": 1})


def delivery_after(made: asyncio.Future[None], taken: list[object]) -> Any:
    """A direct delivery that must wait until `made` is done, then takes each message's n."""

    def deliver(data: dict[str, object]) -> bool | asyncio.Future[None]:
        if not made.done():
            return made
        taken.append(data["n"])
        return True

    return deliver


async def _idle_reader(inbox: Inbox) -> asyncio.Future[Message]:
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)  # it waits in get()
    return reader


async def test_an_idle_reader_s_messages_go_to_direct_delivery() -> None:
    taken: list[dict[str, object]] = []

    def deliver(data: dict[str, object]) -> bool:
        taken.append(data)
        return data["n"] != 2  # the reader handles this one itself

    inbox = Inbox(8)
    inbox.deliver_directly(deliver)
    inbox.offer({"n": 0})  # nobody waits in get() yet: buffered
    assert await inbox.get() == Message({"n": 0})
    reader = await _idle_reader(inbox)
    inbox.offer({"n": 1})
    inbox.offer({"n": 2})
    inbox.offer({"n": 3})  # behind n=2, which the reader has yet to see
    assert await reader == Message({"n": 2})
    assert await inbox.get() == Message({"n": 3})
    assert taken == [{"n": 1}, {"n": 2}]


async def test_direct_delivery_that_must_wait_holds_the_message_in_order() -> None:
    made: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    taken: list[object] = []
    deliver = delivery_after(made, taken)

    inbox = Inbox(8)
    inbox.deliver_directly(deliver)
    reader = await _idle_reader(inbox)
    inbox.offer({"n": 1})
    inbox.offer({"n": 2})
    await asyncio.sleep(0)
    assert taken == [] and not reader.done()  # held, and the reader not woken
    made.set_result(None)
    await asyncio.sleep(0)
    assert taken == [1, 2] and not reader.done()
    inbox.offer({"n": 3})
    assert taken == [1, 2, 3]
    reader.cancel()


async def test_a_gap_while_direct_delivery_waits_goes_to_the_reader_in_order() -> None:
    made: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    inbox = Inbox(8)
    inbox.deliver_directly(lambda data: made)
    reader = await _idle_reader(inbox)
    inbox.offer({"n": 1})
    inbox.report_gap(2)
    inbox.offer({"n": 2})
    assert await reader == Message({"n": 1})
    assert await inbox.get() == Message(None, missed=2)
    assert await inbox.get() == Message({"n": 2})
    made.set_result(None)  # too late to matter: the reader took them
    await asyncio.sleep(0)


async def test_direct_delivery_that_raises_leaves_the_message_to_the_reader() -> None:
    def deliver(data: dict[str, object]) -> bool:
        raise RuntimeError("broken")

    inbox = Inbox(8)
    inbox.deliver_directly(deliver)
    reader = await _idle_reader(inbox)
    inbox.offer({"n": 1})
    assert await reader == Message({"n": 1})


async def test_messages_queued_behind_a_waiting_direct_delivery_are_prepared() -> None:
    made: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    prepared: list[object] = []
    taken: list[object] = []
    deliver = delivery_after(made, taken)

    inbox = Inbox(2)
    inbox.deliver_directly(deliver, lambda data: prepared.append(data["n"]))
    reader = await _idle_reader(inbox)
    inbox.offer({"n": 1})  # deliver was asked, and waits: nothing to prepare
    inbox.offer({"n": 2})  # queued behind it
    inbox.offer({"n": 3})  # dropped (the buffer holds two): never delivered, so not prepared
    assert prepared == [2] and taken == []
    made.set_result(None)
    assert await reader == Message(None, missed=1)
    assert taken == [1, 2]
    inbox.offer({"n": 4})  # nothing waits: delivered, not prepared
    assert prepared == [2]


async def test_a_prepare_that_raises_changes_nothing_for_the_message() -> None:
    made: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    taken: list[object] = []
    deliver = delivery_after(made, taken)

    def prepare(data: dict[str, object]) -> None:
        raise RuntimeError("broken")

    inbox = Inbox(8)
    inbox.deliver_directly(deliver, prepare)
    reader = await _idle_reader(inbox)
    inbox.offer({"n": 1})
    inbox.offer({"n": 2})
    made.set_result(None)
    await asyncio.sleep(0)
    assert taken == [1, 2] and not reader.done()
    reader.cancel()


class RoundTrips:
    """A broadcast backend of a server elsewhere: each publish waits for its answer."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.published: list[str] = []

    async def connect(self) -> None:
        return None

    async def disconnect(self) -> None:
        return None

    async def publish(self, channel: str, message: str) -> None:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        self.published.append(message)
        await asyncio.sleep(0.01)
        self.in_flight -= 1


async def test_through_a_broadcast_server_several_publishes_are_in_flight_at_once() -> None:
    backend = RoundTrips()
    hub = Hub(broadcast=Broadcast(backend=backend))  # type: ignore[arg-type]
    assert hub.shared
    await hub.publish_many("c", [{"n": n} for n in range(40)])
    assert backend.most == PUBLISH_AT_ONCE
    assert backend.published == [f'{{"n":{n}}}' for n in range(40)]


async def test_in_process_several_publishes_go_in_turn() -> None:
    async with Hub("memory://") as hub, hub.subscribe("c") as inbox:
        tasks = len(asyncio.all_tasks())
        await hub.publish_many("c", [{"n": n} for n in range(5)])
        assert len(asyncio.all_tasks()) == tasks  # no task per message
        assert [await inbox.get() for _ in range(5)] == [Message({"n": n}) for n in range(5)]


async def test_in_process_a_message_is_in_the_inboxes_when_publish_returns() -> None:
    async with Hub("memory://") as hub, hub.subscribe("c") as first, hub.subscribe("c") as second:
        message = {"n": 1}
        assert await hub.publish("c", message)
        assert hub._pumps == {}  # no broadcaster subscription in between
        # Neither encoded nor copied: every subscriber reads the message as published.
        assert (await first.get()).data is message
        assert (await second.get()).data is message


@pytest.mark.parametrize("fast_paths", [True, False], ids=["fast paths", "no fast paths"])
async def test_in_process_a_message_goes_straight_to_the_inboxes_unless_the_fast_paths_are_off(
    fast_paths: bool,
) -> None:
    async with Hub("memory://", fast_paths=fast_paths) as hub, hub.subscribe("c") as inbox:
        sent = {"n": 1, "nested": {"a": [1, "b"]}}
        await hub.publish("c", sent)
        await hub.publish_many("c", [{"n": 2}, {"n": 3}])
        received = [(await inbox.get()).data for _ in range(3)]
        assert not hub.shared  # no other process publishes here, either way
    assert received == [sent, {"n": 2}, {"n": 3}]
    # Without the fast paths it went through broadcaster: encoded, and read back as a copy.
    assert (received[0] is sent) is fast_paths
