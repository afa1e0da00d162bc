"""Plugin code installed from a repository while running: install, upgrade, roll back."""

from __future__ import annotations

from pathlib import Path

import pytest

from models import CatalogPlugin, InstalledPlugin
from runtime.catalog.repositories import RepositoryType, add_repository, sync_repository
from runtime.core.address_policy import AddressPolicy
from runtime.core.errors import BadUserInput, Conflict
from tests.conftest import Database
from tests.runtime.plugin_repo import build_repository, dynamic_host, ping

SCHEMA_V1 = {
    "type": "object",
    "properties": {
        "greeting": {"type": "string", "default": "hello"},
        "legacy": {"type": "string"},
    },
}
SCHEMA_V2 = {
    "type": "object",
    "properties": {
        "greeting": {"type": "string", "default": "hello"},
        "colour": {"type": "string", "default": "blue"},
    },
}


async def synced(url: str, network: AddressPolicy, name: str = "test") -> None:
    repository = await add_repository(name, url, RepositoryType.INDEX, None)
    result = await sync_repository(repository.id, policy=network)
    assert not result.errors, result.errors


async def entry(name: str) -> CatalogPlugin:
    return await CatalogPlugin.get(name=name, repository__name="test")


async def test_install_upgrade_rollback_runs_the_expected_code(
    db: Database, network: AddressPolicy, tmp_path: Path
) -> None:
    url = build_repository(tmp_path, [("greeter", "1.0.0", "1", {"configSchema": SCHEMA_V1})])
    await synced(url, network)
    data = tmp_path / "data"
    async with dynamic_host(data, network) as (host, installer):
        greeter = await entry("greeter")
        row = await installer.install(
            greeter.id, {"greeting": "hi", "legacy": "x"}, enable=True, installed_by="alice"
        )
        assert (row.version, row.status) == ("1.0.0", "ACTIVE")
        assert await ping(host) == [("greeter", "SUCCEEDED", {"version": "1", "greeting": "hi"})]

        # The repository publishes 2.0.0 while the server runs.
        build_repository(tmp_path, [("greeter", "2.0.0", "2", {"configSchema": SCHEMA_V2})])
        assert (await sync_repository(greeter.repository_id, policy=network)).updated == 1
        row = await installer.upgrade(row.id)  # the newest
        assert (row.version, row.previous_version) == ("2.0.0", "1.0.0")
        # Removed keys dropped, new defaults merged, the admin's values kept.
        assert row.config == {"greeting": "hi", "colour": "blue"}
        assert await ping(host) == [("greeter", "SUCCEEDED", {"version": "2", "greeting": "hi"})]
        assert sorted(p.name for p in (data / "plugins" / "greeter").iterdir()) == [
            "1.0.0",
            "2.0.0",
        ]

        row = await installer.rollback(row.id)
        assert (row.version, row.previous_version) == ("1.0.0", "2.0.0")
        assert row.config == {"greeting": "hi", "legacy": "x"}
        assert await ping(host) == [("greeter", "SUCCEEDED", {"version": "1", "greeting": "hi"})]
        assert host.loaded["greeter"].version == "1.0.0"

        # Upgrading again to a named version; the files of versions no longer current or
        # previous go.
        row = await installer.upgrade(row.id, "2.0.0")
        assert await ping(host) == [("greeter", "SUCCEEDED", {"version": "2", "greeting": "hi"})]

        await installer.uninstall(row.id)
        assert not (data / "plugins" / "greeter").exists()
        assert host.registry.get("greeter") is None


async def test_invalid_migrated_config_refuses_the_upgrade(
    db: Database, network: AddressPolicy, tmp_path: Path
) -> None:
    strict = {
        "type": "object",
        "properties": {"token": {"type": "string", "minLength": 5}},
        "required": ["token"],
    }
    url = build_repository(
        tmp_path,
        [
            ("greeter", "1.0.0", "1", {}),
            ("greeter", "2.0.0", "2", {"configSchema": strict}),
        ],
    )
    await synced(url, network)
    async with dynamic_host(tmp_path / "data", network) as (host, installer):
        greeter = await entry("greeter")
        await CatalogPlugin.filter(id=greeter.id).update(version="1.0.0")
        row = await installer.install(greeter.id, None, enable=True, installed_by="alice")
        with pytest.raises(BadUserInput, match="token"):
            await installer.upgrade(row.id)
        await row.refresh_from_db()
        assert (row.version, row.previous_version) == ("1.0.0", None)
        assert await ping(host) == [("greeter", "SUCCEEDED", {"version": "1", "greeting": None})]
        assert not (tmp_path / "data" / "plugins" / "greeter" / "2.0.0").exists()
        with pytest.raises(Conflict, match="no previous version"):
            await installer.rollback(row.id)


async def test_a_tampered_archive_is_refused_and_nothing_is_installed(
    db: Database, network: AddressPolicy, tmp_path: Path
) -> None:
    url = build_repository(tmp_path, [("greeter", "1.0.0", "1", {})])
    archive = tmp_path / "repo" / "greeter-1.0.0.tar.gz"
    await synced(url, network)
    archive.write_bytes(archive.read_bytes() + b"tampered")
    async with dynamic_host(tmp_path / "data", network) as (_host, installer):
        greeter = await entry("greeter")
        with pytest.raises(BadUserInput, match="sha256"):
            await installer.install(greeter.id, None, enable=True, installed_by="alice")
        assert not await InstalledPlugin.exists(name="greeter")
        assert not (tmp_path / "data" / "plugins" / "greeter").exists()


