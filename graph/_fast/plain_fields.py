"""Fields that only read an attribute, completed without graphql-core's per-field work.

A catalog page of 20 entries is some 160 fields (the connection's edges, each edge's node,
each node's columns), and nearly all of them only read an attribute. The general path still
builds a resolver info, calls Strawberry's resolver wrapper, checks for awaitables and walks
`complete_value` for each. Here a plain field (Strawberry's default resolver, no arguments)
completes at once when it is a leaf, and in one pass over its whole selection when it is an
object or a list of objects whose selection holds plain fields only.

Anything unusual on the way (a missing attribute, a null where the type forbids it, a value
its scalar refuses, a field with a resolver anywhere below) sends the field down the general
path from its start, which gives the result or error it always gave: reading an attribute has
no side effect, so reading it twice is harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import isfinite
from typing import Any

from graphql import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLString,
    Undefined,
    get_nullable_type,
    is_non_null_type,
)
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

from graph._fast.shared_results import SharedResultExecution


def _int_verbatim(value: Any) -> bool:
    return type(value) is int and GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT


def _float_verbatim(value: Any) -> bool:
    return type(value) is float and isfinite(value)


# Which values graphql-core's own scalars output unchanged: those skip the scalar's coercion,
# which tries one conversion after another before it answers with the same value.
_VERBATIM: dict[GraphQLScalarType, Callable[[Any], bool]] = {
    GraphQLString: lambda value: type(value) is str,
    GraphQLID: lambda value: type(value) is str,
    GraphQLBoolean: lambda value: type(value) is bool,
    GraphQLInt: _int_verbatim,
    GraphQLFloat: _float_verbatim,
}


@dataclass(frozen=True, slots=True)
class Plain:
    """How a plain field's value completes: an attribute, read and shaped by its type."""

    attribute: str
    non_null: bool
    many: bool  # a list (of leaves or objects; lists of lists are not plain)
    items_non_null: bool
    leaf: GraphQLScalarType | GraphQLEnumType | None
    object_type: GraphQLObjectType | None
    # For a single leaf of a built-in scalar: whether a value is its own output.
    verbatim: Callable[[Any], bool] | None = None


# One entry of an object's plan: response name, how it completes (None: `__typename`), and,
# for an object, its own plan.
Step = tuple[str, "Plain | None", "list[Step] | None"]

_MISSING = object()
# A value that does not complete in one pass; the field takes the general path.
_GENERAL = object()
# id(field) -> (field, answer); the field is kept so that its id is never reused. Fields live
# as long as their schema, so this holds a few hundred entries.
_PLAIN: dict[int, tuple[GraphQLField, Plain | None]] = {}


def plain_field(field_def: GraphQLField) -> Plain | None:
    """How the field completes when it only reads an attribute; None otherwise."""
    known = _PLAIN.get(id(field_def))
    if known is not None and known[0] is field_def:
        return known[1]
    plain: Plain | None = None
    definition = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if (
        isinstance(definition, StrawberryField)
        and definition.is_basic_field
        and definition.default_resolver is getattr
        and getattr(field_def.resolve, "_is_default", False)
        and not field_def.args
    ):
        plain = _shaped(definition.python_name, field_def)
    _PLAIN[id(field_def)] = (field_def, plain)
    return plain


def _shaped(attribute: str, field_def: GraphQLField) -> Plain | None:
    kind: Any = get_nullable_type(field_def.type)
    many = isinstance(kind, GraphQLList)
    items_non_null = False
    if many:
        items_non_null = is_non_null_type(kind.of_type)
        kind = get_nullable_type(kind.of_type)
    leaf = kind if isinstance(kind, GraphQLScalarType | GraphQLEnumType) else None
    # An object type with is_type_of checks its values against a resolver info.
    whole = kind if isinstance(kind, GraphQLObjectType) and kind.is_type_of is None else None
    if leaf is None and whole is None:
        return None
    return Plain(
        attribute=attribute,
        non_null=is_non_null_type(field_def.type),
        many=many,
        items_non_null=items_non_null,
        leaf=leaf,
        object_type=whole,
        verbatim=_VERBATIM.get(leaf) if isinstance(leaf, GraphQLScalarType) and not many else None,
    )


