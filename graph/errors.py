"""Error codes on every GraphQL error, and masking of the unexpected ones.

Our own errors keep their message and gain `extensions.code`; GraphQL's validation and parse
errors stay readable; anything else is logged with its traceback and reaches the client as
"Internal server error" with code INTERNAL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from runtime.errors import PlatformError

log = logging.getLogger("graph.errors")
INTERNAL_MESSAGE = "Internal server error"


def _readable(error: GraphQLError, code: str) -> GraphQLError:
    """The caller's mistake, told as GraphQL phrased it, with `code` unless it carries one."""
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": code, **(error.extensions or {})},
    )


def coded(error: GraphQLError, *, debug: bool = False) -> GraphQLError:
    """`error` with extensions.code; an unexpected one is logged, then masked.

    Idempotent: an error it returned passes through it again unchanged, so the schema may
    apply it both in the operation hook and to errors raised outside that hook.
    """
    original = error.original_error
    if isinstance(original, PlatformError):
        return GraphQLError(
            original.message,
            nodes=error.nodes,
            path=error.path,
            extensions={**(error.extensions or {}), **original.as_extensions()},
        )
    if original is None:
        # Parse and validation errors: the caller's query is wrong, and must be told how.
        return _readable(error, "GRAPHQL_VALIDATION_FAILED")
    if isinstance(original, GraphQLError):
        # A variable's value that does not fit its type (GraphQL wraps the coercion error).
        return _readable(error, "BAD_USER_INPUT")
    log.error(
        "unexpected error in %s",
        ".".join(str(p) for p in error.path or []) or "the operation",
        exc_info=(type(original), original, original.__traceback__),
    )
    return GraphQLError(
        str(original) if debug else INTERNAL_MESSAGE,
        nodes=error.nodes,
        path=error.path,
        extensions={"code": "INTERNAL"},
    )


class ErrorCodes(SchemaExtension):
    """Adds extensions.code to every error; masks unexpected exceptions unless debugging."""

    debug = False

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if result is not None and errors:
            result.errors = [coded(error, debug=self.debug) for error in errors]
