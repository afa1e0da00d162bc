"""What a repository offers, whatever its layout: its plugins and versions, and what failed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from packaging.version import InvalidVersion, Version

from runtime.catalog.manifest import Manifest


@dataclass(frozen=True)
class SyncError:
    """A catalog entry the sync could not take, and why."""

    plugin: str
    message: str


@dataclass(frozen=True)
class OfferedVersion:
    manifest: Manifest
    archive_url: str | None
    sha256: str | None
    published_at: datetime | None


@dataclass(frozen=True)
class OfferedPlugin:
    """One plugin of a repository with its versions, newest last."""

    name: str
    versions: list[OfferedVersion]

    @property
    def latest(self) -> OfferedVersion:
        return self.versions[-1]


def version_key(version: str) -> Any:
    try:
        return (0, Version(version))
    except InvalidVersion:
        return (-1, version)
