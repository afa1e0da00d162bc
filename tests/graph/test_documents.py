"""Documents are parsed and validated once per text; a long one on a worker thread, so that
the event loop keeps serving while it is."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from graphql import DocumentNode, GraphQLError, GraphQLSchema

from graph import documents
from graph.schema import schema


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


def test_the_caches_keep_the_last_documents_used() -> None:
    cache: documents.Lru[str, Any] = documents.Lru(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
