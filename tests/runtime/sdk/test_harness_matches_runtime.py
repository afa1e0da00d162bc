"""A plugin behaves the same in its unit test and on the server: each case runs one plugin
through `PluginHarness` and through a running `PluginHost`, and compares the outcomes (status,
stored result, stored error)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from functools import partial
from typing import Any

import pytest

from models import Delivery, InstalledPlugin
from runtime.delivery.emitter import EmitRequest
from runtime.sdk import PermanentFailure, Plugin, PluginContext, Skip, UserPayload
from runtime.sdk.hook_runner import TimedOut
from runtime.sdk.testing import PluginHarness
from tests.conftest import Database
from tests.runtime.hosts import all_final, manifest, running_host, until

Seen = tuple[str, Any, str | None]


async def on_the_server(
    plugin: type[Plugin],
    event_type: str,
    payload: Mapping[str, Any],
    secrets: dict[str, Any] | None = None,
    **settings: Any,
) -> Seen:
    """The final outcome the host records for the plugin's one delivery of the event."""
    name = plugin.__name__.lower()
    async with running_host(
        {name: plugin}, secrets={name: secrets} if secrets else None, **settings
    ) as host:
        emitted = await host.emitter.emit(EmitRequest(event_type, payload))
        await until(partial(all_final, emitted.event.id))
    (delivery,) = await Delivery.filter(event_id=emitted.event.id)
    return str(delivery.status), delivery.result, delivery.error


async def in_the_harness(
    plugin: type[Plugin], event_type: str, payload: Mapping[str, Any], **options: Any
) -> Seen:
    name = plugin.__name__.lower()
    raw = getattr(plugin, "MANIFEST", None) or manifest(name)
    attempt = options.pop("attempt", 1)
    harness = PluginHarness(plugin, manifest={**raw, "name": name}, **options)
    outcome = await harness.emit(event_type, payload, attempt=attempt)
    return outcome.status, outcome.result, outcome.error_message


class Nosy(Plugin):
    """Holds sessions:read only: a session's personal fields are not its to see."""

    MANIFEST = manifest("nosy", ["sessions:read"])

    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> Any:
        assert ctx.event is not None
        return {"keys": sorted(session), "eventKeys": sorted(ctx.event.payload)}


async def test_a_payload_shows_only_the_fields_the_plugins_permissions_allow(db: Database) -> None:
    payload = {"id": "s1", "user": "ann", "email": "ann@example.com", "ip": "192.0.2.1"}
    server = await on_the_server(Nosy, "session.created", payload)
    assert server == await in_the_harness(Nosy, "session.created", payload)
    assert "email" not in server[1]["keys"] and "ip" not in server[1]["eventKeys"]


class Picky(Plugin):
    async def on_user_created(self, ctx: PluginContext, user: UserPayload) -> None:
        raise Skip(f"{user['id']} is not mine")


async def test_a_skip_is_skipped_with_its_reason_as_the_result(db: Database) -> None:
    server = await on_the_server(Picky, "user.created", {"id": "u1"})
    assert server == await in_the_harness(Picky, "user.created", {"id": "u1"})
    assert server == ("SKIPPED", {"skipped": "u1 is not mine"}, None)


class Terse(Plugin):
    """Answers a plain string for sessions, a list for users."""

    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> Any:
        return "done"

    async def on_user_created(self, ctx: PluginContext, user: UserPayload) -> Any:
        return [1, "two"]


@pytest.mark.parametrize(
    ("event_type", "stored"), [("session.created", {"value": "done"}), ("user.created", [1, "two"])]
)
async def test_a_result_that_is_not_a_mapping_is_stored_alike(
    db: Database, event_type: str, stored: Any
) -> None:
    server = await on_the_server(Terse, event_type, {"id": "x"})
    assert server == await in_the_harness(Terse, event_type, {"id": "x"})
    assert server == ("SUCCEEDED", stored, None)


class Odd(Plugin):
    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> Any:
        return {3}  # a set: JSON cannot hold it


async def test_a_result_json_cannot_hold_is_stored_as_its_text(db: Database) -> None:
    server = await on_the_server(Odd, "session.created", {"id": "s1"})
    assert server == await in_the_harness(Odd, "session.created", {"id": "s1"})
    assert server == ("SUCCEEDED", {"value": "{3}"}, None)


class Down(Plugin):
    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        raise RuntimeError("the vendor is down")


async def test_a_delivery_is_dead_after_its_last_attempt(db: Database) -> None:
    server = await on_the_server(Down, "session.created", {"id": "s1"}, max_attempts=2)
    assert server == await in_the_harness(
        Down, "session.created", {"id": "s1"}, attempt=2, max_attempts=2
    )
    assert server == ("DEAD", None, "RuntimeError: the vendor is down")
    first = await in_the_harness(Down, "session.created", {"id": "s1"}, attempt=1, max_attempts=2)
    assert first[0] == "RETRYING"


class Leaky(Plugin):
    MANIFEST = manifest(
        "leaky",
        configSchema={
            "type": "object",
            "properties": {"token": {"type": "string", "secret": True}},
        },
    )

    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> Any:
        raise PermanentFailure(f"the vendor refused {ctx.config['token']}")


async def test_a_secret_in_an_error_is_redacted_alike(db: Database) -> None:
    token = "tok-SECRET-0123456789"
    server = await on_the_server(Leaky, "session.created", {"id": "s1"}, {"token": token})
    harness = await in_the_harness(Leaky, "session.created", {"id": "s1"}, config={"token": token})
    assert server == harness
    assert server[2] is not None and token not in server[2] and "********" in server[2]


class SlowToStart(Plugin):
    """on_load outlasts the 0.2 s its manifest gives each hook."""

    MANIFEST = manifest("slowtostart", timeoutSeconds=0.2)

    async def on_load(self, ctx: PluginContext) -> None:
        await asyncio.sleep(3600)


async def test_a_hanging_on_load_is_cut_off_at_the_manifests_timeout(db: Database) -> None:
    """The server marks the plugin FAILED with the reason; the harness raises it."""
    async with asyncio.timeout(30), running_host({"slowtostart": SlowToStart}) as host:
        assert "slowtostart" not in host.loaded
    row = await InstalledPlugin.get(name="slowtostart")
    harness = PluginHarness(SlowToStart, manifest=SlowToStart.MANIFEST)
    with pytest.raises(TimedOut) as raised:
        async with asyncio.timeout(30):
            await harness.load()
    assert (row.status, row.last_error) == ("FAILED", str(raised.value))
    assert str(raised.value) == "on_load did not finish within 0.2 s"


class Sluggish(Plugin):
    """Each delivery takes 0.5 s: past the 0.2 s its manifest gives, within the default."""

    MANIFEST = manifest("sluggish", timeoutSeconds=0.2)

    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        await asyncio.sleep(0.5)


async def test_an_event_hook_runs_under_the_manifests_timeout(db: Database) -> None:
    server = await on_the_server(Sluggish, "session.created", {"id": "s1"}, max_attempts=1)
    harness = await in_the_harness(Sluggish, "session.created", {"id": "s1"}, max_attempts=1)
    assert server == harness == ("DEAD", None, "timed out after 0.2s")
