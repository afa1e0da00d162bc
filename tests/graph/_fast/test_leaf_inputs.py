"""Inputs of scalars built in one step are the inputs Strawberry's own conversion builds."""

from datetime import datetime
from typing import Any

import pytest
import strawberry
from strawberry.scalars import JSON

from graph._fast.leaf_inputs import FastPathsConfig, leaf_input
from graph.schema import Schema
from graph.types.catalog import CatalogFilter
from graph.types.events import EmitEventInput


def _filter_type(one_step: bool) -> type:
    @strawberry.input
    class Filter:
        category: str | None = None
        search_text: str | None = None
        tags: list[str] | None = None
        maybe_tags: list[str | None] | None = strawberry.field(default_factory=lambda: ["z"])
        repository_id: strawberry.ID | None = None
        count: int
        ratio: float = 0.5
        available: bool | None = strawberry.field(default=True, description="offered now")
        at: datetime | None = None
        data: JSON | None = None

    return leaf_input(Filter) if one_step else Filter


def _schema(
    one_step: bool, seen: list[Any], config: FastPathsConfig | None = None
) -> strawberry.Schema:
    filter_type: Any = _filter_type(one_step)

    @strawberry.type
    class Query:
        @strawberry.field
        def echo(self, filter: filter_type, other: filter_type | None = None) -> str:  # type: ignore[valid-type]
            seen.append((filter, other))
            return "ok"

    return Schema(query=Query, config=config)


DOCUMENTS = [
    ("{ echo(filter: {count: 1}) }", None),
    (
        '{ echo(filter: {count: 2, category: "c", searchText: "s", tags: ["a", "b"], '
        'repositoryId: 7, ratio: 2, available: null, maybeTags: ["x", null]}) }',
        None,
    ),
    ("{ echo(filter: {count: 3, tags: null, maybeTags: null}, other: {count: 4}) }", None),
    (
        "query($f: Filter!, $o: Filter) { echo(filter: $f, other: $o) }",
        {"f": {"count": 5, "tags": ["v"], "repositoryId": "9"}, "o": None},
    ),
    ("query($f: Filter!) { echo(filter: $f) }", {"f": {"count": 6, "available": False}}),
    (
        '{ echo(filter: {count: 7, at: "2026-11-25T10:00:00+00:00", data: {a: [1, "b"]}}) }',
        None,
    ),
    (
        "query($f: Filter!) { echo(filter: $f) }",
        {"f": {"count": 8, "at": "2026-11-25T10:00:00Z", "data": {"nested": {"x": None}}}},
    ),
]


@pytest.mark.parametrize(("document", "variables"), DOCUMENTS)
async def test_one_step_builds_what_strawberry_builds(
    document: str, variables: dict[str, Any] | None
) -> None:
    outcomes = []
    # In one step; as Strawberry builds a type without the hook; the hook with the fast
    # paths off, which builds as Strawberry does.
    for one_step, config in (
        (True, None),
        (False, None),
        (True, FastPathsConfig(fast_paths=False)),
    ):
        seen: list[Any] = []
        schema = _schema(one_step, seen, config)
        result = await schema.execute(document, variable_values=variables)
        assert not result.errors, result.errors
        ((filter, other),) = seen
        outcomes.append((vars(filter), vars(other) if other is not None else None))
    assert outcomes[0] == outcomes[1] == outcomes[2]


async def test_a_list_is_never_shared_between_requests() -> None:
    seen: list[Any] = []
    schema = _schema(True, seen)
    for _ in range(2):
        assert not (await schema.execute("{ echo(filter: {count: 1}) }")).errors
    first, second = (filter for filter, _ in seen)
    assert first.maybe_tags == second.maybe_tags == ["z"]
    assert first.maybe_tags is not second.maybe_tags


def test_only_inputs_of_scalars_are_built_in_one_step() -> None:
    @strawberry.input
    class Inner:
        a: int

    @strawberry.input
    class Nested:
        inner: Inner

    @strawberry.input
    class WithMaybe:
        name: strawberry.Maybe[str]

    @strawberry.type
    class Output:
        a: int

    for cls in (Nested, WithMaybe, Output):
        with pytest.raises(TypeError):
            leaf_input(cls)


def test_the_catalog_filter_and_the_emit_input_are_built_in_one_step() -> None:
    for cls in (CatalogFilter, EmitEventInput):
        assert cls.__strawberry_definition__.from_input is not None  # type: ignore[attr-defined]
