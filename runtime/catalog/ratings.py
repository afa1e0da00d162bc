"""Ratings and reviews: one per user per plugin, with the averages kept exact in SQL."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from models import CatalogPlugin, PluginRating
from runtime.core.errors import BadUserInput, FieldProblem, NotFound

MAX_REVIEW_CHARS = 5000

# One statement recomputes both figures from the ratings themselves: no value is read into
# Python and written back, so concurrent raters cannot overwrite each other's effect.
_REFRESH_AGGREGATES = """
UPDATE catalog_plugins SET
  rating_count = (SELECT COUNT(*) FROM plugin_ratings WHERE plugin_id = {id}),
  avg_rating = COALESCE(
    (SELECT CAST(SUM(rating) AS DOUBLE PRECISION) / COUNT(*)
       FROM plugin_ratings WHERE plugin_id = {id}), 0)
WHERE id = {id}
"""


def _check(rating: int, review: str | None) -> str | None:
    problems = []
    if not 1 <= rating <= 5:
        problems.append(FieldProblem("rating", f"must be 1 to 5, not {rating}"))
    if review is not None and len(review) > MAX_REVIEW_CHARS:
        problems.append(FieldProblem("review", f"must be at most {MAX_REVIEW_CHARS} characters"))
    if problems:
        raise BadUserInput.from_problems("rating", problems)
    return review.strip() or None if review is not None else None


async def rate_plugin(
    plugin_id: int, user_id: str, rating: int, review: str | None
) -> PluginRating:
    """Record `user_id`'s rating of a plugin, replacing an earlier one."""
    review = _check(rating, review)
    async with in_transaction() as connection:
        # The row lock serialises raters of one plugin, so the aggregate statement that follows
        # starts after every earlier rating has committed (PostgreSQL; SQLite writes serially).
        plugin = (
            await CatalogPlugin.filter(id=plugin_id)
            .select_for_update()
            .using_db(connection)
            .first()
        )
        if plugin is None:
            raise NotFound(f"catalog plugin {plugin_id} does not exist")
        existing = (
            await PluginRating.filter(plugin_id=plugin_id, user_id=user_id)
            .using_db(connection)
            .get_or_none()
        )
        if existing is None:
            saved = await PluginRating.create(
                plugin_id=plugin_id,
                user_id=user_id,
                rating=rating,
                review=review,
                using_db=connection,
            )
        else:
            existing.update_from_dict({"rating": rating, "review": review})
            await existing.save(
                using_db=connection, update_fields=["rating", "review", "updated_at"]
            )
            saved = existing
        await connection.execute_script(_REFRESH_AGGREGATES.format(id=int(plugin_id)))
    return saved
