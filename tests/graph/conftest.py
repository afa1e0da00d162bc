"""Running GraphQL operations in-process, as a caller holding a given role."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pytest
from starlette.requests import Request

from graph.app import GraphQLApp, build_services
from graph.context import Context, Services
from graph.schema import build_schema
from models import CatalogPlugin, CatalogTag, PluginStats, PluginVersion, Repository
from runtime.catalog.browse import search_text
from runtime.core.address_policy import Network
from runtime.core.auth import Role
from runtime.core.settings import Settings
from tests.conftest import FAST_PATHS, Database

# The schema a server builds with the fast paths as STREAMSPACE_FAST_PATHS says.
schema = build_schema(fast_paths=FAST_PATHS)


@dataclass
class Result:
    data: dict[str, Any] | None
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def codes(self) -> list[str | None]:
        return [error.get("extensions", {}).get("code") for error in self.errors]

    def ok(self) -> dict[str, Any]:
        assert not self.errors, self.errors
        assert self.data is not None
        return self.data


class Execute(Protocol):
    def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        role: Role | None = Role.ADMIN,
        subject: str = "alice",
    ) -> Awaitable[Result]: ...


@pytest.fixture
def allowed_networks() -> tuple[Network, ...]:
    """The networks the server may reach although not public: none, as a server's default. A
    test reaching its stand-ins on 127.0.0.1 overrides this with `local_network()`'s."""
    return ()


@asynccontextmanager
async def started_services(
    data_dir: Path, allowed_networks: tuple[Network, ...] = (), *, fast_paths: bool = FAST_PATHS
) -> AsyncIterator[Services]:
    """The services of a server, with its plugin host started on the current database."""
    settings = Settings(
        data_dir=data_dir,
        database_url="unused",
        broadcast_url="memory://",
        jwt_secret="test-jwt-secret-0123456789-0123456789",
        secret_key="test-secret-key",
        jwt_secret_generated=False,
        allowed_networks=allowed_networks,
        fast_paths=fast_paths,
    )
    built = build_services(settings)
    await built.host.hub.connect()
    await built.host.start()
    try:
        yield built
    finally:
        await built.host.stop()
        await built.host.hub.disconnect()


@pytest.fixture
async def services(
    db: Database, tmp_path: Path, allowed_networks: tuple[Network, ...]
) -> AsyncIterator[Services]:
    """The services of a server, with its plugin host started on the test's database."""
    async with started_services(tmp_path, allowed_networks) as built:
        yield built


@pytest.fixture
def gql(db: Database, services: Services) -> Execute:
    """Execute an operation as `subject` holding `role` (None: no token at all)."""

    async def execute(
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        role: Role | None = Role.ADMIN,
        subject: str = "alice",
    ) -> Result:
        context = Context(services=services, request=None, response=None)
        if role is not None:
            token = services.tokens.issue(role, subject)
            context.authenticate(services.tokens.verify(token))
        result = await schema.execute(query, variable_values=variables, context_value=context)
        errors = [dict(error.formatted) for error in result.errors or []]
        return Result(data=result.data, errors=errors)

    return execute


# --- Catalog data -----------------------------------------------------------------------------

SEED = Path("/work/shared/seeds/000_995d5c3f351cd671.txt")


