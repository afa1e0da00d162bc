"""Repository and sync result types."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeAlias

import strawberry

from graph.context import Info
from graph.permissions import IsAdmin
from graph.types.common import field
from models import Repository as RepositoryRow
from runtime.catalog import repositories
from runtime.catalog.config_schema import MASK
from runtime.core.url_credentials import UrlCredentials

# The runtime's enum, exported to GraphQL as it is.
RepositoryType: TypeAlias = repositories.RepositoryType
strawberry.enum(RepositoryType)


@strawberry.type
class RepositoryCredentials:
    """The user name and password a repository URL was given with, as an admin sees them."""

    username: str = strawberry.field(
        description="The user name; ******** when it reads as a token (GitHub and GitLab "
        "take a token as the user name)."
    )
    password: str | None = strawberry.field(description="******** when one is set.")


@strawberry.type
class Repository:
    """A source of catalog entries.

    Example:
        ```graphql
        { repositories { id name type url lastSyncedAt lastSyncError } }
        ```
    """

    # The URL's credentials, encrypted: only the admin-only `credentials` field reads them.
    sealed_credentials: strawberry.Private[str | None]
    id: strawberry.ID
    name: str
    url: str
    type: RepositoryType
    description: str | None
    enabled: bool
    last_synced_at: datetime | None
    last_sync_error: str | None
    created_at: datetime
    updated_at: datetime

    @field(
        permission_classes=[IsAdmin],
        description="The user name and password the URL was given with, masked; null when it "
        "had none. `url` never holds them.",
    )
    def credentials(self, info: Info) -> RepositoryCredentials | None:
        found = UrlCredentials.unseal(info.context.services.box, self.sealed_credentials)
        if found is None:
            return None
        return RepositoryCredentials(
            username=found.shown_username, password=MASK if found.password else None
        )

    @classmethod
    def from_row(cls, row: RepositoryRow) -> Repository:
        return cls(
            sealed_credentials=row.credentials,
            id=strawberry.ID(str(row.id)),
            name=row.name,
            url=row.url,
            type=RepositoryType(row.type),
            description=row.description,
            enabled=row.enabled,
            last_synced_at=row.last_synced_at,
            last_sync_error=row.last_sync_error,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any]) -> Repository:
        """From a row read as values (a catalog page joins its repository that way)."""
        return cls(
            sealed_credentials=columns.get("credentials"),
            id=strawberry.ID(str(columns["id"])),
            name=columns["name"],
            url=columns["url"],
            type=RepositoryType(columns["type"]),
            description=columns["description"],
            enabled=columns["enabled"],
            last_synced_at=columns["last_synced_at"],
            last_sync_error=columns["last_sync_error"],
            created_at=columns["created_at"],
            updated_at=columns["updated_at"],
        )


@strawberry.type
class SyncError:
    plugin: str
    message: str


@strawberry.type
class SyncResult:
    """What a sync changed in the catalog; entries listed in errors were left as they were."""

    repository: Repository
    added: int
    updated: int
    removed: int
    errors: list[SyncError]

    @classmethod
    def from_result(cls, result: repositories.SyncResult) -> SyncResult:
        return cls(
            repository=Repository.from_row(result.repository),
            added=result.added,
            updated=result.updated,
            removed=result.removed,
            errors=[SyncError(plugin=e.plugin, message=e.message) for e in result.errors],
        )
