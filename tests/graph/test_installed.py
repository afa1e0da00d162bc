"""Installing, configuring, switching and uninstalling plugins."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from models import CatalogPlugin, InstalledPlugin
from runtime.catalog.config_schema import MASK
from runtime.core.auth import Role
from runtime.sdk import Plugin, PluginContext
from tests.graph.conftest import Catalog, Execute, InstallPlugins

HOOK = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXX"
FIELDS = "id name version enabled status config installedBy catalogPlugin { id name }"

INSTALL = f"""mutation($id: ID!, $config: JSON, $enable: Boolean) {{
  installPlugin(catalogPluginId: $id, config: $config, enable: $enable) {{ {FIELDS} }} }}"""

UPDATE = f"""mutation($id: ID!, $config: JSON, $enabled: Boolean) {{
  updatePlugin(id: $id, config: $config, enabled: $enabled) {{ {FIELDS} }} }}"""


@pytest.fixture
async def slack(make_plugin: Catalog, slack_manifest: dict[str, Any]) -> CatalogPlugin:
    return await make_plugin(
        "streamspace-slack", manifest=slack_manifest, tags=slack_manifest["tags"]
    )


async def install(gql: Execute, plugin: CatalogPlugin, config: Any, enable: bool = False) -> Any:
    return await gql(INSTALL, {"id": str(plugin.id), "config": config, "enable": enable})


async def installed(gql: Execute, plugin: CatalogPlugin, config: Any) -> dict[str, Any]:
    data: dict[str, Any] = (await install(gql, plugin, config)).ok()["installPlugin"]
    return data


async def test_install_merges_the_defaults(gql: Execute, slack: CatalogPlugin) -> None:
    plugin = await installed(gql, slack, {"webhookUrl": HOOK, "channel": "#dev-alerts"})
    assert plugin["name"] == "streamspace-slack"
    assert plugin["version"] == "1.0.0"
    assert plugin["enabled"] is False
    assert plugin["status"] == "INSTALLED"
    assert plugin["installedBy"] == "alice"
    assert plugin["catalogPlugin"] == {"id": str(slack.id), "name": "streamspace-slack"}
    assert plugin["config"] == {
        "webhookUrl": MASK,
        "channel": "#dev-alerts",
        "username": "StreamSpace Bot",
        "iconEmoji": ":computer:",
        "notifyOnSessionCreated": True,
        "notifyOnSessionHibernated": False,
        "notifyOnUserCreated": True,
        "includeDetails": False,
        "rateLimit": 20,
    }


async def test_install_counts_on_the_catalog_entry(gql: Execute, slack: CatalogPlugin) -> None:
    await installed(gql, slack, {"webhookUrl": HOOK})
    assert (await CatalogPlugin.get(id=slack.id)).install_count == 1


async def test_invalid_config_names_every_bad_path_and_writes_nothing(
    gql: Execute, slack: CatalogPlugin
) -> None:
    config = {"channel": 7, "rateLimit": 500, "colour": "red", "webhookUrl": "not a url"}
    result = await install(gql, slack, config)
    assert result.codes == ["BAD_USER_INPUT"]
    paths = sorted(f["path"] for f in result.errors[0]["extensions"]["fields"])
    assert paths == ["channel", "colour", "rateLimit", "webhookUrl"]
    assert await InstalledPlugin.all().count() == 0
    assert (await CatalogPlugin.get(id=slack.id)).install_count == 0


async def test_a_missing_required_setting_is_named(gql: Execute, slack: CatalogPlugin) -> None:
    result = await install(gql, slack, {})
    assert result.codes == ["BAD_USER_INPUT"]
    assert [f["path"] for f in result.errors[0]["extensions"]["fields"]] == ["webhookUrl"]


async def test_config_that_is_not_an_object_is_bad_user_input(
    gql: Execute, slack: CatalogPlugin
) -> None:
    assert (await install(gql, slack, ["webhookUrl"])).codes == ["BAD_USER_INPUT"]


async def test_installing_twice_is_a_conflict(gql: Execute, slack: CatalogPlugin) -> None:
    await installed(gql, slack, {"webhookUrl": HOOK})
    assert (await install(gql, slack, {"webhookUrl": HOOK})).codes == ["CONFLICT"]
    assert await InstalledPlugin.all().count() == 1


async def test_installing_an_unknown_plugin_is_not_found(gql: Execute) -> None:
    result = await gql(INSTALL, {"id": "9999", "config": {}})
    assert result.codes == ["NOT_FOUND"]


async def test_secrets_are_stored_encrypted_and_returned_masked(
    gql: Execute, slack: CatalogPlugin
) -> None:
    plugin = await installed(gql, slack, {"webhookUrl": HOOK})
    assert plugin["config"]["webhookUrl"] == MASK
    rows = await InstalledPlugin.filter(id=int(plugin["id"])).values()
    assert HOOK not in repr(rows)
    assert "hooks.slack.com" not in repr(rows)
    assert rows[0]["secret_config"]


async def test_update_merges_config_and_keeps_secrets_left_out(
    gql: Execute, slack: CatalogPlugin, services: Any
) -> None:
    plugin = await installed(gql, slack, {"webhookUrl": HOOK, "channel": "#dev"})
    result = await gql(UPDATE, {"id": plugin["id"], "config": {"rateLimit": 50}})
    config = result.ok()["updatePlugin"]["config"]
    assert config["rateLimit"] == 50
    assert config["channel"] == "#dev"
    assert config["webhookUrl"] == MASK
    row = await InstalledPlugin.get(id=int(plugin["id"]))
    assert services.installer.full_config(row)["webhookUrl"] == HOOK


async def test_update_with_the_mask_keeps_the_secret(
    gql: Execute, slack: CatalogPlugin, services: Any
) -> None:
    # A form shows the mask and sends back what it shows.
    plugin = await installed(gql, slack, {"webhookUrl": HOOK})
    result = await gql(UPDATE, {"id": plugin["id"], "config": {"webhookUrl": MASK}})
    assert result.ok()
    row = await InstalledPlugin.get(id=int(plugin["id"]))
    assert services.installer.full_config(row)["webhookUrl"] == HOOK


async def test_update_replaces_a_secret_that_is_given(
    gql: Execute, slack: CatalogPlugin, services: Any
) -> None:
    plugin = await installed(gql, slack, {"webhookUrl": HOOK})
    other = "https://hooks.slack.com/services/T1/B1/other"
    assert (await gql(UPDATE, {"id": plugin["id"], "config": {"webhookUrl": other}})).ok()
    row = await InstalledPlugin.get(id=int(plugin["id"]))
    assert services.installer.full_config(row)["webhookUrl"] == other


async def test_update_null_returns_a_key_to_its_default(gql: Execute, slack: CatalogPlugin) -> None:
    plugin = await installed(gql, slack, {"webhookUrl": HOOK, "channel": "#dev"})
    result = await gql(UPDATE, {"id": plugin["id"], "config": {"channel": None}})
    assert result.ok()["updatePlugin"]["config"]["channel"] == "#general"


async def test_invalid_update_changes_nothing(gql: Execute, slack: CatalogPlugin) -> None:
    plugin = await installed(gql, slack, {"webhookUrl": HOOK})
    result = await gql(UPDATE, {"id": plugin["id"], "config": {"rateLimit": 0}, "enabled": True})
    assert result.codes == ["BAD_USER_INPUT"]
    row = await InstalledPlugin.get(id=int(plugin["id"]))
    assert row.config["rateLimit"] == 20
    assert row.enabled is False


async def test_update_toggles_enabled(gql: Execute, slack: CatalogPlugin) -> None:
    plugin = await installed(gql, slack, {"webhookUrl": HOOK})
    on = (await gql(UPDATE, {"id": plugin["id"], "enabled": True})).ok()["updatePlugin"]
    assert on["enabled"] is True
    off = (await gql(UPDATE, {"id": plugin["id"], "enabled": False})).ok()["updatePlugin"]
    assert (off["enabled"], off["status"]) == (False, "DISABLED")


async def test_enable_and_disable(gql: Execute, slack: CatalogPlugin) -> None:
    plugin = await installed(gql, slack, {"webhookUrl": HOOK})
    query = "mutation($id: ID!) { %s(id: $id) { enabled status } }"
    enabled = (await gql(query % "enablePlugin", {"id": plugin["id"]})).ok()
    assert enabled["enablePlugin"]["enabled"] is True
    disabled = (await gql(query % "disablePlugin", {"id": plugin["id"]})).ok()
    assert disabled["disablePlugin"] == {"enabled": False, "status": "DISABLED"}


async def test_install_enabled(gql: Execute, slack: CatalogPlugin) -> None:
    plugin = (await install(gql, slack, {"webhookUrl": HOOK}, enable=True)).ok()
    assert plugin["installPlugin"]["enabled"] is True


async def test_installed_plugins_filter_by_enabled(gql: Execute, make_plugin: Catalog) -> None:
    for name, enable in [("alpha", True), ("beta", False), ("gamma", True)]:
        entry = await make_plugin(name)
        assert (await install(gql, entry, None, enable=enable)).ok()
    query = "query($enabled: Boolean) { installedPlugins(enabled: $enabled) { name } }"

    async def listed(enabled: bool | None) -> list[str]:
        data = (await gql(query, {"enabled": enabled}, role=Role.USER)).ok()
        return [plugin["name"] for plugin in data["installedPlugins"]]

    assert await listed(None) == ["alpha", "beta", "gamma"]
    assert await listed(True) == ["alpha", "gamma"]
    assert await listed(False) == ["beta"]


async def test_installed_plugin_by_id_or_name(gql: Execute, slack: CatalogPlugin) -> None:
    plugin = await installed(gql, slack, {"webhookUrl": HOOK})
    query = "query($id: ID, $name: String) { installedPlugin(id: $id, name: $name) { id name } }"
    by_id = (await gql(query, {"id": plugin["id"]}, role=Role.USER)).ok()
    by_name = (await gql(query, {"name": "streamspace-slack"}, role=Role.USER)).ok()
    assert by_id == by_name == {"installedPlugin": {"id": plugin["id"], "name": plugin["name"]}}
    missing = (await gql(query, {"name": "nothing"}, role=Role.USER)).ok()
    assert missing == {"installedPlugin": None}
    assert (await gql(query, {}, role=Role.USER)).codes == ["BAD_USER_INPUT"]


async def test_uninstall(gql: Execute, slack: CatalogPlugin) -> None:
    plugin = await installed(gql, slack, {"webhookUrl": HOOK})
    query = "mutation($id: ID!) { uninstallPlugin(id: $id) }"
    assert (await gql(query, {"id": plugin["id"]})).ok() == {"uninstallPlugin": plugin["id"]}
    assert await InstalledPlugin.all().count() == 0
    assert (await gql(query, {"id": plugin["id"]})).codes == ["NOT_FOUND"]
    # Uninstalled, it may be installed again.
    assert (await install(gql, slack, {"webhookUrl": HOOK})).ok()


@pytest.mark.parametrize("marker", [{"writeOnly": True}, {"format": "password"}])
async def test_standard_json_schema_secrets(
    gql: Execute, make_plugin: Catalog, marker: dict[str, Any]
) -> None:
    manifest = {
        "name": "streamspace-smtp",
        "version": "1.0.0",
        "configSchema": {
            "type": "object",
            "properties": {"host": {"type": "string"}, "password": {"type": "string", **marker}},
            "required": ["host", "password"],
        },
    }
    entry = await make_plugin("streamspace-smtp", manifest=manifest)
    plugin = await installed(gql, entry, {"host": "mail.example", "password": "hunter2"})
    assert plugin["config"] == {"host": "mail.example", "password": MASK}
    rows = await InstalledPlugin.filter(id=int(plugin["id"])).values()
    assert "hunter2" not in repr(rows)


async def test_catalog_installed_field_reflects_installs(
    gql: Execute, slack: CatalogPlugin
) -> None:
    query = "{ catalog { edges { node { name installed { name enabled } } } } }"
    before = (await gql(query, role=Role.USER)).ok()
    assert before["catalog"]["edges"][0]["node"]["installed"] is None
    plugin = await installed(gql, slack, {"webhookUrl": HOOK})
    after = (await gql(query, role=Role.USER)).ok()
    assert after["catalog"]["edges"][0]["node"]["installed"] == {
        "name": "streamspace-slack",
        "enabled": False,
    }
    await gql("mutation($id: ID!) { uninstallPlugin(id: $id) }", {"id": plugin["id"]})
    gone = (await gql(query, role=Role.USER)).ok()
    assert gone["catalog"]["edges"][0]["node"]["installed"] is None


NESTED_MANIFEST: dict[str, Any] = {
    "name": "streamspace-relay",
    "version": "2.0.0",
    "configSchema": {
        "type": "object",
        "properties": {
            "auth": {
                "type": "object",
                "properties": {
                    "user": {"type": "string"},
                    "token": {"type": "string", "writeOnly": True},
                },
            },
            "servers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "url": {"type": "string"},
                        "password": {"type": "string", "format": "password"},
                    },
                    "required": ["url"],
                },
            },
        },
    },
}
NESTED_CONFIG = {
    "auth": {"user": "ann", "token": "tok-nested-SECRET"},
    "servers": [
        {"url": "https://a.example", "password": "pw-a-SECRET"},
        {"url": "https://b.example", "password": "pw-b-SECRET"},
    ],
}
NESTED_SECRETS = ("tok-nested-SECRET", "pw-a-SECRET", "pw-b-SECRET")


@pytest.fixture
async def relay(make_plugin: Catalog) -> CatalogPlugin:
    return await make_plugin(
        "streamspace-relay", manifest=NESTED_MANIFEST, versions=("1.0.0", "2.0.0")
    )


async def stored_text(plugin_id: str) -> str:
    return repr(await InstalledPlugin.filter(id=int(plugin_id)).values())


async def test_nested_secrets_are_stored_encrypted_and_returned_masked(
    gql: Execute, relay: CatalogPlugin, services: Any
) -> None:
    plugin = await installed(gql, relay, NESTED_CONFIG)
    assert plugin["config"] == {
        "auth": {"user": "ann", "token": MASK},
        "servers": [
            {"url": "https://a.example", "password": MASK},
            {"url": "https://b.example", "password": MASK},
        ],
    }
    text = await stored_text(plugin["id"])
    assert all(secret not in text for secret in NESTED_SECRETS)
    row = await InstalledPlugin.get(id=int(plugin["id"]))
    assert services.installer.full_config(row) == NESTED_CONFIG


async def test_a_nested_secret_sent_masked_or_left_out_keeps_its_value(
    gql: Execute, relay: CatalogPlugin, services: Any
) -> None:
    plugin = await installed(gql, relay, NESTED_CONFIG)
    change = {
        "auth": {"user": "bob"},
        "servers": [
            {"url": "https://a2.example", "password": MASK},
            {"url": "https://b.example", "password": "pw-b-new"},
        ],
    }
    result = await gql(UPDATE, {"id": plugin["id"], "config": change})
    assert result.ok()["updatePlugin"]["config"]["auth"] == {"user": "bob", "token": MASK}
    row = await InstalledPlugin.get(id=int(plugin["id"]))
    assert services.installer.full_config(row) == {
        "auth": {"user": "bob", "token": "tok-nested-SECRET"},
        "servers": [
            {"url": "https://a2.example", "password": "pw-a-SECRET"},
            {"url": "https://b.example", "password": "pw-b-new"},
        ],
    }


async def test_a_mask_that_no_longer_names_a_stored_secret_is_refused_and_changes_nothing(
    gql: Execute, relay: CatalogPlugin, services: Any
) -> None:
    plugin = await installed(gql, relay, NESTED_CONFIG)
    # The first server removed: position 0 now names the second, whose password is not
    # the one stored at position 0.
    change = {"servers": [{"url": "https://b.example", "password": MASK}]}
    result = await gql(UPDATE, {"id": plugin["id"], "config": change})
    assert result.codes == ["BAD_USER_INPUT"]
    assert [f["path"] for f in result.errors[0]["extensions"]["fields"]] == ["servers.0.password"]
    row = await InstalledPlugin.get(id=int(plugin["id"]))
    assert services.installer.full_config(row) == NESTED_CONFIG


async def test_installing_with_the_mask_as_a_secret_is_refused(
    gql: Execute, relay: CatalogPlugin
) -> None:
    result = await install(gql, relay, {"auth": {"user": "ann", "token": MASK}})
    assert result.codes == ["BAD_USER_INPUT"]
    assert [f["path"] for f in result.errors[0]["extensions"]["fields"]] == ["auth.token"]
    assert await InstalledPlugin.all().count() == 0


async def test_upgrade_and_rollback_keep_nested_secrets_encrypted(
    gql: Execute, relay: CatalogPlugin, services: Any
) -> None:
    row = await services.installer._install(
        relay,
        "1.0.0",
        NESTED_CONFIG,
        enable=False,
        installed_by="alice",
        install_dependencies=False,
        chain=(),
    )
    upgraded = await services.installer.upgrade(row.id, "2.0.0")
    assert upgraded.version == "2.0.0"
    assert services.installer.full_config(upgraded) == NESTED_CONFIG
    rolled = await services.installer.rollback(row.id)
    assert rolled.version == "1.0.0"
    assert services.installer.full_config(rolled) == NESTED_CONFIG
    text = await stored_text(str(row.id))
    assert all(secret not in text for secret in NESTED_SECRETS)


class Served(Plugin):
    async def on_load(self, ctx: PluginContext) -> None:
        async def answer(request: Request) -> JSONResponse:
            return JSONResponse({})

        ctx.api.route("/count", answer)
        ctx.api.route("/mine", answer, ["GET", "POST"], role="user")
        ctx.api.route("/status", answer, public=True)


async def test_an_installed_plugin_shows_its_routes_and_which_are_public(
    gql: Execute, install_test_plugins: InstallPlugins
) -> None:
    await install_test_plugins({"served": Served})
    query = """{ installedPlugin(name: "served") { routes { path url methods role public } } }"""
    routes = (await gql(query, role=Role.USER)).ok()["installedPlugin"]["routes"]
    assert routes == [
        {
            "path": "/count",
            "url": "/plugins/served/count",
            "methods": ["GET"],
            "role": "admin",
            "public": False,
        },
        {
            "path": "/mine",
            "url": "/plugins/served/mine",
            "methods": ["GET", "POST"],
            "role": "user",
            "public": False,
        },
        {
            "path": "/status",
            "url": "/plugins/served/status",
            "methods": ["GET"],
            "role": None,
            "public": True,
        },
    ]
    row = await InstalledPlugin.get(name="served")
    disable = "mutation($id: ID!) { disablePlugin(id: $id) { status } }"
    (await gql(disable, {"id": str(row.id)})).ok()
    after = (await gql(query)).ok()["installedPlugin"]["routes"]
    assert after == []


# --- run settings -----------------------------------------------------------------------------

INSTALL_WITH_SETTINGS = """mutation($id: ID!, $config: JSON, $settings: PluginSettingsInput) {
  installPlugin(catalogPluginId: $id, config: $config, settings: $settings) {
    id settings { concurrency timeoutSeconds } } }"""

UPDATE_SETTINGS = """mutation($id: ID!, $settings: PluginSettingsInput) {
  updatePlugin(id: $id, settings: $settings) {
    settings { concurrency timeoutSeconds } runningSettings { concurrency timeoutSeconds } } }"""


async def test_run_settings_out_of_bounds_are_refused_naming_each_and_nothing_is_installed(
    gql: Execute, slack: CatalogPlugin
) -> None:
    settings = {"concurrency": 0, "timeoutSeconds": 601}
    result = await gql(
        INSTALL_WITH_SETTINGS,
        {"id": str(slack.id), "config": {"webhookUrl": HOOK}, "settings": settings},
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["fields"] == [
        {"path": "settings.concurrency", "message": "must be from 1 to 256"},
        {"path": "settings.timeoutSeconds", "message": "must be from 0.1 to 600 seconds"},
    ]
    assert await InstalledPlugin.all().count() == 0
    assert (await CatalogPlugin.get(id=slack.id)).install_count == 0


async def test_run_settings_are_overridden_at_install_and_update_and_null_clears_one(
    gql: Execute, slack: CatalogPlugin
) -> None:
    installed = (
        await gql(
            INSTALL_WITH_SETTINGS,
            {"id": str(slack.id), "config": {"webhookUrl": HOOK}, "settings": {"concurrency": 2}},
        )
    ).ok()["installPlugin"]
    assert installed["settings"] == {"concurrency": 2, "timeoutSeconds": None}

    async def update(settings: dict[str, Any]) -> Any:
        return await gql(UPDATE_SETTINGS, {"id": installed["id"], "settings": settings})

    changed = (await update({"timeoutSeconds": 30})).ok()["updatePlugin"]
    assert changed["settings"] == {"concurrency": 2, "timeoutSeconds": 30.0}
    cleared = (await update({"concurrency": None})).ok()["updatePlugin"]
    assert cleared["settings"] == {"concurrency": None, "timeoutSeconds": 30.0}
    refused = await update({"timeoutSeconds": 0.01})
    assert refused.codes == ["BAD_USER_INPUT"]
    assert refused.errors[0]["extensions"]["fields"][0]["path"] == "settings.timeoutSeconds"
    row = await InstalledPlugin.get(id=int(installed["id"]))
    assert (row.concurrency, row.timeout_seconds) == (None, 30.0)


class Tuned(Plugin):
    MANIFEST = {
        "name": "tuned",
        "version": "1.0.0",
        "configSchema": {"timeoutSeconds": {"type": "number", "default": 1}},
        "concurrency": 3,
    }


async def test_the_settings_in_force_follow_the_override_not_the_plugins_config(
    gql: Execute, install_test_plugins: InstallPlugins
) -> None:
    rows = await install_test_plugins({"tuned": Tuned})
    query = '{ installedPlugin(name: "tuned") { runningSettings { concurrency timeoutSeconds } } }'
    running = (await gql(query)).ok()["installedPlugin"]["runningSettings"]
    assert running == {"concurrency": 3, "timeoutSeconds": 10.0}

    plugin_id = str(rows["tuned"].id)
    (await gql(UPDATE, {"id": plugin_id, "config": {"timeoutSeconds": 2}})).ok()
    running = (await gql(query)).ok()["installedPlugin"]["runningSettings"]
    assert running == {"concurrency": 3, "timeoutSeconds": 10.0}

    updated = await gql(UPDATE_SETTINGS, {"id": plugin_id, "settings": {"timeoutSeconds": 2.5}})
    assert updated.ok()["updatePlugin"]["runningSettings"] == {
        "concurrency": 3,
        "timeoutSeconds": 2.5,
    }
