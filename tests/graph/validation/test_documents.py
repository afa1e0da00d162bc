"""Documents are parsed and validated once per text; a long one on a worker thread, so that
the event loop keeps serving while it is."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from graphql import DocumentNode, GraphQLError, GraphQLSchema
from graphql.language.parser import Parser

from graph.schema import schema
from graph.validation import documents


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """The threads each step ran on."""
    seen: dict[str, list[int]] = {"parse": [], "validate": []}
    parse, validate = documents.parse_limited, documents.validate_within_limits

    def parse_watched(text: str) -> DocumentNode:
        seen["parse"].append(threading.get_ident())
        return parse(text)

    def validate_watched(schema: GraphQLSchema, document: DocumentNode) -> list[GraphQLError]:
        seen["validate"].append(threading.get_ident())
        return validate(schema, document)

    monkeypatch.setattr(documents, "parse_limited", parse_watched)
    monkeypatch.setattr(documents, "validate_within_limits", validate_watched)
    return seen


async def test_a_short_document_is_parsed_and_validated_on_the_loop(
    threads: dict[str, list[int]],
) -> None:
    result = await schema.execute("{ __typename }  # short")
    assert result.data == {"__typename": "Query"}
    assert threads == {"parse": [threading.get_ident()], "validate": [threading.get_ident()]}


async def test_a_long_document_is_parsed_and_validated_on_a_worker_thread(
    threads: dict[str, list[int]],
) -> None:
    text = "{ __typename }" + " " * documents.INLINE_CHARACTERS
    result = await schema.execute(text)
    assert result.data == {"__typename": "Query"}
    assert len(threads["parse"]) == len(threads["validate"]) == 1
    assert threading.get_ident() not in threads["parse"] + threads["validate"]


async def test_each_text_is_parsed_and_validated_once(threads: dict[str, list[int]]) -> None:
    for _ in range(3):
        await schema.execute("{ __typename }  # once")
    assert len(threads["parse"]) == len(threads["validate"]) == 1


async def test_the_input_checks_read_the_document_the_operation_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A run of 19 digits and an escaped backslash before u0000: both the check for integers
    # beyond 64 bits and the one for NUL characters read the document's literals.
    threads: list[int] = []
    parse_document = Parser.parse_document

    def parse_watched(parser: Parser) -> DocumentNode:
        threads.append(threading.get_ident())
        return parse_document(parser)

    monkeypatch.setattr(Parser, "parse_document", parse_watched)
    name = "1234567890123456789 \\\\u0000" + " " * documents.INLINE_CHARACTERS
    result = await schema.execute(f'{{ __type(name: "{name}") {{ name }} }}')
    assert result.errors is None and result.data == {"__type": None}
    assert len(threads) == 1
    assert threading.get_ident() not in threads


def test_the_caches_keep_the_last_documents_used() -> None:
    cache: documents.Lru[str, Any] = documents.Lru(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
