"""The GraphQL schema: types, operations and the extensions every request runs through.

`schema.graphql` at the project root is exported from here:
`streamspace-plugins schema > schema.graphql`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from graph.document_limits import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from graph.documents import Documents
from graph.errors import ErrorCodes, coded
from graph.events import EventMutation, EventQuery
from graph.mutations import CatalogMutation
from graph.nul_inputs import refusal
from graph.plain_fields import PlainFieldsExecution
from graph.queries import CatalogQuery
from graph.subscriptions import Subscription

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
    """Strawberry's schema without its own error logging: ErrorCodes logs what is unexpected,
    and a caller's mistake (a bad token, a misspelt field) is not a server error."""

    debug = False

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
        refused = refusal(variable_values, query)
        if refused is not None:
            return ExecutionResult(data=None, errors=[refused])
        result = await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )
        # Errors raised while an extension parses (Documents) leave the operation hook before
        # ErrorCodes sees them; code them here too.
        if result.errors:
            result.errors = [coded(error, debug=self.debug) for error in result.errors]
        return result

    async def _handle_execution_result(
        self,
        context: ExecutionContext,
        result: Any,
        extensions_runner: SchemaExtensionsRunner,
        *,
        skip_process_errors: bool = False,
    ) -> ExecutionResult:
        # Every subscription message of every subscriber comes through here. None of our
        # extensions reports results, so a clean result skips asking each of them for some.
        if (
            isinstance(result, GraphQLExecutionResult)
            and not result.errors
            and not any(_reports(extension) for extension in extensions_runner.extensions)
        ):
            handled = ExecutionResult(data=result.data, errors=None)
            context.result = handled
            return handled
        return await super()._handle_execution_result(
            context, result, extensions_runner, skip_process_errors=skip_process_errors
        )


class Execution(PlainFieldsExecution):
    """The execution context of every operation: subscribers of one operation share its
    result per message (`shared_results`), and fields that only read an attribute complete
    without a resolver's per-field work (`plain_fields`)."""


def _reports(extension: SchemaExtension) -> bool:
    return type(extension).get_results is not SchemaExtension.get_results


def schema_extensions(*, debug: bool = False) -> list[Any]:
    """What every operation runs through: error codes; its document parsed and validated
    within limits, once per text."""
    codes = type("DebugErrorCodes", (ErrorCodes,), {"debug": True}) if debug else ErrorCodes
    return [codes, Documents]


def build_schema(*, debug: bool = False) -> strawberry.Schema:
    """The schema; `debug` shows unexpected errors' messages instead of masking them."""
    schema = Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=schema_extensions(debug=debug),
        execution_context_class=Execution,
    )
    schema.debug = debug
    return schema


schema = build_schema()
