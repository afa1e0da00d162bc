"""The limits a plugin runs under come from its installation, else its manifest, else the
server's defaults; never from the plugin's own configuration."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from models import CatalogPlugin, Delivery, InstalledPlugin
from runtime.catalog.repositories import RepositoryType, add_repository, sync_repository
from runtime.catalog.run_settings import RunLimits
from runtime.core.address_policy import AddressPolicy
from runtime.core.errors import BadUserInput
from runtime.delivery.emitter import EmitRequest
from runtime.sdk import Plugin, PluginContext
from tests.conftest import Database
from tests.runtime.hosts import manifest, running_host, until
from tests.runtime.plugin_repo import build_repository, dynamic_host

SESSION = {"id": "s1", "user_id": "ann", "template": "firefox", "state": "running"}
# Long enough to outlast a timeout of 0.1 s taken from the configuration.
HOOK_SECONDS = 0.5


class Slow(Plugin):
    """Takes HOOK_SECONDS per delivery; its config holds a `timeoutSeconds` of its own."""

    MANIFEST = manifest(
        "slow",
        configSchema={"timeoutSeconds": {"type": "number", "default": 0.1}},
        concurrency=3,
    )

    async def on_session_created(
        self, ctx: PluginContext, session: Mapping[str, Any]
    ) -> dict[str, Any]:
        await asyncio.sleep(HOOK_SECONDS)
        return {"own timeout": ctx.config.get("timeoutSeconds")}


async def test_a_config_key_named_timeout_seconds_is_the_plugins_own(db: Database) -> None:
    async with running_host({"slow": Slow}) as host:
        await InstalledPlugin.filter(name="slow").update(config={"timeoutSeconds": 0.1})
        await host.sync_plugin("slow")
        assert host.loaded["slow"].config == {"timeoutSeconds": 0.1}
        result = await host.emitter.emit(EmitRequest("session.created", SESSION))
        await until(lambda: Delivery.filter(event_id=result.event.id, status="SUCCEEDED").exists())
    delivery = await Delivery.get(event_id=result.event.id)
    assert (delivery.attempts, delivery.result) == (1, {"own timeout": 0.1})


async def test_the_manifest_sets_the_limits_unless_the_installation_overrides_them(
    db: Database,
) -> None:
    async with running_host({"slow": Slow}, default_concurrency=4) as host:
        assert host.loaded["slow"].limits == RunLimits(concurrency=3, timeout_seconds=10.0)
        await InstalledPlugin.filter(name="slow").update(timeout_seconds=0.2)
        await host.sync_plugin("slow")  # a changed override reloads the plugin
        assert host.loaded["slow"].limits == RunLimits(concurrency=3, timeout_seconds=0.2)
        result = await host.emitter.emit(EmitRequest("session.created", SESSION))
        await until(lambda: Delivery.filter(event_id=result.event.id, status="RETRYING").exists())
        assert "timed out after 0.2s" in (
            (await Delivery.get(event_id=result.event.id)).error or ""
        )
        await InstalledPlugin.filter(name="slow").update(timeout_seconds=None, concurrency=1)
        await host.sync_plugin("slow")
        assert host.loaded["slow"].limits == RunLimits(concurrency=1, timeout_seconds=10.0)


async def test_an_installers_update_validates_and_stores_the_override(db: Database) -> None:
    async with running_host({"slow": Slow}) as host:
        row = await InstalledPlugin.get(name="slow")
        with pytest.raises(BadUserInput) as raised:
            await host.installer.update(row.id, {"timeoutSeconds": 1}, None, {"concurrency": -1})
        assert [p.path for p in raised.value.fields] == ["settings.concurrency"]
        unchanged = await InstalledPlugin.get(name="slow")
        assert (unchanged.config, unchanged.concurrency) == ({}, None)

        await host.installer.update(row.id, None, None, {"concurrency": 2})
        await host.sync_plugin("slow")
        assert host.loaded["slow"].limits.concurrency == 2


async def test_an_unpacked_manifest_with_bad_settings_fails_that_plugin_not_the_start(
    db: Database, network: AddressPolicy, tmp_path: Path
) -> None:
    """Code unpacked by an earlier release, whose manifest was not checked then: one plugin
    says "4x", another -1; both are FAILED naming the field, and a third loads."""
    url = build_repository(
        tmp_path, [(name, "1.0.0", "1", {}) for name in ("letters", "negative", "fine")]
    )
    repository = await add_repository("test", url, RepositoryType.INDEX, None)
    assert not (await sync_repository(repository.id, policy=network)).errors
    data = tmp_path / "data"
    async with dynamic_host(data, network) as (_host, installer):
        for name in ("letters", "negative", "fine"):
            entry = await CatalogPlugin.get(name=name)
            await installer.install(entry.id, None, enable=True, installed_by="admin")
    for name, value in (("letters", "4x"), ("negative", -1)):
        manifest_file = data / "plugins" / name / "1.0.0" / "plugin.json"
        written = json.loads(manifest_file.read_text())
        manifest_file.write_text(json.dumps({**written, "concurrency": value}))

    async with asyncio.timeout(60), dynamic_host(data, network) as (host, _installer):
        assert sorted(host.loaded) == ["fine"]
    rows = {row.name: row for row in await InstalledPlugin.all()}
    assert rows["fine"].status == "ACTIVE"
    assert rows["letters"].status == rows["negative"].status == "FAILED"
    assert "concurrency: must be a whole number" in (rows["letters"].last_error or "")
    assert "concurrency: must be from 1 to 256" in (rows["negative"].last_error or "")
