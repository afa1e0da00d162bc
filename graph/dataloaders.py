"""DataLoaders: one query per relation per request, whatever the page size.

They live in the per-request context; a WebSocket's context lives as long as the connection,
so subscriptions must not rely on them for fresh data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from strawberry.dataloader import DataLoader

from models import (
    CatalogPlugin,
    InstalledPlugin,
    PluginRating,
    PluginStats,
    PluginVersion,
    Repository,
)


async def _repositories(ids: Sequence[int]) -> list[Repository | None]:
    rows = {row.id: row for row in await Repository.filter(id__in=ids)}
    return [rows.get(key) for key in ids]


async def _catalog_plugins(ids: Sequence[int]) -> list[CatalogPlugin | None]:
    rows = {row.id: row for row in await CatalogPlugin.filter(id__in=ids)}
    return [rows.get(key) for key in ids]


async def _versions(ids: Sequence[int]) -> list[list[PluginVersion]]:
    grouped: dict[int, list[PluginVersion]] = defaultdict(list)
    for row in await PluginVersion.filter(plugin_id__in=ids).order_by("id"):
        grouped[row.plugin_id].append(row)
    return [grouped[key] for key in ids]


async def _installed(ids: Sequence[int]) -> list[InstalledPlugin | None]:
    rows = {
        row.catalog_plugin_id: row
        for row in await InstalledPlugin.filter(catalog_plugin_id__in=ids)
    }
    return [rows.get(key) for key in ids]


async def _stats(ids: Sequence[int]) -> list[PluginStats | None]:
    rows = {row.plugin_id: row for row in await PluginStats.filter(plugin_id__in=ids)}
    return [rows.get(key) for key in ids]


def _ratings_of(subject: str | None) -> DataLoader[int, PluginRating | None]:
    async def load(ids: Sequence[int]) -> list[PluginRating | None]:
        if subject is None:
            return [None for _ in ids]
        rows = {
            row.plugin_id: row
            for row in await PluginRating.filter(plugin_id__in=ids, user_id=subject)
        }
        return [rows.get(key) for key in ids]

    return DataLoader(load_fn=load)


@dataclass
class Loaders:
    repository: DataLoader[int, Repository | None]
    catalog_plugin: DataLoader[int, CatalogPlugin | None]
    versions: DataLoader[int, list[PluginVersion]]
    installed_by_catalog_id: DataLoader[int, InstalledPlugin | None]
    stats: DataLoader[int, PluginStats | None]
    my_rating: DataLoader[int, PluginRating | None]

    @classmethod
    def for_subject(cls, subject: str | None) -> Loaders:
        return cls(
            repository=DataLoader(load_fn=_repositories),
            catalog_plugin=DataLoader(load_fn=_catalog_plugins),
            versions=DataLoader(load_fn=_versions),
            installed_by_catalog_id=DataLoader(load_fn=_installed),
            stats=DataLoader(load_fn=_stats),
            my_rating=_ratings_of(subject),
        )
