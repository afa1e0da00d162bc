"""ctx.events: a plugin holding `events:publish` publishes `<plugin>.<name>`; other plugins
receive it, it does not; nobody else emits its types."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from models import Delivery, EventRow
from runtime.core.errors import BadUserInput, Forbidden
from runtime.delivery.emitter import EmitRequest
from runtime.sdk import Event, Plugin, PluginContext
from tests.conftest import Database
from tests.runtime.hosts import all_final, manifest, running_host, until

SESSION = {"id": "s1", "user": "ann", "template": "firefox"}
received: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}


class Announcer(Plugin):
    MANIFEST = manifest("a", ["sessions:read", "events:publish"])

    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        await ctx.events.publish("thing", {"session": session["id"]})

    async def on_event(self, ctx: PluginContext, event: Event) -> None:
        received.setdefault("a", []).append((event.type, event.payload))


class Listener(Plugin):
    async def on_event(self, ctx: PluginContext, event: Event) -> None:
        received.setdefault("b", []).append((event.type, event.payload))


async def test_a_published_event_reaches_other_plugins_but_not_its_publisher(
    db: Database,
) -> None:
    received.clear()
    async with running_host({"a": Announcer, "b": Listener}) as host:
        await host.emitter.emit(EmitRequest("session.created", SESSION))
        await until(lambda: EventRow.filter(type="a.thing").exists())
        published = await EventRow.get(type="a.thing")
        await until(lambda: all_final(published.id))
    assert [seen for seen in received["b"] if seen[0] == "a.thing"] == [
        ("a.thing", {"session": "s1"})
    ]
    assert "a" not in received
    deliveries = await Delivery.filter(event_id=published.id).values_list("plugin", flat=True)
    assert [str(plugin) for plugin in deliveries] == ["b"]


async def test_a_plugin_without_events_publish_publishes_nothing(db: Database) -> None:
    async with running_host({"silent": Unpermitted, "b": Listener}) as host:
        emitted = await host.emitter.emit(EmitRequest("session.created", SESSION))
        tried = Delivery.filter(event_id=emitted.event.id, plugin="silent", error__isnull=False)
        await until(tried.exists)
        delivery = await tried.first()
    assert delivery is not None and "lack events:publish" in str(delivery.error)
    assert not await EventRow.filter(type="silent.thing").exists()


class Unpermitted(Plugin):
    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        await ctx.events.publish("thing", {"session": session["id"]})


async def test_the_platform_may_not_emit_a_plugins_types(db: Database) -> None:
    async with running_host({"a": Announcer, "b": Listener}) as host:
        with pytest.raises(Forbidden) as forbidden:
            await host.emitter.emit(EmitRequest("b.done", {}))
        with pytest.raises(BadUserInput) as refused:
            await host.emitter.emit(EmitRequest("nobody.done", {}))
    assert "belongs to the plugin b" in forbidden.value.message
    assert forbidden.value.extensions["fields"][0]["path"] == "type"
    assert refused.value.fields[0].path == "type"
    assert await EventRow.all().count() == 0


@pytest.mark.parametrize(
    ("plugin", "name"),
    [("session", "created"), ("custom", "x"), ("plugin", "installed"), ("a", "b.c"), ("a", "")],
    ids=["a-catalog-family", "custom", "a-server-type", "a-dotted-name", "no-name"],
)
async def test_a_plugin_cannot_publish_a_type_outside_its_own_namespace(
    db: Database, plugin: str, name: str
) -> None:
    class Publisher(Plugin):
        MANIFEST = manifest(plugin, ["events:publish"])

    async with running_host({plugin: Publisher}) as host:
        events = host.loaded[plugin].context.events
        with pytest.raises((Forbidden, BadUserInput)):
            await events.publish(name, {})
    assert await EventRow.all().count() == 0
