"""Plain fields (scalars, and objects and lists of objects made of plain fields) completed
without a resolver's per-field work give what graphql-core gives: the same data, the same
errors."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.scalars import JSON

from graph.schema import Execution, Schema


@strawberry.enum
class Colour(Enum):
    RED = "red"


@strawberry.type
class Thing:
    id: strawberry.ID
    name: str
    count: int
    ratio: float
    on: bool
    colour: Colour
    at: datetime
    data: JSON
    maybe: str | None
    tags: list[str]

    @strawberry.field
    def shout(self, suffix: str = "!") -> str:
        return self.name.upper() + suffix


def _thing(**changes: Any) -> Thing:
    values: dict[str, Any] = {
        "id": strawberry.ID("7"),
        "name": "seven",
        "count": 7,
        "ratio": 0.5,
        "on": True,
        "colour": Colour.RED,
        "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "data": {"a": [1, 2]},
        "maybe": None,
        "tags": ["x"],
    }
    values.update(changes)
    return Thing(**values)


def _schemas(thing: Thing) -> tuple[strawberry.Schema, strawberry.Schema]:
    @strawberry.type
    class Query:
        @strawberry.field
        def thing(self) -> Thing:
            return thing

    fast = Schema(query=Query, execution_context_class=Execution)
    general = Schema(query=Query)
    fast.debug = general.debug = True  # the errors' own messages, not masked ones
    return fast, general


QUERY = "{ thing { id name count ratio on colour at data maybe tags shout alias: name } }"


async def _both(thing: Thing) -> tuple[Any, Any]:
    fast, general = _schemas(thing)
    a = await fast.execute(QUERY)
    b = await general.execute(QUERY)
    return (a.data, [e.formatted for e in a.errors or []]), (
        b.data,
        [e.formatted for e in b.errors or []],
    )


async def test_plain_fields_give_what_the_general_path_gives() -> None:
    fast, general = await _both(_thing())
    assert fast == general
    assert fast[0]["thing"]["colour"] == "RED"
    assert fast[0]["thing"]["at"] == "2026-01-02T03:04:05+00:00"


@pytest.mark.parametrize(
    "changes",
    [{"name": None}, {"count": "many"}, {"ratio": "half"}, {"colour": "green"}],
    ids=["null-in-non-null", "not-an-int", "not-a-float", "not-an-enum"],
)
async def test_a_bad_value_gives_the_general_path_error(changes: dict[str, Any]) -> None:
    fast, general = await _both(_thing(**changes))
    assert fast == general
    assert fast[1], "the value must be refused"


async def test_a_missing_attribute_gives_the_general_path_error() -> None:
    thing = _thing()
    del thing.count
    fast, general = await _both(thing)
    assert fast == general
    assert fast[1]


async def test_plain_fields_skip_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from graphql.execution.executor import Executor

    general: list[str] = []
    original = Executor.execute_field

    def spy(self: Executor, parent_type: Any, source: Any, fields: Any, *rest: Any) -> Any:
        general.append(fields[0].node.name.value)
        return original(self, parent_type, source, fields, *rest)

    monkeypatch.setattr(Executor, "execute_field", spy)
    fast, _ = _schemas(_thing())
    result = await fast.execute(QUERY)
    assert not result.errors
    # The root field has a resolver, `shout` too, `tags` is a list and `maybe` is null.
    assert sorted(general) == ["maybe", "shout", "tags", "thing"]


# --- Objects and lists of objects built of plain fields ----------------------------------------


@strawberry.type
class Edge:
    cursor: str
    node: Thing
    spare: Thing | None = None

    @strawberry.field
    def loud(self) -> str:
        return self.cursor.upper()


@strawberry.type
class Page:
    edges: list[Edge]
    maybe_edges: list[Edge | None] | None
    first: Edge | None


def _page(things: list[Thing], **changes: Any) -> Page:
    edges = [Edge(cursor=f"c{index}", node=thing) for index, thing in enumerate(things)]
    values: dict[str, Any] = {"edges": edges, "maybe_edges": [None, *edges], "first": None}
    values.update(changes)
    return Page(**values)


def _page_schemas(page: Page) -> tuple[strawberry.Schema, strawberry.Schema]:
    @strawberry.type
    class Query:
        @strawberry.field
        def page(self) -> Page:
            return page

    fast = Schema(query=Query, execution_context_class=Execution)
    general = Schema(query=Query)
    fast.debug = general.debug = True
    return fast, general


PAGE = """query($with: Boolean!) {
  page {
    __typename
    edges { cursor n: node { ...F tags maybe } again: node { name } spare { name } }
    maybeEdges { cursor node @include(if: $with) { colour at data } }
    first { cursor }
  }
}
fragment F on Thing { id name count ratio on __typename }"""


async def _both_pages(page: Page, query: str = PAGE) -> tuple[Any, Any]:
    fast, general = _page_schemas(page)
    outcomes = []
    for schema in (fast, general):
        for flag in (True, False):
            result = await schema.execute(query, variable_values={"with": flag})
            outcomes.append((result.data, [e.formatted for e in result.errors or []]))
    return outcomes[:2], outcomes[2:]


async def test_plain_objects_and_lists_give_what_the_general_path_gives() -> None:
    fast, general = await _both_pages(_page([_thing(), _thing(name="eight", tags=[])]))
    assert fast == general
    data, errors = fast[0]
    assert not errors
    assert data["page"]["edges"][1]["n"]["name"] == "eight"
    assert data["page"]["edges"][0]["n"]["__typename"] == "Thing"
    assert data["page"]["maybeEdges"][0] is None
    assert "node" not in fast[1][0]["page"]["maybeEdges"][1]


@pytest.mark.parametrize(
    ("things", "changes"),
    [
        ([_thing(name=None)], {}),
        ([_thing(count="many")], {}),
        ([_thing(colour="green")], {}),
        ([_thing(tags=["x", None])], {}),
        ([_thing()], {"edges": [None]}),
        ([_thing()], {"edges": "not a list"}),
        ([_thing()], {"maybe_edges": [Edge(cursor="c", node=None)]}),  # type: ignore[arg-type]
    ],
    ids=[
        "null-name",
        "not-an-int",
        "not-an-enum",
        "null-in-a-list-of-non-null",
        "null-edge",
        "not-a-list",
        "null-node-under-a-nullable-list",
    ],
)
async def test_a_bad_value_deep_in_a_plain_object_gives_the_general_path_error(
    things: list[Thing], changes: dict[str, Any]
) -> None:
    fast, general = await _both_pages(_page(things, **changes))
    assert fast == general
    assert fast[0][1], "the value must be refused"


@pytest.mark.parametrize(
    "changes",
    [
        {"name": 8, "id": 9, "count": True, "ratio": 2, "on": 1},
        {"count": 2**31},
        {"ratio": float("nan")},
        {"count": 7.0, "ratio": float("inf")},
    ],
    ids=["coerced", "int-out-of-range", "nan", "whole-float-and-infinity"],
)
async def test_a_value_that_is_not_its_own_output_completes_as_on_the_general_path(
    changes: dict[str, Any],
) -> None:
    # Within one pass over an object: an int for a String, a bool for an Int, ...
    fast, general = await _both_pages(_page([_thing(**changes)]))
    assert fast == general


async def test_a_missing_attribute_deep_in_a_plain_object_gives_the_general_path_error() -> None:
    thing = _thing()
    del thing.count
    fast, general = await _both_pages(_page([thing]))
    assert fast == general
    assert fast[0][1]


async def test_an_attribute_that_raises_gives_the_general_path_error() -> None:
    class Touchy(Edge):
        @property  # type: ignore[misc]
        def cursor(self) -> str:
            raise RuntimeError("no cursor today")

    edge = Touchy.__new__(Touchy)
    edge.node = _thing()
    edge.spare = None
    fast, general = await _both_pages(_page([], edges=[edge]))
    assert fast == general
    assert "no cursor today" in str(fast[0][1])


async def test_a_resolver_below_sends_the_object_down_the_general_path() -> None:
    query = "{ page { edges { loud node { name shout } } } }"
    fast, general = await _both_pages(_page([_thing(), _thing()]), query)
    assert fast == general
    assert fast[0][0]["page"]["edges"][0]["node"]["shout"] == "SEVEN!"


async def test_plain_objects_skip_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from graphql.execution.executor import Executor

    general: list[str] = []
    original = Executor.execute_field

    def spy(self: Executor, parent_type: Any, source: Any, fields: Any, *rest: Any) -> Any:
        general.append(fields[0].node.name.value)
        return original(self, parent_type, source, fields, *rest)

    monkeypatch.setattr(Executor, "execute_field", spy)
    fast, _ = _page_schemas(_page([_thing() for _ in range(5)]))
    result = await fast.execute(PAGE, variable_values={"with": True})
    assert not result.errors
    # The root field has a resolver, `__typename` is graphql-core's and `first` is null; the
    # edges, their nodes and everything in them complete in one pass.
    assert sorted(general) == ["__typename", "first", "page"]
