"""Browsing the catalog: filters, sort orders, keyset pages and view counting.

Example:
    >>> query = CatalogSearch(search="Slack", sort=CatalogSort.RATING)
    >>> [key.ordering for key in query.keys]
    ['-avg_rating', '-rating_count', '-id']
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal

from tortoise.expressions import F, Q, Subquery
from tortoise.fields import DatetimeField, Field, FloatField, IntField
from tortoise.filters import escape_like
from tortoise.functions import Count
from tortoise.models import Model
from tortoise.queryset import QuerySet, ValuesQuery

from models import CatalogPlugin, CatalogTag, InstalledPlugin, PluginStats, Repository
from runtime.core.errors import BadUserInput, NotFound
from runtime.db._statement_cache import StatementCache
from runtime.db.pagination import SortKey, after_q, decode_cursor, encode_cursor

log = logging.getLogger(__name__)


class CatalogSort(Enum):
    POPULAR = "popular"
    RATING = "rating"
    NEWEST = "newest"
    NAME = "name"


SORT_KEYS: dict[CatalogSort, tuple[SortKey, ...]] = {
    CatalogSort.POPULAR: (SortKey("install_count", True), SortKey("id", True)),
    CatalogSort.RATING: (
        SortKey("avg_rating", True),
        SortKey("rating_count", True),
        SortKey("id", True),
    ),
    CatalogSort.NEWEST: (SortKey("created_at", True), SortKey("id", True)),
    CatalogSort.NAME: (SortKey("name"), SortKey("id")),
}


# The columns a joined relation brings into a page's rows (see CatalogSearch.page).
RELATED_COLUMNS: dict[str, tuple[str, ...]] = {
    "repository": tuple(Repository._meta.fields_db_projection),
    "stats": ("view_count",),
}


# A page's SQL by shape: building it costs more than running it.
PAGE_STATEMENTS = StatementCache()


def search_text(name: str, display_name: str, description: str, tags: Sequence[str]) -> str:
    """What `search` matches: name, display name, description and tags, lower-cased."""
    return "\n".join([name, display_name, description, *tags]).lower()


@dataclass(frozen=True)
class CatalogSearch:
    """One request for a catalog page; None means "do not filter on this"."""

    category: str | None = None
    plugin_type: str | None = None
    search: str | None = None
    tags: tuple[str, ...] = ()
    repository_id: int | None = None
    installed: bool | None = None
    available: bool | None = True
    sort: CatalogSort = CatalogSort.POPULAR

    @property
    def keys(self) -> tuple[SortKey, ...]:
        return SORT_KEYS[self.sort]

    def filtered(self) -> QuerySet[CatalogPlugin]:
        query = CatalogPlugin.all()
        if self.available is not None:
            query = query.filter(available=self.available)
        if self.category:
            query = query.filter(category=self.category)
        if self.plugin_type:
            query = query.filter(plugin_type=self.plugin_type)
        if self.repository_id is not None:
            query = query.filter(repository_id=self.repository_id)
        if self.search and self.search.strip():
            query = query.filter(search_text__contains=self.search.strip().lower())
        if self.tags:
            wanted = sorted(set(self.tags))
            having_all = (
                CatalogTag.filter(tag__in=wanted)
                .annotate(matches=Count("id"))
                .group_by("plugin_id")
                .filter(matches=len(wanted))
                .values("plugin_id")
            )
            query = query.filter(id__in=Subquery(having_all))
        if self.installed is not None:
            installed_ids = InstalledPlugin.filter(catalog_plugin_id__isnull=False).values(
                "catalog_plugin_id"
            )
            clause = Q(id__in=Subquery(installed_ids))
            query = query.filter(clause if self.installed else ~clause)
        return query

    # `page_shape` and `page_parameters` follow `filtered` and `page` clause by clause: a
    # filter added there needs its part here. The statement cache checks the parameters of
    # each shape's first page against the built query's, and tests check every combination.

    def page_shape(
        self, after: str | None, columns: tuple[str, ...], related: tuple[str, ...]
    ) -> Hashable:
        """What decides the SQL text of `page`, not its bound values."""
        return (
            self.available is not None,
            bool(self.category),
            bool(self.plugin_type),
            self.repository_id is not None,
            bool(self.search and self.search.strip()),
            len(set(self.tags)),
            self.installed,
            self.sort,
            bool(after),
            columns,
            related,
        )

    def page_parameters(self, first: int, after: str | None) -> list[Any]:
        """The values `page` binds, in its statement's order."""
        fields = CatalogPlugin._meta.fields_map
        values: list[Any] = []
        if self.available is not None:
            values.append(fields["available"].to_db_value(self.available, CatalogPlugin))
        if self.category:
            values.append(fields["category"].to_db_value(self.category, CatalogPlugin))
        if self.plugin_type:
            values.append(fields["plugin_type"].to_db_value(self.plugin_type, CatalogPlugin))
        if self.repository_id is not None:
            values.append(self.repository_id)
        if self.search and self.search.strip():
            values.append(f"%{escape_like(self.search.strip().lower())}%")
        if self.tags:
            wanted = sorted(set(self.tags))
            values.extend(wanted)
            values.append(len(wanted))
        if after:
            keys = self.keys
            decoded = decode_after(CatalogPlugin, keys, after)
            cursor = [
                fields[key.field].to_db_value(value, CatalogPlugin)
                for key, value in zip(keys, decoded, strict=True)
            ]
            for index in range(len(keys)):  # as after_q: the equal keys, then the one after
                values.extend(cursor[: index + 1])
        values.append(first + 1)
        return values

    async def fetch_page(
        self,
        first: int,
        after: str | None,
        columns: Iterable[str],
        related: Iterable[str] = (),
        *,
        cached: bool = True,
    ) -> list[dict[str, Any]]:
        """The rows of `page`, from its statement built once per shape; `cached=False` (the
        server's fast paths off) builds and runs it with the ORM each time."""
        selected, joined = tuple(columns), tuple(related)
        if not cached:
            return await self.page(first, after, selected, joined)
        return await PAGE_STATEMENTS.values(
            CatalogPlugin,
            self.page_shape(after, selected, joined),
            self.page_parameters(first, after),
            lambda: self.page(first, after, selected, joined),
        )

    def cursor_of(self, row: Mapping[str, Any]) -> str:
        """The cursor of a row of `page`: its sort-key values."""
        values: list[Any] = []
        for key in self.keys:
            value = row[key.field]
            values.append(value.isoformat() if isinstance(value, datetime) else value)
        return encode_cursor(values)

    def page(
        self, first: int, after: str | None, columns: Iterable[str], related: Iterable[str] = ()
    ) -> ValuesQuery[Literal[False]]:
        """The rows of one page plus one more, which tells whether a next page exists.

        Rows are dicts of `columns` and the sort keys, never model instances: building 21
        instances of every column costs several times the statement itself, and a page
        rarely shows more than a few columns. A `related` relation (RELATED_COLUMNS) comes
        in the same statement, its columns keyed `<relation>__<column>`, so a page costs
        one query for it whatever its size; a page that shows none skips the joins.
        """
        wanted = dict.fromkeys([*columns, *(key.field for key in self.keys)])
        for relation in related:
            wanted.update(dict.fromkeys(f"{relation}__{c}" for c in RELATED_COLUMNS[relation]))
        query = self.filtered()
        if after:
            query = query.filter(after_q(self.keys, decode_after(CatalogPlugin, self.keys, after)))
        ordering = [key.ordering for key in self.keys]
        return query.order_by(*ordering).limit(first + 1).values(*wanted)


