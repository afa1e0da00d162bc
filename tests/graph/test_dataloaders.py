"""A request's DataLoaders: made when first used, then shared by every field of the request."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from graph.dataloaders import Loaders
from models import CatalogPlugin, PluginRating, Repository
from tests.conftest import Database, QueryCounter


def test_a_request_that_uses_no_loader_makes_none() -> None:
    loaders = Loaders.for_subject("ann")
    assert vars(loaders) == {"subject": "ann"}


async def test_a_loader_is_made_once_and_batches_the_loads_of_the_request(
    db: Database, sql_counter: QueryCounter
) -> None:
    repository = await Repository.create(name="r", url="https://example.test/index.json")
    loaders = Loaders.for_subject(None)
    assert loaders.repository is loaders.repository
    sql_counter.statements.clear()
    rows = await asyncio.gather(loaders.repository.load(repository.id), loaders.repository.load(-1))
    assert [row.id if row else None for row in rows] == [repository.id, None]
    assert len(sql_counter.statements) == 1


async def test_my_rating_is_the_callers(db: Database) -> None:
    repository = await Repository.create(name="r", url="https://example.test/index.json")
    entry = await CatalogPlugin.create(
        repository=repository, name="p", version="1.0.0", updated_at=datetime.now(UTC)
    )
    await PluginRating.create(plugin=entry, user_id="ann", rating=4)
    assert (await Loaders.for_subject("ann").my_rating.load(entry.id)) is not None
    assert (await Loaders.for_subject("bob").my_rating.load(entry.id)) is None
    assert (await Loaders.for_subject(None).my_rating.load(entry.id)) is None