class PlainFieldsExecution(SharedResultExecution):
    """Completes plain fields without the general path's per-field work (module docstring)."""

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Any,
        position_context: Any,
    ) -> Any:
        field_def = self.schema.get_field(parent_type, field_details_list[0].node.name.value)
        plain = plain_field(field_def) if field_def is not None else None
        # Strawberry hands every operation a manager, empty unless an extension resolves.
        manager = self.middleware_manager
        if plain is not None and (manager is None or not manager.middlewares):
            try:
                value = getattr(source, plain.attribute, _MISSING)
            except Exception:
                value = _MISSING
            # A null here, and a list of leaves, are left to the general path: neither costs
            # more there than here.
            if value is not None and value is not _MISSING and not (plain.many and plain.leaf):
                plan = None
                if plain.object_type is not None:
                    plan = self._plan(plain.object_type, field_details_list)
                if plain.leaf is not None or plan is not None:
                    completed = self._complete(plain, value, plan)
                    if completed is not _GENERAL:
                        return completed
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def _complete(self, plain: Plain, value: Any, plan: list[Step] | None) -> Any:
        """The value completed; `plan` is what an object's selection reads (None: a leaf)."""
        if value is None:
            return _GENERAL if plain.non_null else None
        if not plain.many:
            return self._complete_one(plain, value, plan)
        if not isinstance(value, list | tuple):
            return _GENERAL
        items: list[Any] = []
        for item in value:
            if item is None:
                if plain.items_non_null:
                    return _GENERAL
                items.append(None)
                continue
            completed = self._complete_one(plain, item, plan)
            if completed is _GENERAL:
                return _GENERAL
            items.append(completed)
        return items

    def _complete_one(self, plain: Plain, value: Any, plan: list[Step] | None) -> Any:
        if plan is None:
            assert plain.leaf is not None  # an object's plan is made before its value is read
            if plain.verbatim is not None and plain.verbatim(value):
                return value
            try:
                coerced = plain.leaf.coerce_output_value(value)
            except Exception:
                return _GENERAL
            return _GENERAL if coerced is None or coerced is Undefined else coerced
        result: dict[str, Any] = {}
        for name, step, below in plan:
            if step is None:
                result[name] = plain.object_type.name if plain.object_type else None
                continue
            try:
                attribute = getattr(value, step.attribute, _MISSING)
            except Exception:
                return _GENERAL
            if attribute is _MISSING:
                return _GENERAL
            if step.verbatim is not None and step.verbatim(attribute):
                result[name] = attribute  # most of a page's fields: a leaf that is its output
                continue
            completed = self._complete(step, attribute, below)
            if completed is _GENERAL:
                return _GENERAL
            result[name] = completed
        return result

    def _plan(self, object_type: GraphQLObjectType, field_details_list: Any) -> list[Step] | None:
        """What an object's selection reads, once per operation; None if not all plain."""
        plans: dict[tuple[GraphQLObjectType, int], tuple[Any, list[Step] | None]]
        plans = self.__dict__.setdefault("_plain_plans", {})
        # As collect_subfields: keyed by the list's identity, the list kept alive with it.
        key = (object_type, id(field_details_list))
        known = plans.get(key)
        if known is not None:
            return known[1]
        grouped, deferred, _forbidden = self.collect_subfields(object_type, field_details_list)
        plan: list[Step] | None = None if deferred else self._steps(object_type, grouped)
        plans[key] = (field_details_list, plan)
        return plan

    def _steps(self, object_type: GraphQLObjectType, grouped: Any) -> list[Step] | None:
        steps: list[Step] = []
        for name, details in grouped.items():
            field_name = details[0].node.name.value
            if field_name == "__typename":
                steps.append((name, None, None))
                continue
            field_def = self.schema.get_field(object_type, field_name)
            step = plain_field(field_def) if field_def is not None else None
            if step is None or any(detail.defer_usage is not None for detail in details):
                return None
            below = None
            if step.object_type is not None:
                below = self._plan(step.object_type, details)
                if below is None:
                    return None
            steps.append((name, step, below))
        return steps
