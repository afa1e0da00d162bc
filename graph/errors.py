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


def _coded(error: GraphQLError, *, debug: bool) -> GraphQLError:
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
        code = (error.extensions or {}).get("code", "GRAPHQL_VALIDATION_FAILED")
        return GraphQLError(
            error.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={**(error.extensions or {}), "code": code},
        )
    log.error(
        "unexpected error in %s",
        ".".join(str(p) for p in error.path or []),
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
        if result is not None and getattr(result, "errors", None):
            result.errors = [_coded(error, debug=self.debug) for error in result.errors]
