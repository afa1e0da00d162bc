"""Plugin repositories: adding, removing and syncing them into the catalog.

A sync reads the whole index first and writes in one transaction, so a broken or unreachable
index changes nothing, and a bad entry is reported without stopping the others.

A URL given with `user:pass@` is stored without them; they are stored encrypted
(`runtime.core.url_credentials`) and used only to read the repository and its archives.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tortoise.connection import get_connection
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models import (
    CatalogPlugin,
    CatalogTag,
    InstalledPlugin,
    PluginStats,
    PluginVersion,
    Repository,
)
from runtime.catalog.browse import search_text
from runtime.catalog.manifest import Manifest
from runtime.catalog.sources.fetch import Fetcher, UrlFetcher
from runtime.catalog.sources.git import read_git_repository
from runtime.catalog.sources.index import read_index
from runtime.catalog.sources.offers import OfferedPlugin, SyncError
from runtime.core.address_policy import AddressPolicy, AddressRefused, PathRefused
from runtime.core.errors import BadUserInput, Conflict, FieldProblem, NotFound
from runtime.core.redaction import NO_SECRETS
from runtime.core.secrets import SecretBox
from runtime.core.url_credentials import UrlCredentials, same_origin, split_credentials
from runtime.db._bulk_sql import dialect_of

log = logging.getLogger(__name__)

BUILTIN = "builtin"
# A sync that changes this many entries has the database refresh the catalog's statistics.
ANALYZE_AFTER_CHANGES = 100
CATALOG_TABLES = ("catalog_plugins", "plugin_versions", "catalog_plugin_tags", "plugin_stats")


class RepositoryType(Enum):
    INDEX = "index"
    GIT = "git"
    BUILTIN = "builtin"


@dataclass
class SyncResult:
    repository: Repository
    added: int = 0
    updated: int = 0
    removed: int = 0
    errors: list[SyncError] = field(default_factory=list)


async def ensure_builtin_repository() -> Repository:
    repository, _ = await Repository.get_or_create(
        name=BUILTIN,
        defaults={
            "url": "builtin://",
            "type": RepositoryType.BUILTIN.value,
            "description": "Plugins shipped with the server",
        },
    )
    return repository


def _url_is_valid(url: str) -> bool:
    """An http(s) URL names a host; a file URL names a path."""
    parts = urlsplit(url)
    if parts.scheme in {"http", "https"}:
        return bool(parts.hostname)
    return parts.scheme == "file" and parts.path not in {"", "/"}


def _url_problem(url: str, policy: AddressPolicy | None) -> str | None:
    """Why `url` cannot be a repository's, or None. With a policy, what it refuses without a
    lookup (a file outside its folders, a refused address written in the URL) is refused now
    rather than at every sync; a name is judged when a sync resolves it."""
    if not _url_is_valid(url):
        return "must be an https://, http:// or file:// URL"
    if policy is None:
        return None
    try:
        if url.startswith("file:"):
            policy.local_path(url)
        else:
            policy.check_host(urlsplit(url).hostname or "")
    except (AddressRefused, PathRefused) as error:
        return str(error)
    return None


async def add_repository(
    name: str,
    url: str,
    repo_type: RepositoryType,
    description: str | None,
    *,
    box: SecretBox | None = None,
    policy: AddressPolicy | None = None,
) -> Repository:
    """Add a repository; credentials in its URL are kept encrypted by `box`."""
    problems: list[FieldProblem] = []
    name = name.strip()
    url, credentials = split_credentials(url.strip())
    if not name or len(name) > 255:
        problems.append(FieldProblem("name", "must be 1 to 255 characters"))
    url_problem = _url_problem(url, policy)
    if url_problem is not None:
        problems.append(FieldProblem("url", url_problem))
    elif credentials is not None and urlsplit(url).scheme == "file":
        problems.append(FieldProblem("url", "a file:// URL takes no user name or password"))
    if repo_type is RepositoryType.BUILTIN:
        problems.append(FieldProblem("type", "the builtin repository is created by the server"))
    if problems:
        raise BadUserInput.from_problems("repository", problems)
    if credentials is not None and box is None:
        raise BadUserInput("credentials in a repository URL need the server's secret key")
    conflict = Conflict(f"a repository named {name!r} exists already")
    if await Repository.exists(name=name):
        raise conflict
    try:
        return await Repository.create(
            name=name,
            url=url,
            type=repo_type.value,
            description=description,
            credentials=None if credentials is None or box is None else credentials.seal(box),
        )
    except IntegrityError:
        # Another request added the same name between the check and the insert.
        raise conflict from None


async def get_repository(repository_id: int) -> Repository:
    repository = await Repository.get_or_none(id=repository_id)
    if repository is None:
        raise NotFound(f"repository {repository_id} does not exist")
    return repository


async def refresh_catalog_statistics() -> None:
    """Have the database read the catalog tables' statistics again.

    PostgreSQL plans from statistics that autovacuum refreshes some time after a large change;
    until then a catalog one sync filled is planned as if it were nearly empty: a page of a
    10,000-entry catalog scanned and sorted the table (4.7 ms) instead of walking its sort's
    index (0.24 ms). SQLite's planner needs none here.
    """
    connection = get_connection("default")
    if dialect_of(connection) == "postgres":
        await connection.execute_script("ANALYZE " + ", ".join(CATALOG_TABLES))


async def remove_repository(repository_id: int) -> int:
    """Remove a repository and its catalog entries; refused while one of them is installed."""
    repository = await get_repository(repository_id)
    if repository.type == RepositoryType.BUILTIN.value:
        raise Conflict("the builtin repository cannot be removed")
    # In one transaction, so an install racing the removal cannot be left without its entry.
    async with in_transaction():
        installed = await InstalledPlugin.filter(
            catalog_plugin__repository_id=repository_id
        ).values_list("name", flat=True)
        if installed:
            names = ", ".join(sorted(str(name) for name in installed))
            raise Conflict(f"repository {repository.name!r} provides installed plugins: {names}")
        await repository.delete()
    return repository_id


def _catalog_values(latest: Manifest) -> dict[str, Any]:
    """The columns of a catalog entry that the newest offered version decides."""
    return {
        "version": latest.version,
        "display_name": latest.display_name,
        "description": latest.description,
        "category": latest.category,
        "plugin_type": latest.plugin_type,
        "icon_url": latest.icon,
        "manifest": latest.raw,
        "tags": latest.tags,
        "available": True,
        "search_text": search_text(
            latest.name, latest.display_name, latest.description, latest.tags
        ),
    }


def _offered_versions(offered: OfferedPlugin) -> list[dict[str, Any]]:
    return [
        {
            "version": version.manifest.version,
            "manifest": version.manifest.raw,
            "archive_url": version.archive_url,
            "sha256": version.sha256,
            "published_at": version.published_at,
        }
        for version in offered.versions
    ]


def _stored_versions(rows: Sequence[PluginVersion]) -> list[dict[str, Any]]:
    return [
        {
            "version": row.version,
            "manifest": row.manifest,
            "archive_url": row.archive_url,
            "sha256": row.sha256,
            "published_at": row.published_at,
        }
        for row in rows
    ]


async def _write_versions(plugin_id: int, versions: list[dict[str, Any]]) -> None:
    await PluginVersion.filter(plugin_id=plugin_id).delete()
    await PluginVersion.bulk_create([PluginVersion(plugin_id=plugin_id, **v) for v in versions])


async def _write_tags(plugin_id: int, tags: Sequence[str]) -> None:
    await CatalogTag.filter(plugin_id=plugin_id).delete()
    await CatalogTag.bulk_create(
        [CatalogTag(plugin_id=plugin_id, tag=tag) for tag in sorted(set(tags))]
    )


async def _create(repository: Repository, offered: OfferedPlugin) -> None:
    values = _catalog_values(offered.latest.manifest)
    entry = await CatalogPlugin.create(repository_id=repository.id, name=offered.name, **values)
    await PluginStats.create(plugin_id=entry.id)
    await _write_tags(entry.id, offered.latest.manifest.tags)
    await _write_versions(entry.id, _offered_versions(offered))


async def _update(
    entry: CatalogPlugin, offered: OfferedPlugin, stored: Sequence[PluginVersion]
) -> bool:
    """Bring an existing entry in line with `offered`; True when anything changed.

    Only the columns the repository decides are written: id, ratings, counters and the
    installations that point at the entry stay as they are.
    """
    values = _catalog_values(offered.latest.manifest)
    changed = {key: value for key, value in values.items() if getattr(entry, key) != value}
    versions = _offered_versions(offered)
    versions_changed = versions != _stored_versions(stored)
    if changed:
        # A queryset update does not touch auto_now fields.
        await CatalogPlugin.filter(id=entry.id).update(**changed, updated_at=datetime.now(UTC))
    if "tags" in changed:
        await _write_tags(entry.id, offered.latest.manifest.tags)
    if versions_changed:
        await _write_versions(entry.id, versions)
    return bool(changed) or versions_changed


async def apply_offer(
    repository: Repository, offered: Sequence[OfferedPlugin], result: SyncResult
) -> None:
    """Make the repository's catalog entries match `offered`, in one transaction."""
    failed = {error.plugin for error in result.errors}
    async with in_transaction():
        entries = {e.name: e for e in await CatalogPlugin.filter(repository_id=repository.id)}
        stored: dict[int, list[PluginVersion]] = {entry.id: [] for entry in entries.values()}
        if stored:
            for row in await PluginVersion.filter(plugin_id__in=list(stored)).order_by("id"):
                stored[row.plugin_id].append(row)
        for plugin in offered:
            entry = entries.get(plugin.name)
            if entry is None:
                await _create(repository, plugin)
                result.added += 1
            elif await _update(entry, plugin, stored[entry.id]):
                result.updated += 1
        # An entry that failed this time keeps its last good state rather than vanishing.
        offered_names = {plugin.name for plugin in offered} | failed
        result.removed = (
            await CatalogPlugin.filter(repository_id=repository.id, available=True)
            .exclude(name__in=offered_names)
            .update(available=False, updated_at=datetime.now(UTC))
        )
        await Repository.filter(id=repository.id).update(
            last_synced_at=datetime.now(UTC), last_sync_error=None
        )


