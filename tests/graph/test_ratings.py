"""Rating catalog entries: one rating per user, 1..5, with exact averages."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from models import CatalogPlugin, PluginRating
from runtime.catalog.ratings import MAX_REVIEW_CHARS
from runtime.core.auth import Role
from tests.graph.conftest import Catalog, Execute

RATE = """mutation($id: ID!, $rating: Int!, $review: String) {
  ratePlugin(catalogPluginId: $id, rating: $rating, review: $review) {
    id catalogPluginId userId rating review } }"""

FIGURES = """query($id: ID!) { catalogPlugin(id: $id) {
  avgRating ratingCount myRating { rating review } } }"""

RATINGS = """query($id: ID!, $first: Int, $after: String) { catalogPlugin(id: $id) {
  ratings(first: $first, after: $after) {
    edges { cursor node { userId rating review } } pageInfo { hasNextPage endCursor } } } }"""


@pytest.fixture
async def plugin_id(make_plugin: Catalog) -> str:
    return str((await make_plugin("streamspace-slack")).id)


async def rate(
    gql: Execute, plugin_id: str, rating: int, user: str = "alice", review: str | None = None
) -> Any:
    variables = {"id": plugin_id, "rating": rating, "review": review}
    return await gql(RATE, variables, role=Role.USER, subject=user)


async def figures(gql: Execute, plugin_id: str, user: str = "alice") -> dict[str, Any]:
    data = (await gql(FIGURES, {"id": plugin_id}, role=Role.USER, subject=user)).ok()
    figures: dict[str, Any] = data["catalogPlugin"]
    return figures


@pytest.mark.parametrize("rating", [1, 5])
async def test_ratings_from_one_to_five_are_accepted(
    gql: Execute, plugin_id: str, rating: int
) -> None:
    saved = (await rate(gql, plugin_id, rating, review="Works")).ok()["ratePlugin"]
    assert saved["rating"] == rating
    assert saved["userId"] == "alice"
    assert saved["catalogPluginId"] == plugin_id
    assert saved["review"] == "Works"


@pytest.mark.parametrize("rating", [0, 6, -1])
async def test_a_rating_outside_one_to_five_is_bad_user_input(
    gql: Execute, plugin_id: str, rating: int
) -> None:
    result = await rate(gql, plugin_id, rating)
    assert result.codes == ["BAD_USER_INPUT"]
    assert [f["path"] for f in result.errors[0]["extensions"]["fields"]] == ["rating"]
    assert await PluginRating.all().count() == 0


async def test_a_review_longer_than_the_cap_is_bad_user_input(gql: Execute, plugin_id: str) -> None:
    assert (await rate(gql, plugin_id, 4, review="x" * MAX_REVIEW_CHARS)).ok()
    result = await rate(gql, plugin_id, 4, user="bob", review="x" * (MAX_REVIEW_CHARS + 1))
    assert result.codes == ["BAD_USER_INPUT"]
    assert [f["path"] for f in result.errors[0]["extensions"]["fields"]] == ["review"]
    assert await PluginRating.all().count() == 1


async def test_a_blank_review_is_no_review(gql: Execute, plugin_id: str) -> None:
    assert (await rate(gql, plugin_id, 4, review="   ")).ok()["ratePlugin"]["review"] is None


async def test_a_second_rating_by_the_same_user_replaces_the_first(
    gql: Execute, plugin_id: str
) -> None:
    first = (await rate(gql, plugin_id, 2, review="meh")).ok()["ratePlugin"]
    second = (await rate(gql, plugin_id, 5, review="fixed now")).ok()["ratePlugin"]
    assert second["id"] == first["id"]
    shown = await figures(gql, plugin_id)
    assert shown["ratingCount"] == 1
    assert shown["avgRating"] == 5.0
    assert shown["myRating"] == {"rating": 5, "review": "fixed now"}


async def test_average_and_count_are_exact(gql: Execute, plugin_id: str) -> None:
    for user, rating in [("a", 5), ("b", 4), ("c", 4)]:
        assert (await rate(gql, plugin_id, rating, user=user)).ok()
    shown = await figures(gql, plugin_id)
    assert shown["ratingCount"] == 3
    assert shown["avgRating"] == pytest.approx(13 / 3)
    row = await CatalogPlugin.get(id=int(plugin_id))
    assert row.rating_count == 3
    assert row.avg_rating == pytest.approx(13 / 3)


async def test_my_rating_is_the_callers_own(gql: Execute, plugin_id: str) -> None:
    assert (await rate(gql, plugin_id, 3, user="bob")).ok()
    assert (await figures(gql, plugin_id, user="alice"))["myRating"] is None
    assert (await figures(gql, plugin_id, user="bob"))["myRating"] == {
        "rating": 3,
        "review": None,
    }


async def test_rating_an_unknown_plugin_is_not_found(gql: Execute) -> None:
    assert (await rate(gql, "9999", 3)).codes == ["NOT_FOUND"]


async def test_ratings_connection_pages_newest_first(gql: Execute, plugin_id: str) -> None:
    for index in range(5):
        assert (await rate(gql, plugin_id, 1 + index % 5, user=f"user-{index}")).ok()
    seen: list[str] = []
    after = None
    while True:
        variables = {"id": plugin_id, "first": 2, "after": after}
        data = (await gql(RATINGS, variables, role=Role.USER)).ok()
        page = data["catalogPlugin"]["ratings"]
        seen += [edge["node"]["userId"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"user-{index}" for index in reversed(range(5))]


async def test_a_bad_ratings_cursor_is_bad_user_input(gql: Execute, plugin_id: str) -> None:
    result = await gql(RATINGS, {"id": plugin_id, "after": "bm90IGEgY3Vyc29y"}, role=Role.USER)
    assert result.codes == ["BAD_USER_INPUT"]


async def test_concurrent_ratings_by_many_users_give_the_exact_average(
    gql: Execute, plugin_id: str
) -> None:
    ratings = [1 + index % 5 for index in range(20)]
    results = await asyncio.gather(
        *(rate(gql, plugin_id, rating, user=f"user-{i}") for i, rating in enumerate(ratings))
    )
    assert all(not result.errors for result in results), [r.errors for r in results]
    shown = await figures(gql, plugin_id)
    assert shown["ratingCount"] == 20
    assert shown["avgRating"] == pytest.approx(sum(ratings) / 20)
