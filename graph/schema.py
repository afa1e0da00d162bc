"""The GraphQL schema: types, operations and the extensions every request runs through.

`schema.graphql` at the project root is exported from here:
`streamspace-plugins schema > schema.graphql`.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import aclosing
from datetime import datetime
from typing import Any

import strawberry
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES, StreamResult
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from graph._fast.leaf_inputs import FastPathsConfig
from graph._fast.plain_fields import PlainFieldsExecution
from graph.errors import coded
from graph.event_api import EventMutation, EventQuery
from graph.mutations import CatalogMutation
from graph.queries import CatalogQuery
from graph.subscriptions import Subscription
from graph.types.common import DATETIME
from graph.validation.document_limits import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from graph.validation.documents import Documents
from graph.validation.integer_inputs import refusal as wide_integer_refusal
from graph.validation.nul_inputs import refusal as nul_refusal

Query = merge_types("Query", (CatalogQuery, EventQuery))
Mutation = merge_types("Mutation", (CatalogMutation, EventMutation))

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_TOKENS",
    "Execution",
    "Schema",
    "build_schema",
    "schema",
    "schema_extensions",
]


class Schema(strawberry.Schema):
    """Strawberry's schema, every error coded (graph/errors.py) on every transport.

    Strawberry's own error logging is off: `coded` logs what is unexpected, and a caller's
    mistake (a bad token, a misspelt field) is not a server error.
    """

    debug = False
    # False: a clean result asks every extension for its results, as Strawberry does.
    fast_paths = True

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """One result; a subscription is refused (InvalidOperationTypeError): it streams."""
        refused = await _input_refusal(variable_values, query)
        if refused is not None:
            return ExecutionResult(data=None, errors=[refused])
        allowed = set(allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES)
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed - {OperationType.SUBSCRIPTION},
            operation_extensions,
        )

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> StreamResult:
        """The results of any operation, as WebSocket transports run them."""
        refused = await _input_refusal(variable_values, query)
        if refused is not None:
            return _only(PreExecutionError(data=None, errors=[refused]))
        results = await super().stream(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
            allowed_operation_types,
        )
        return _caught(results, debug=self.debug)

    async def _handle_execution_result(
        self,
        context: ExecutionContext,
        result: Any,
        extensions_runner: SchemaExtensionsRunner,
        *,
        skip_process_errors: bool = False,
    ) -> ExecutionResult:
        # Every result of every transport, and every subscription message of every
        # subscriber, comes through here. None of our extensions reports results, so a
        # clean result skips asking each of them for some.
        if (
            self.fast_paths
            and isinstance(result, GraphQLExecutionResult)
            and not result.errors
            and not any(_reports(extension) for extension in extensions_runner.extensions)
        ):
            handled = ExecutionResult(data=result.data, errors=None)
            context.result = handled
            return handled
        handled = await super()._handle_execution_result(
            context, result, extensions_runner, skip_process_errors=skip_process_errors
        )
        if handled.errors:
            handled.errors = [coded(error, debug=self.debug) for error in handled.errors]
        return handled


async def _input_refusal(
    variables: dict[str, Any] | None, query: str | None
) -> GraphQLError | None:
    """Why no backend could store the operation's input alike (a NUL, an integer beyond 64
    bits), before it runs; None when it holds neither. A document either check reads is the
    one the operation's own parse then takes from the cache (graph/validation/documents.py)."""
    return await nul_refusal(variables, query) or await wide_integer_refusal(variables, query)


async def _only(result: PreExecutionError) -> StreamResult:
    yield result


async def _caught(results: StreamResult, *, debug: bool) -> StreamResult:
    """`results`, and in place of an exception that escapes them (strawberry's stream lets a
    parse error raised in an extension's hook through), one coded error result."""
    first = True
    try:
        async with aclosing(results):
            async for result in results:
                yield result
                first = False
    except Exception as error:
        errors = [coded(_as_graphql_error(error), debug=debug)]
        yield (
            PreExecutionError(data=None, errors=errors)
            if first
            else ExecutionResult(data=None, errors=errors)
        )


def _as_graphql_error(error: Exception) -> GraphQLError:
    if isinstance(error, GraphQLError):
        return error
    return GraphQLError(str(error), original_error=error)


class Execution(PlainFieldsExecution):
    """The execution context of every operation: subscribers of one operation share its
    result per message (`shared_results`), and fields that only read an attribute complete
    without a resolver's per-field work (`plain_fields`)."""


def _reports(extension: SchemaExtension) -> bool:
    return type(extension).get_results is not SchemaExtension.get_results


def schema_extensions(*, debug: bool = False) -> list[Any]:
    """What every operation runs through: its document parsed and validated within limits,
    once per text. (`debug` is the schema's: errors are coded by `Schema`.)"""
    return [Documents]


def build_schema(*, debug: bool = False, fast_paths: bool = True) -> strawberry.Schema:
    """The schema; `debug` shows unexpected errors' messages instead of masking them, and
    `fast_paths=False` executes as graphql-core and Strawberry do (graph/_fast/README.md)."""
    schema = Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=schema_extensions(debug=debug),
        execution_context_class=Execution if fast_paths else None,
        scalar_overrides={datetime: DATETIME},
        config=FastPathsConfig(fast_paths=fast_paths),
    )
    schema.debug = debug
    schema.fast_paths = fast_paths
    return schema


schema = build_schema()
