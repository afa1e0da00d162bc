"""DataLoaders: one query per relation per request, whatever the page size.

They live in the per-request context; a WebSocket's context lives as long as the connection,
so subscriptions must not rely on them for fresh data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import cached_property

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


class Loaders:
    """One request's DataLoaders, each made when first used: most requests use none of them.

    Example:
        loaders = Loaders.for_subject("ann")
        repository = await loaders.repository.load(3)   # batched with the other loads
    """

    def __init__(self, subject: str | None) -> None:
        self.subject = subject

    @classmethod
    def for_subject(cls, subject: str | None) -> Loaders:
        return cls(subject)

    @cached_property
    def repository(self) -> DataLoader[int, Repository | None]:
        return DataLoader(load_fn=_repositories)

    @cached_property
    def catalog_plugin(self) -> DataLoader[int, CatalogPlugin | None]:
        return DataLoader(load_fn=_catalog_plugins)

    @cached_property
    def versions(self) -> DataLoader[int, list[PluginVersion]]:
        return DataLoader(load_fn=_versions)

    @cached_property
    def installed_by_catalog_id(self) -> DataLoader[int, InstalledPlugin | None]:
        return DataLoader(load_fn=_installed)

    @cached_property
    def stats(self) -> DataLoader[int, PluginStats | None]:
        return DataLoader(load_fn=_stats)

    @cached_property
    def my_rating(self) -> DataLoader[int, PluginRating | None]:
        return _ratings_of(self.subject)
