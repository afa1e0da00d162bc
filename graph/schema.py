"""The GraphQL schema: types, operations and the extensions every request runs through.

`schema.graphql` at the project root is exported from here:
`streamspace-plugins schema > schema.graphql`.
"""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.types import ExecutionContext

from graph.errors import ErrorCodes
from graph.mutations import Mutation
from graph.queries import Query

MAX_DEPTH = 12
MAX_TOKENS = 4000
MAX_ALIASES = 30


class Schema(strawberry.Schema):
    """Strawberry's schema without its own error logging: ErrorCodes logs what is unexpected,
    and a caller's mistake (a bad token, a misspelt field) is not a server error."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None


def build_schema(*, debug: bool = False) -> strawberry.Schema:
    """The schema; `debug` shows unexpected errors' messages instead of masking them."""
    codes = type("DebugErrorCodes", (ErrorCodes,), {"debug": True}) if debug else ErrorCodes
    return Schema(
        query=Query,
        mutation=Mutation,
        extensions=[
            codes,
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
            lambda: ParserCache(maxsize=512),
            lambda: ValidationCache(maxsize=512),
        ],
    )


schema = build_schema()