def seed_slack_manifest() -> dict[str, Any]:
    """The seed's Slack plugin.json, with webhookUrl marked secret as the server expects."""
    text = SEED.read_text(encoding="utf-8")
    block = text.split("**Plugin Manifest**", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    manifest: dict[str, Any] = json.loads(block)
    manifest["configSchema"]["webhookUrl"]["secret"] = True
    return manifest


@pytest.fixture
def slack_manifest() -> dict[str, Any]:
    return seed_slack_manifest()


class Catalog(Protocol):
    def __call__(
        self,
        name: str,
        *,
        display_name: str | None = None,
        description: str = "",
        category: str = "notifications",
        plugin_type: str = "extension",
        tags: Sequence[str] = (),
        install_count: int = 0,
        avg_rating: float = 0.0,
        rating_count: int = 0,
        available: bool = True,
        created_at: datetime | None = None,
        versions: Sequence[str] = ("1.0.0",),
        manifest: dict[str, Any] | None = None,
        repository: Repository | None = None,
    ) -> Awaitable[CatalogPlugin]: ...


@pytest.fixture
def make_plugin(db: Database) -> Catalog:
    """Create a catalog entry (with its tags, versions and stats rows) in the builtin repository
    unless another is given."""

    async def create(
        name: str,
        *,
        display_name: str | None = None,
        description: str = "",
        category: str = "notifications",
        plugin_type: str = "extension",
        tags: Sequence[str] = (),
        install_count: int = 0,
        avg_rating: float = 0.0,
        rating_count: int = 0,
        available: bool = True,
        created_at: datetime | None = None,
        versions: Sequence[str] = ("1.0.0",),
        manifest: dict[str, Any] | None = None,
        repository: Repository | None = None,
    ) -> CatalogPlugin:
        repository = repository or await Repository.get(name="builtin")
        display = display_name or name.replace("-", " ").title()
        manifest = manifest or {"name": name, "version": versions[-1], "type": plugin_type}
        plugin = await CatalogPlugin.create(
            repository_id=repository.id,
            name=name,
            version=versions[-1],
            display_name=display,
            description=description,
            category=category,
            plugin_type=plugin_type,
            manifest=manifest,
            tags=list(tags),
            install_count=install_count,
            avg_rating=avg_rating,
            rating_count=rating_count,
            available=available,
            search_text=search_text(name, display, description, tags),
        )
        if created_at is not None:
            # auto_now_add ignores a given value; NEWEST needs distinct, known creation times.
            await CatalogPlugin.filter(id=plugin.id).update(created_at=created_at)
            plugin.created_at = created_at
        await CatalogTag.bulk_create([CatalogTag(plugin_id=plugin.id, tag=t) for t in set(tags)])
        await PluginVersion.bulk_create(
            [
                PluginVersion(plugin_id=plugin.id, version=v, manifest={**manifest, "version": v})
                for v in versions
            ]
        )
        await PluginStats.create(plugin_id=plugin.id)
        return plugin

    return create


# --- Raw Authorization headers ----------------------------------------------------------------


class ExecuteWithHeader(Protocol):
    def __call__(self, query: str, authorization: str | None) -> Awaitable[Result]: ...


@pytest.fixture
def gql_header(db: Database, services: Services) -> ExecuteWithHeader:
    """Execute an operation with the context the HTTP app builds from an Authorization header."""
    app = GraphQLApp(services)

    async def execute(query: str, authorization: str | None) -> Result:
        headers = [(b"authorization", authorization.encode())] if authorization else []
        scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": headers}
        request = Request(scope)
        context = await app.get_context(request)
        result = await schema.execute(query, context_value=context)
        errors = [dict(error.formatted) for error in result.errors or []]
        return Result(data=result.data, errors=errors)

    return execute


# --- Test plugins in the services' host --------------------------------------------------------


class InstallPlugins(Protocol):
    def __call__(self, plugins: dict[str, type]) -> Awaitable[dict[str, Any]]: ...


@pytest.fixture
def install_test_plugins(services: Services) -> InstallPlugins:
    """Register test plugin classes (name → class) in the host's registry, install each enabled
    and load it; returns the InstalledPlugin rows by name. A class may carry a MANIFEST."""
    from models import InstalledPlugin
    from runtime.catalog.manifest import parse_manifest

    async def install(plugins: dict[str, type]) -> dict[str, Any]:
        rows = {}
        for name, cls in plugins.items():
            raw = getattr(cls, "MANIFEST", None) or {
                "name": name,
                "version": "1.0.0",
                "type": "extension",
                "category": "testing",
                "permissions": ["sessions:read", "users:read"],
            }
            services.host.registry.register(cls, parse_manifest({**raw, "name": name}), "test")
            rows[name] = await InstalledPlugin.create(
                name=name, version="1.0.0", enabled=True, config={}
            )
            await services.host.sync_plugin(name)
        return rows

    return install