def _cursor_value(field: Field[Any], value: Any) -> Any:
    """`value` as `field` stores it; ValueError or TypeError when it cannot be."""
    if isinstance(field, DatetimeField):
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("a cursor's timestamps carry their time zone")
        try:
            moment.astimezone(UTC)  # PostgreSQL's driver would fail on it, SQLite not
        except OverflowError:
            raise ValueError("out of range") from None
        return moment
    if isinstance(field, FloatField):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError("not a number")
        return float(value)
    if isinstance(field, IntField):  # BigIntField and SmallIntField too
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("not an integer")
        if not -(2**63) <= value < 2**63:
            raise ValueError("out of range")
        return value
    if not isinstance(value, str):
        raise TypeError("not text")
    return value


def decode_after(model: type[Model], keys: Sequence[SortKey], cursor: str) -> list[Any]:
    """The sort-key values of an `after` cursor, typed as the columns they are compared with.

    A cursor is opaque to clients but arrives from them: a forged or stale one must be
    BAD_USER_INPUT, never a database error.
    """
    values = decode_cursor(cursor, len(keys))
    try:
        return [
            _cursor_value(model._meta.fields_map[key.field], value)
            for key, value in zip(keys, values, strict=True)
        ]
    except (TypeError, ValueError):
        raise BadUserInput(f"after: {cursor!r} is not a cursor of this list") from None


async def get_catalog_plugin(plugin_id: int) -> CatalogPlugin:
    plugin = await CatalogPlugin.get_or_none(id=plugin_id)
    if plugin is None:
        raise NotFound(f"catalog plugin {plugin_id} does not exist")
    return plugin


class ViewCounter:
    """Counts catalog views in memory and writes them in batches.

    A read of catalogPlugin only bumps a counter: it never waits on, or fails with, the write.
    Counts not yet written when the process dies are lost, which a view counter can afford.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self._interval = interval
        self._pending: Counter[int] = Counter()
        self._task: asyncio.Task[None] | None = None

    def count(self, plugin_id: int) -> None:
        self._pending[plugin_id] += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="catalog-view-counter")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:
                log.exception("writing catalog view counts failed; they are kept for next time")

    async def flush(self) -> None:
        pending, self._pending = self._pending, Counter()
        now = datetime.now(UTC)
        try:
            for plugin_id, views in pending.items():
                updated = await PluginStats.filter(plugin_id=plugin_id).update(
                    view_count=F("view_count") + views, last_viewed_at=now
                )
                if not updated and await CatalogPlugin.exists(id=plugin_id):
                    await PluginStats.create(
                        plugin_id=plugin_id, view_count=views, last_viewed_at=now
                    )
                pending[plugin_id] = 0
        finally:
            self._pending.update(+pending)
