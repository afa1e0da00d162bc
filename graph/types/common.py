"""Types shared by every connection and error payload, and typed field decorators."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import strawberry
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.permission import BasePermission
from strawberry.schema.types.base_scalars import DateTimeDefinition
from strawberry.types.scalar import ScalarDefinition

from runtime.core.errors import BadUserInput, FieldProblem

Resolver = TypeVar("Resolver", bound=Callable[..., Any])


def field(
    *,
    description: str | None = None,
    permission_classes: list[type[BasePermission]] | None = None,
    deprecation_reason: str | None = None,
) -> Callable[[Resolver], Resolver]:
    """`@strawberry.field(...)` that keeps the resolver's signature for mypy.

    Strawberry's keyword-only overload returns Any, which strict mypy reports as an untyped
    decorator; passing the resolver positionally selects the typed overload.
    """

    def decorate(resolver: Resolver) -> Resolver:
        return cast(
            Resolver,
            strawberry.field(
                resolver,
                description=description,
                permission_classes=permission_classes,
                deprecation_reason=deprecation_reason,
            ),
        )

    return decorate


def mutation(
    *,
    description: str | None = None,
    permission_classes: list[type[BasePermission]] | None = None,
) -> Callable[[Resolver], Resolver]:
    """`@strawberry.mutation(...)`, typed as `field` is."""

    def decorate(resolver: Resolver) -> Resolver:
        return cast(
            Resolver,
            strawberry.mutation(
                resolver, description=description, permission_classes=permission_classes
            ),
        )

    return decorate


def subscription(
    *,
    description: str | None = None,
    permission_classes: list[type[BasePermission]] | None = None,
) -> Callable[[Resolver], Resolver]:
    """`@strawberry.subscription(...)`, typed as `field` is."""

    def decorate(resolver: Resolver) -> Resolver:
        return cast(
            Resolver,
            strawberry.subscription(
                resolver, description=description, permission_classes=permission_classes
            ),
        )

    return decorate


# Ids are the databases' BIGINT primary keys.
MAX_ID = 2**63 - 1
SHOWN_CHARACTERS = 40


def shown(value: str) -> str:
    """`value` as an error message quotes it: a long one cut short."""
    return repr(value if len(value) <= SHOWN_CHARACTERS else value[:SHOWN_CHARACTERS] + "…")


def parse_id(value: strawberry.ID | str, path: str = "id") -> int:
    """The integer behind an ID argument; BAD_USER_INPUT naming `path` unless it is written
    in decimal digits and below 2^63 (not " 1", "1e3", "-1" or "1_0")."""
    text = str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_ID:
        raise BadUserInput(
            f"{path}: {shown(text)} is not an id (a decimal integer below 2^63)",
            [FieldProblem(path, "not an id")],
        )
    return int(text)


def bounded(value: str | None, path: str, limit: int) -> str | None:
    """`value`, unless it is longer than `limit` characters: BAD_USER_INPUT naming `path`.

    A filter longer than the column it is compared with matches nothing, and the ORM refuses
    to send it (an internal error); the column's own length is the limit to give.
    """
    if value is not None and len(value) > limit:
        raise BadUserInput(
            f"{path}: at most {limit} characters, not {len(value)}",
            [FieldProblem(path, f"at most {limit} characters")],
        )
    return value


def column_length(model: Any, field: str) -> int:
    """The most characters `model`'s text column `field` holds."""
    length: int = model._meta.fields_map[field].max_length
    return length


def _instant(value: object) -> datetime:
    parse = cast(Callable[[object], datetime], DateTimeDefinition.parse_value)
    moment = parse(value)
    if moment.tzinfo is not None:
        try:
            moment.astimezone(UTC)  # what PostgreSQL stores; SQLite would keep the text
        except OverflowError:
            raise StrawberryInputCoercionError(
                f'Value cannot represent a DateTime: "{value}". It falls outside the years '
                "1 to 9999 once in UTC."
            ) from None
    return moment


DATETIME = ScalarDefinition(
    name=DateTimeDefinition.name,
    description=DateTimeDefinition.description,
    specified_by_url=None,
    serialize=DateTimeDefinition.serialize,
    parse_value=_instant,
    parse_literal=None,
    origin=datetime,
)
"""Strawberry's DateTime, refusing as bad input an instant PostgreSQL cannot hold (year 1
at +14:00 is year 0 in UTC) instead of failing in the database driver."""


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None
