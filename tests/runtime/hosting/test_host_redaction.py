"""What leaves a plugin's code (errors, results, skip reasons, log lines, status changes,
connection tests) is stored, published and logged without the plugin's secret values."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from models import Delivery, InstalledPlugin, PluginLog
from runtime.catalog.manifest import parse_manifest
from runtime.core.errors import BadUserInput
from runtime.core.redaction import MASK
from runtime.delivery.emitter import DELIVERY_CHANNEL, EmitRequest
from runtime.hosting.host import LOG_CHANNEL, STATUS_CHANNEL, PluginActionFailed, PluginTestFailed
from runtime.sdk import PermanentFailure, Plugin, PluginContext, RetryLater, Skip
from tests.conftest import Database
from tests.runtime.hosts import BOX, manifest, running_host, until

TOKEN = "tok-SECRET-0123456789"
NESTED = "nested-SECRET-9876543210"
HOOK = "https://hooks.example.test/hook/SECRET-path-55555?sig=SECRET-sig-77777"
SECRETS = {"token": TOKEN, "servers": [{"password": NESTED}], "hook": HOOK}
LEAKS = (TOKEN, NESTED, "SECRET-path-55555", "SECRET-sig-77777")


def assert_clean(text: str) -> None:
    for secret in LEAKS:
        assert secret not in text, f"{secret} leaked in {text!r}"


class Leaky(Plugin):
    """Puts its secrets into everything it produces."""

    MANIFEST = manifest("leaky")

    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> Any:
        way = session["way"]
        config = ctx.config
        ctx.log.warning(f"about to fail with {config['token']}", hook=config["hook"])
        if way == "retry":
            raise RetryLater(f"vendor said: bad token {config['token']}", after=3600)
        if way == "dead":
            raise PermanentFailure(f"refused {config['hook']}")
        if way == "crash":
            raise ValueError(f"password {config['servers'][0]['password']} refused")
        if way == "skip":
            raise Skip(f"skipped for {config['token']}")
        return {"echo": config["token"], "list": [config["servers"][0]["password"]], "n": 1}

    async def test_connection(self, ctx: PluginContext) -> Mapping[str, Any]:
        if ctx.config.get("raise_in_test", True):
            raise RuntimeError(f"cannot log in with {ctx.config['token']}")
        return {}


class EchoingTest(Plugin):
    MANIFEST = manifest("echoing")

    async def test_connection(self, ctx: PluginContext) -> Mapping[str, Any]:
        return {"ok": False, "message": f"HTTP 401 for {ctx.config['hook']}"}


class FailingLoad(Plugin):
    MANIFEST = manifest("failing")

    async def on_load(self, ctx: PluginContext) -> None:
        raise ValueError(f"cannot use {ctx.config['hook']} with {ctx.config['token']}")


@pytest.mark.parametrize("way", ["retry", "dead", "crash", "skip", "succeed"])
async def test_an_outcome_is_stored_and_published_without_the_plugins_secrets(
    db: Database, way: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        running_host({"leaky": Leaky}, secrets={"leaky": SECRETS}) as host,
        host.hub.subscribe(DELIVERY_CHANNEL) as inbox,
    ):
        await host.emitter.emit(EmitRequest("session.created", {"id": "s1", "way": way}))
        message = await inbox.get()
    stored = await Delivery.get(id=message.data["delivery"]["id"])
    assert stored.status in {"RETRYING", "DEAD", "SKIPPED", "SUCCEEDED"}
    for text in (
        str(stored.error),
        orjson.dumps(stored.result).decode(),
        orjson.dumps(message.data).decode(),
        caplog.text,
    ):
        assert_clean(text)
    if way == "succeed":
        assert stored.result == {"echo": MASK, "list": [MASK], "n": 1}
    if way == "dead":
        assert stored.error == f"refused https://hooks.example.test/{MASK}"


async def test_log_lines_are_stored_streamed_and_logged_without_secrets(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_host({"leaky": Leaky}, secrets={"leaky": SECRETS}) as host:
        async with host.hub.subscribe(LOG_CHANNEL) as inbox:
            await host.emitter.emit(
                EmitRequest("session.created", {"id": "s1", "way": "succeed"}, wait=True)
            )
            streamed = await inbox.get()
        await until(lambda: PluginLog.filter(plugin="leaky", level="WARNING").exists())
    [row] = await PluginLog.filter(plugin="leaky", level="WARNING")
    assert row.message == f"about to fail with {MASK}"
    assert row.data == {"hook": f"https://hooks.example.test/{MASK}"}
    assert_clean(orjson.dumps(streamed.data).decode())
    assert_clean(caplog.text)


async def test_a_load_failure_is_recorded_and_announced_without_secrets(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_host({}) as host:
        host.registry.register(FailingLoad, parse_manifest(FailingLoad.MANIFEST), "test")
        await InstalledPlugin.create(
            name="failing",
            version="1.0.0",
            enabled=True,
            config={},
            secret_config=BOX.encrypt(SECRETS),
        )
        async with host.hub.subscribe(STATUS_CHANNEL) as inbox:
            await host.sync_plugin("failing")
            changes = [(await inbox.get()).data for _ in range(2)]
    row = await InstalledPlugin.get(name="failing")
    assert row.status == "FAILED"
    assert row.last_error == (
        f"ValueError: cannot use https://hooks.example.test/{MASK} with {MASK}"
    )
    assert_clean(orjson.dumps(changes).decode())
    logs = await PluginLog.filter(plugin="failing").values_list("message", flat=True)
    assert_clean(orjson.dumps(logs).decode())
    assert_clean(caplog.text)


async def test_a_connection_test_reports_without_secrets(db: Database) -> None:
    plugins = {"leaky": Leaky, "echoing": EchoingTest}
    async with running_host(plugins, secrets={"leaky": SECRETS, "echoing": SECRETS}) as host:
        with pytest.raises(PluginTestFailed) as raised:
            await host.test_plugin("leaky")
        reported = await host.test_plugin("echoing")
    assert str(raised.value) == f"RuntimeError: cannot log in with {MASK}"
    assert reported == {"ok": False, "message": f"HTTP 401 for https://hooks.example.test/{MASK}"}


class WithActions(Plugin):
    MANIFEST = manifest("actions")

    async def on_load(self, ctx: PluginContext) -> None:
        token = ctx.config["token"]

        async def explode(given: Mapping[str, Any]) -> Any:
            raise RuntimeError(f"cannot call the vendor with {token}")

        async def refuse(given: Mapping[str, Any]) -> Any:
            raise BadUserInput(f"{token} does not allow this")

        async def echo(given: Mapping[str, Any]) -> Any:
            return {"token": token, "given": dict(given)}

        for name, handler in (("explode", explode), ("refuse", refuse), ("echo", echo)):
            ctx.api.action(name, handler)


async def test_an_action_answers_and_fails_without_the_plugins_secrets(db: Database) -> None:
    async with running_host({"actions": WithActions}, secrets={"actions": SECRETS}) as host:
        actions = host.loaded["actions"].context.api.actions
        with pytest.raises(PluginActionFailed) as unexpected:
            await host.call_action("actions", actions["explode"], {})
        with pytest.raises(BadUserInput) as refused:
            await host.call_action("actions", actions["refuse"], {})
        answer = await host.call_action("actions", actions["echo"], {"x": 1})
    assert str(unexpected.value) == f"RuntimeError: cannot call the vendor with {MASK}"
    assert refused.value.message == f"{MASK} does not allow this"
    assert answer == {"token": MASK, "given": {"x": 1}}
