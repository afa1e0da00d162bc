"""ctx.events: a plugin publishes `<plugin>.<name>`; other plugins receive it, it does not."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from models import Delivery, Event
from runtime.emitter import EmitRequest
from runtime.errors import BadUserInput
from runtime.sdk import Event as SdkEvent
from runtime.sdk import Plugin, PluginContext
from tests.conftest import Database
from tests.runtime.hosting import all_final, running_host, until

SESSION = {"id": "s1", "user": "ann", "template": "firefox"}
received: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}


class Announcer(Plugin):
    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        await ctx.events.publish("thing", {"session": session["id"]})

    async def on_event(self, ctx: PluginContext, event: SdkEvent) -> None:
        received.setdefault("a", []).append((event.type, event.payload))


class Listener(Plugin):
    async def on_event(self, ctx: PluginContext, event: SdkEvent) -> None:
        received.setdefault("b", []).append((event.type, event.payload))


async def test_a_published_event_reaches_other_plugins_but_not_its_publisher(
    db: Database,
) -> None:
    received.clear()
    async with running_host({"a": Announcer, "b": Listener}) as host:
        await host.emitter.emit(EmitRequest("session.created", SESSION))
        await until(lambda: Event.filter(type="a.thing").exists())
        published = await Event.get(type="a.thing")
        await until(lambda: all_final(published.id))
    assert [seen for seen in received["b"] if seen[0] == "a.thing"] == [
        ("a.thing", {"session": "s1"})
    ]
    assert "a" not in received
    deliveries = await Delivery.filter(event_id=published.id).values_list("plugin", flat=True)
    assert [str(plugin) for plugin in deliveries] == ["b"]


async def test_types_of_known_plugins_are_accepted_and_others_refused(db: Database) -> None:
    async with running_host({"a": Announcer, "b": Listener}) as host:
        accepted = await host.emitter.emit(EmitRequest("b.done", {}))
        assert [d.plugin for d in accepted.deliveries] == ["a"]
        with pytest.raises(BadUserInput) as refused:
            await host.emitter.emit(EmitRequest("nobody.done", {}))
    assert refused.value.fields[0].path == "type"
