"""The fan-out hub: bounded inboxes, missed counts, one pump per channel."""

from __future__ import annotations

import asyncio
import contextlib

from runtime.hub import Hub, Message


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


async def test_a_subscriber_after_the_pump_ended_gets_a_new_one() -> None:
    async with Hub("memory://") as hub:
        async with hub.subscribe("c"):
            pass
        pump = hub._pumps["c"]
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        async with hub.subscribe("c") as inbox:
            await hub.publish("c", {"n": 1})
            assert await inbox.get() == Message({"n": 1})
