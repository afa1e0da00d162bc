"""Input types made of leaves only, built from their GraphQL value in one step.

graphql-core hands over arguments already coerced: scalars parsed, lists built, every default
the schema publishes filled in. For an input whose fields are all scalars (or lists of them)
Strawberry's conversion then only renames the fields and copies the lists, yet it works out
each field's GraphQL name and resolves its type on every request: a tenth of a catalog page's
time went to converting its filter. `leaf_input` gives such a type a `from_input` hook (the
one Strawberry offers types that build their own value) doing the same from a table made once
per schema configuration. A schema whose configuration is a `FastPathsConfig` with
`fast_paths=False` builds them as Strawberry does, through `InputContext.convert`.

Example:
    @leaf_input
    @strawberry.input
    class CatalogFilter:
        search: str | None = None
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types.arguments import InputContext
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    get_object_definition,
)
from strawberry.types.field import StrawberryField
from strawberry.types.unset import UNSET

T = TypeVar("T", bound=type)

# Python types whose GraphQL values graphql-core hands over as they are to be stored (the
# scalars' parsing done: a DateTime is a datetime, a JSON value what the JSON held).
LEAVES: tuple[object, ...] = (str, int, float, bool, strawberry.ID, datetime, JSON)

# (GraphQL name, Python name, whether the value is a list to copy)
Row = tuple[str, str, bool]


@dataclasses.dataclass
class FastPathsConfig(StrawberryConfig):
    """Strawberry's configuration, saying whether `leaf_input` types build in one step."""

    fast_paths: bool = True


@dataclasses.dataclass(frozen=True)
class _Table:
    nulls: dict[str, None]  # the fields without a default: None unless given
    fields: tuple[Row, ...]


def leaf_input(cls: T) -> T:
    """Build `cls` (a Strawberry input of scalars and lists of scalars) in one step."""
    definition = get_object_definition(cls, strict=True)
    if not definition.is_input:
        raise TypeError(f"{cls.__name__} is not an input type")
    for field in definition.fields:
        if _is_list(field) is None:
            raise TypeError(f"{cls.__name__}.{field.python_name} is not a scalar or their list")
    definition.from_input = _from_input
    return cls


def _is_list(field: StrawberryField) -> bool | None:
    """Whether the field holds a list of scalars, or a scalar; None when neither."""
    kind: Any = field.type
    # A Maybe's null means "set to null" apart from "not given": not a plain leaf.
    if isinstance(kind, StrawberryMaybe):
        return None
    if isinstance(kind, StrawberryOptional):
        kind = kind.of_type
    if isinstance(kind, StrawberryList):
        item = kind.of_type
        if isinstance(item, StrawberryMaybe):
            return None
        if isinstance(item, StrawberryOptional):
            item = item.of_type
        return True if item in LEAVES else None
    return False if kind in LEAVES else None


# (class, id(config)) -> (config, table); the config is kept so that its id is never reused.
_TABLES: dict[tuple[type, int], tuple[object, _Table]] = {}


def _table(cls: type, context: InputContext) -> _Table:
    key = (cls, id(context.config))
    known = _TABLES.get(key)
    if known is not None and known[0] is context.config:
        return known[1]
    definition = get_object_definition(cls, strict=True)
    names = context.config.name_converter
    table = _Table(
        # As Strawberry: fields without a default are None unless the value holds them.
        nulls={
            field.python_name: None
            for field in definition.fields
            if field.default_value is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
        },
        fields=tuple(
            (names.from_field(field), field.python_name, bool(_is_list(field)))
            for field in definition.fields
        ),
    )
    _TABLES[key] = (context.config, table)
    return table


def _from_input(cls: type, value: Mapping[str, Any], context: InputContext) -> Any:
    if not getattr(context.config, "fast_paths", True):
        return _as_strawberry_does(cls, value, context)
    table = _table(cls, context)
    kwargs: dict[str, Any] = dict(table.nulls)
    for graphql_name, python_name, is_list in table.fields:
        if graphql_name in value:
            given = value[graphql_name]
            # graphql-core gives every request that omits a list the same default: copied.
            kwargs[python_name] = (
                list(given) if is_list and given is not None and given is not UNSET else given
            )
    return cls(**kwargs)


def _as_strawberry_does(cls: type, value: Mapping[str, Any], context: InputContext) -> Any:
    """The input built field by field, as Strawberry builds a type without `from_input`."""
    definition = get_object_definition(cls, strict=True)
    kwargs: dict[str, Any] = {
        field.python_name: None
        for field in definition.fields
        if field.default_value is dataclasses.MISSING
        and field.default_factory is dataclasses.MISSING
    }
    for field in definition.fields:
        graphql_name = context.config.name_converter.from_field(field)
        if graphql_name in value:
            kind = field.resolve_type(type_definition=definition)
            kwargs[field.python_name] = context.convert(value[graphql_name], kind, graphql_name)
    return cls(**kwargs)
