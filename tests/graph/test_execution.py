"""Plain scalar fields completed without a resolver's per-field work give what graphql-core
gives: the same data, the same errors."""

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