async def test_another_replica_loads_the_same_code_into_its_own_data_dir(
    db: Database, network: AddressPolicy, tmp_path: Path
) -> None:
    url = build_repository(tmp_path, [("greeter", "1.0.0", "1", {})])
    await synced(url, network)
    async with dynamic_host(tmp_path / "one", network) as (_one, installer):
        greeter = await entry("greeter")
        await installer.install(greeter.id, None, enable=True, installed_by="alice")
    # A second replica (here: a later start) downloads what it lacks when it syncs the plugin.
    async with dynamic_host(tmp_path / "two", network) as (two, _installer):
        assert two.loaded["greeter"].status == "ACTIVE"
        assert (tmp_path / "two" / "plugins" / "greeter" / "1.0.0" / "marker.py").exists()
        assert await ping(two) == [("greeter", "SUCCEEDED", {"version": "1", "greeting": None})]


async def test_missing_python_requirements_are_reported(
    db: Database, network: AddressPolicy, tmp_path: Path
) -> None:
    url = build_repository(
        tmp_path,
        [
            (
                "greeter",
                "1.0.0",
                "1",
                {"requirements": ["packaging>=1", "surely-not-installed-dist>=2"]},
            )
        ],
    )
    await synced(url, network)
    async with dynamic_host(tmp_path / "data", network) as (_host, installer):
        greeter = await entry("greeter")
        with pytest.raises(BadUserInput, match="surely-not-installed-dist>=2 is not installed"):
            await installer.install(greeter.id, None, enable=True, installed_by="alice")
        assert not await InstalledPlugin.exists(name="greeter")


# --- dependencies ------------------------------------------------------------------------------


async def dependency_repository(tmp_path: Path, network: AddressPolicy) -> None:
    url = build_repository(
        tmp_path,
        [
            ("mailer", "1.0.0", "m1", {}),
            ("mailer", "1.5.0", "m15", {}),
            ("mailer", "2.0.0", "m2", {}),
            ("greeter", "1.0.0", "1", {"dependencies": {"mailer": ">=1.2,<2"}}),
        ],
    )
    await synced(url, network)


async def test_missing_dependencies_are_named(
    db: Database, network: AddressPolicy, tmp_path: Path
) -> None:
    await dependency_repository(tmp_path, network)
    async with dynamic_host(tmp_path / "data", network) as (_host, installer):
        greeter = await entry("greeter")
        with pytest.raises(BadUserInput, match=r"mailer >=1.2,<2 \(not installed\)"):
            await installer.install(greeter.id, None, enable=True, installed_by="alice")
        mailer = await entry("mailer")
        await installer.install(mailer.id, None, enable=True, installed_by="alice")  # 2.0.0
        with pytest.raises(Conflict, match=r"mailer >=1.2,<2 \(2.0.0 is installed\)"):
            await installer.install(greeter.id, None, enable=True, installed_by="alice")
        assert not await InstalledPlugin.exists(name="greeter")
        assert not (tmp_path / "data" / "plugins" / "greeter").exists()


async def test_install_dependencies_and_refuse_removing_them(
    db: Database, network: AddressPolicy, tmp_path: Path
) -> None:
    await dependency_repository(tmp_path, network)
    async with dynamic_host(tmp_path / "data", network) as (host, installer):
        greeter = await entry("greeter")
        row = await installer.install(
            greeter.id, None, enable=True, installed_by="alice", install_dependencies=True
        )
        mailer = await InstalledPlugin.get(name="mailer")
        assert (mailer.version, mailer.enabled, mailer.status) == ("1.5.0", True, "ACTIVE")
        assert row.status == "ACTIVE"
        results = await ping(host)
        assert [(plugin, result["version"]) for plugin, _, result in results] == [
            ("greeter", "1"),
            ("mailer", "m15"),
        ]
        with pytest.raises(Conflict, match="depend on it: greeter"):
            await installer.uninstall(mailer.id)
        with pytest.raises(Conflict, match="depend on it: greeter"):
            await installer.update(mailer.id, None, False)
        with pytest.raises(Conflict, match=r"greeter \(mailer >=1.2,<2\)"):
            await installer.upgrade(mailer.id)  # 2.0.0 does not fit greeter
        # Disabling the dependent first frees the dependency to be disabled; enabling the
        # dependent enables its dependency first.
        await installer.update(row.id, None, False)
        await installer.update(mailer.id, None, False)
        await installer.update(row.id, None, True)
        assert (await InstalledPlugin.get(name="mailer")).enabled
        assert host.loaded["mailer"].status == "ACTIVE"
        await installer.uninstall(row.id)
        await installer.uninstall(mailer.id)
        assert not (tmp_path / "data" / "plugins").exists() or not any(
            (tmp_path / "data" / "plugins").iterdir()
        )