def credentials_of(repository: Repository, box: SecretBox | None) -> UrlCredentials | None:
    """The repository's credentials, decrypted; None when it has none."""
    if not repository.credentials:
        return None
    if box is None:
        raise BadUserInput(
            f"repository {repository.name!r} has credentials, which need the server's secret key"
        )
    return UrlCredentials.unseal(box, repository.credentials)


async def archive_credentials(
    catalog_plugin_id: int, archive_url: str, box: SecretBox | None
) -> UrlCredentials | None:
    """The credentials to download an archive with: its repository's, when the archive is
    on the repository's own origin (never sent to another host an index names)."""
    entry = await CatalogPlugin.get_or_none(id=catalog_plugin_id).prefetch_related("repository")
    if entry is None or not entry.repository.credentials:
        return None
    if not same_origin(entry.repository.url, archive_url):
        return None
    return credentials_of(entry.repository, box)


async def sync_repository(
    repository_id: int,
    fetcher: Fetcher | None = None,
    data_dir: Path | None = None,
    *,
    box: SecretBox | None = None,
    policy: AddressPolicy | None = None,
) -> SyncResult:
    """Bring the catalog in line with the repository's index.json, or its git tags.

    A git repository is cloned (then fetched) into `data_dir`, which it therefore needs.
    Every request obeys `policy` (by default: public addresses only, no file:// URLs);
    `fetcher` defaults to a UrlFetcher under it. `box` decrypts the repository's
    credentials, when it has any.
    """
    policy = policy or AddressPolicy()
    repository = await get_repository(repository_id)
    if repository.type not in {RepositoryType.INDEX.value, RepositoryType.GIT.value}:
        raise BadUserInput(
            f"repository {repository.name!r} of type {repository.type} is not synced"
        )
    credentials = credentials_of(repository, box)
    try:
        if repository.type == RepositoryType.GIT.value:
            if data_dir is None:
                raise BadUserInput("a git repository is synced into the server's data dir")
            offered, errors = await read_git_repository(repository, data_dir, policy, credentials)
        else:
            fetcher = fetcher or UrlFetcher(policy)
            offered, errors = await read_index(repository.url, fetcher, credentials)
    except BadUserInput as error:
        # Whatever a server or git answered, the credentials never reach the row or caller.
        message = (credentials.redactor() if credentials else NO_SECRETS).text(error.message)
        await Repository.filter(id=repository.id).update(last_sync_error=message)
        raise BadUserInput(f"repository {repository.name!r} was not synced: {message}") from None
    result = SyncResult(repository=repository, errors=errors)
    await apply_offer(repository, offered, result)
    if result.added + result.updated + result.removed >= ANALYZE_AFTER_CHANGES:
        await refresh_catalog_statistics()
    await repository.refresh_from_db()
    log.info(
        "repository synced",
        extra={
            "repository": repository.name,
            "added": result.added,
            "updated": result.updated,
            "removed": result.removed,
            "errors": len(result.errors),
        },
    )
    return result
