"""Ratings and reviews."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graph.types.common import PageInfo
from models import PluginRating as PluginRatingRow


@strawberry.type
class PluginRating:
    id: strawberry.ID
    catalog_plugin_id: strawberry.ID
    user_id: str
    rating: int
    review: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: PluginRatingRow) -> PluginRating:
        return cls(
            id=strawberry.ID(str(row.id)),
            catalog_plugin_id=strawberry.ID(str(row.plugin_id)),
            user_id=row.user_id,
            rating=row.rating,
            review=row.review,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type
class PluginRatingEdge:
    cursor: str
    node: PluginRating


@strawberry.type
class PluginRatingConnection:
    edges: list[PluginRatingEdge]
    page_info: PageInfo
