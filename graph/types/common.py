"""Types shared by every connection and error payload, and typed field decorators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import strawberry
from strawberry.permission import BasePermission

from runtime.errors import BadUserInput, FieldProblem

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


def parse_id(value: strawberry.ID | str, path: str = "id") -> int:
    """The integer behind an ID argument; BAD_USER_INPUT naming `path` when there is none."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadUserInput(
            f"{path}: {value!r} is not an id", [FieldProblem(path, "not an id")]
        ) from None


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class FieldError:
    """One problem with one input field (also carried in extensions.fields)."""

    path: str
    message: str
