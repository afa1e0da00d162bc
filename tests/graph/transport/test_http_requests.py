"""Requests /graphql does not run, refused as GraphQL-over-HTTP errors (the real server is in
tests/e2e/test_http.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from graph.transport.http_requests import (
    GRAPHQL_RESPONSE,
    JSON,
    RequestRefused,
    error_response,
    media_type,
    request_fields,
)


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("text/html", JSON),  # nothing of ours named: ours, rather than 406
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}; charset=utf-8, {JSON}; charset=utf-8", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE}", JSON),  # equal quality: the first listed
        (f"{JSON};q=0.5, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0, */*", JSON),
        (f"{GRAPHQL_RESPONSE};q=nonsense, {JSON}", JSON),
        ("APPLICATION/GRAPHQL-RESPONSE+JSON", GRAPHQL_RESPONSE),
    ],
)
def test_the_media_type_is_the_one_the_client_prefers(accept: str | None, media: str) -> None:
    assert media_type(accept) == media


def test_an_error_response_is_a_graphql_response_with_one_coded_error() -> None:
    response = error_response(415, "not JSON", GRAPHQL_RESPONSE, {"X-A": "b"})
    assert response.status_code == 415
    assert response.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
    assert response.headers["x-a"] == "b"
    assert orjson.loads(response.body) == {
        "errors": [{"message": "not JSON", "extensions": {"code": "UNSUPPORTED_MEDIA_TYPE"}}]
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([{"query": "{ a }"}], "batched operations"),
        (5, "must be a JSON object"),
        ("{ a }", "must be a JSON object"),
        ({"query": 5}, "query must be a string"),
        ({"query": "{ a }", "operationName": ["A"]}, "operationName must be a string"),
        ({"query": "{ a }", "variables": [1]}, "variables must be an object"),
        ({"query": "{ a }", "extensions": "x"}, "extensions must be an object"),
    ],
)
def test_a_body_that_is_not_one_request_is_refused(body: Any, message: str) -> None:
    with pytest.raises(RequestRefused) as refused:
        request_fields(body)
    assert refused.value.status == 400
    assert message in refused.value.message


def test_a_request_may_leave_out_or_null_what_is_optional() -> None:
    body = {"query": "{ a }", "operationName": None, "variables": None}
    assert request_fields(body) is body
