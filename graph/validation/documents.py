"""Each operation's document, parsed and validated once per distinct text, a long one off the
event loop.

Both steps are pure Python and linear in the document (graph/validation/document_limits.py keeps
validation so), but a document of 4000 tokens still costs tens of milliseconds to parse and as
much again to validate: done on the loop, every other request and the health checks would
wait that long. A document longer than `INLINE_CHARACTERS` is parsed and validated on a worker
thread; the interpreter hands the loop its turn every few milliseconds meanwhile. Shorter ones,
and every document seen before, cost no thread hop.

Example:
    schema = strawberry.Schema(Query, extensions=[Documents])
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from graph.validation.document_limits import (
    MAX_DOCUMENT_CHARACTERS,
    MAX_TOKENS,
    STANDARD_RULES,
    limit_errors,
)

# Parsing and validating this many characters costs up to about 5 ms here, whatever the shape;
# the longest documents (64 KiB, 4000 tokens) cost 20 to 50 ms.
INLINE_CHARACTERS = 1024
CACHE_SIZE = 512

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """The `size` values used last."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        self._entries[key] = value
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value


def parse_limited(text: str) -> DocumentNode:
    """`text` parsed within the token and character limits (GraphQLSyntaxError past them)."""
    return parse(text, max_tokens=MAX_TOKENS, max_source_length=MAX_DOCUMENT_CHARACTERS)


def validate_within_limits(schema: GraphQLSchema, document: DocumentNode) -> list[GraphQLError]:
    """Our limits first, then GraphQL's rules unless a limit is broken."""
    return limit_errors(schema, document) or validate_document(schema, document, STANDARD_RULES)


# Keyed by text: the document is a function of it, and a string's hash is computed once where
# a document's walks the whole tree at every lookup.
_parsed: Lru[str, DocumentNode] = Lru(CACHE_SIZE)
_validated: Lru[tuple[GraphQLSchema, str], list[GraphQLError]] = Lru(CACHE_SIZE)


# Threads of their own: a flood of long documents queues here, not in the loop's default
# executor (name resolution for outgoing requests); more threads would only share the GIL.
_readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="graphql-documents")


async def _run(text: str, work: Callable[[], V]) -> V:
    if len(text) <= INLINE_CHARACTERS:
        return work()
    return await asyncio.get_running_loop().run_in_executor(_readers, work)


async def parsed(text: str) -> DocumentNode:
    document = _parsed.get(text)
    if document is None:
        document = _parsed.put(text, await _run(text, lambda: parse_limited(text)))
    return document


async def validated(schema: GraphQLSchema, text: str, document: DocumentNode) -> list[GraphQLError]:
    key = (schema, text)
    errors = _validated.get(key)
    if errors is None:
        work = lambda: validate_within_limits(schema, document)  # noqa: E731
        errors = _validated.put(key, await _run(text, work))
    return errors


class Documents(SchemaExtension):
    """Parses and validates the operation's document (see the module's docstring)."""

    async def on_parse(self) -> AsyncIterator[None]:
        context = self.execution_context
        if context.query:  # without one, strawberry answers that the query is missing
            context.graphql_document = await parsed(context.query)
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        document = context.graphql_document
        assert document is not None
        schema = context.schema._schema
        if context.query:
            context.pre_execution_errors = await validated(schema, context.query, document)
        else:
            context.pre_execution_errors = validate_within_limits(schema, document)
        yield
