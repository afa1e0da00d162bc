"""The GraphQL schema: types, operations and the extensions every request runs through.

`schema.graphql` at the project root is exported from here:
`streamspace-plugins schema > schema.graphql`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import (
    ASTValidationRule,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLScalarType,
    Undefined,
    get_nullable_type,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
    max_aliases,
    query_depth_limiter,
)
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.field import StrawberryField
from strawberry.types.graphql import OperationType

from graph.errors import ErrorCodes, coded
from graph.events import EventMutation, EventQuery
from graph.mutations import CatalogMutation
from graph.queries import CatalogQuery
from graph.shared_results import SharedResultExecution
from graph.subscriptions import Subscription

Query = merge_types("Query", (CatalogQuery, EventQuery))
Mutation = merge_types("Mutation", (CatalogMutation, EventMutation))

MAX_DEPTH = 12
MAX_TOKENS = 4000
MAX_ALIASES = 30
# Built once: MaxAliasesLimiter and QueryDepthLimiter create a new rule class per instance, and
# the validation cache keys on the rule classes, so per-request instances never hit the cache.
LIMIT_RULES: list[type[ASTValidationRule]] = [
    max_aliases.create_validator(MAX_ALIASES),
    query_depth_limiter.create_validator(MAX_DEPTH, None),
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
        result = await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )
        # Errors raised while an extension parses (ParserCache, MaxTokensLimiter) leave the
        # operation hook before ErrorCodes sees them; code them here too.
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


class Execution(SharedResultExecution):
    """Completes a plain scalar field (no resolver, no arguments) without the per-field work
    a resolver needs (its info object, argument coercion, awaitable checks): a page of 20
    catalog entries is some 140 fields, most of them such attributes. Anything unusual on
    the way (a missing attribute, a null, a value the scalar refuses) takes the general path,
    which produces the same result or error it always did."""

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Any,
        position_context: Any,
    ) -> Any:
        field_def = self.schema.get_field(parent_type, field_details_list[0].node.name.value)
        plain = _plain_scalar(field_def) if field_def is not None else None
        # Strawberry hands every operation a manager, empty unless an extension resolves.
        manager = self.middleware_manager
        if plain is not None and (manager is None or not manager.middlewares):
            name, scalar = plain
            value = getattr(source, name, _MISSING)
            if value is not None and value is not _MISSING:
                try:
                    coerced = scalar.coerce_output_value(value)
                except Exception:
                    coerced = None
                if coerced is not None and coerced is not Undefined:
                    return coerced
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )


_MISSING = object()
# id(field) -> (field, answer); the field is kept so that its id is never reused. Fields live
# as long as their schema, so this holds a few hundred entries.
_PLAIN: dict[int, tuple[GraphQLField, tuple[str, GraphQLScalarType | GraphQLEnumType] | None]] = {}


def _plain_scalar(
    field_def: GraphQLField,
) -> tuple[str, GraphQLScalarType | GraphQLEnumType] | None:
    """(attribute, leaf type) when the field only reads an attribute; None otherwise."""
    known = _PLAIN.get(id(field_def))
    if known is not None and known[0] is field_def:
        return known[1]
    plain: tuple[str, GraphQLScalarType | GraphQLEnumType] | None = None
    definition = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    leaf = get_nullable_type(field_def.type)
    if (
        isinstance(definition, StrawberryField)
        and definition.is_basic_field
        and definition.default_resolver is getattr
        and getattr(field_def.resolve, "_is_default", False)
        and not field_def.args
        and isinstance(leaf, GraphQLScalarType | GraphQLEnumType)
    ):
        plain = (definition.python_name, leaf)
    _PLAIN[id(field_def)] = (field_def, plain)
    return plain


def _reports(extension: SchemaExtension) -> bool:
    return type(extension).get_results is not SchemaExtension.get_results


def schema_extensions(*, debug: bool = False) -> list[Any]:
    """What every operation runs through: error codes, limits, parser and validation caches."""
    codes = type("DebugErrorCodes", (ErrorCodes,), {"debug": True}) if debug else ErrorCodes
    return [
        codes,
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: AddValidationRules(LIMIT_RULES),
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
    ]


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
