"""Error codes on every GraphQL error, and masking of the unexpected ones.

Our own errors keep their message and gain `extensions.code`; GraphQL's validation and parse
errors stay readable; a request GraphQL cannot run (no query, an operation name the document
does not hold, an operation type the transport does not serve) is BAD_REQUEST; anything else
is logged with its traceback and reaches the client as "Internal server error" with code
INTERNAL.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from runtime.core.errors import PlatformError

log = logging.getLogger("graph.errors")
INTERNAL_MESSAGE = "Internal server error"
# Errors of a request, before any of its fields ran.
REQUEST_ERRORS = (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError)


def _copy(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    """`error` with another message and extensions.

    Its locations are taken as they are: GraphQLError would find each again in the source,
    reading the document up to it, and a long document can hold a hundred errors.
    """
    copied = GraphQLError(message, path=error.path, extensions=extensions)
    copied.nodes, copied.source = error.nodes, error.source
    copied.positions, copied.locations = error.positions, error.locations
    return copied


def _readable(error: GraphQLError, code: str) -> GraphQLError:
    """The caller's mistake, told as GraphQL phrased it, with `code` unless it carries one."""
    return _copy(error, error.message, {"code": code, **(error.extensions or {})})


def coded(error: GraphQLError, *, debug: bool = False) -> GraphQLError:
    """`error` with extensions.code; an unexpected one is logged, then masked.

    Idempotent: an error it returned passes through it again unchanged, so the schema may
    apply it both in the operation hook and to errors raised outside that hook.
    """
    original = error.original_error
    if isinstance(original, PlatformError):
        return _copy(
            error, original.message, {**(error.extensions or {}), **original.as_extensions()}
        )
    if original is None:
        # Parse and validation errors: the caller's query is wrong, and must be told how.
        return _readable(error, "GRAPHQL_VALIDATION_FAILED")
    if isinstance(original, GraphQLError):
        # A variable's value that does not fit its type (GraphQL wraps the coercion error).
        return _readable(error, "BAD_USER_INPUT")
    if isinstance(original, REQUEST_ERRORS):
        return _copy(error, error.message, {"code": "BAD_REQUEST"})
    log.error(
        "unexpected error in %s",
        ".".join(str(p) for p in error.path or []) or "the operation",
        exc_info=(type(original), original, original.__traceback__),
    )
    return _copy(error, str(original) if debug else INTERNAL_MESSAGE, {"code": "INTERNAL"})
