"""What /graphql refuses over HTTP before GraphQL runs, answered as GraphQL-over-HTTP errors.

A body that is not JSON, too large, of another media type, a batch, a request without a query,
a mutation over GET or a subscription over HTTP: each is answered with
`{"errors": [{"message": ..., "extensions": {"code": ...}}]}` and its HTTP status (400, 405,
413, 415) instead of plain text. The media type is `application/graphql-response+json` when
the client's Accept header prefers it, `application/json` otherwise (as every other response
of the endpoint is).

Example:
    raise RequestRefused(415, "a POST body must be application/json, not text/plain")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Message, Receive

CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}
JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"
# The media ranges each of ours answers to, as an Accept header may name them.
_ANSWERS = {GRAPHQL_RESPONSE: GRAPHQL_RESPONSE, JSON: JSON, "application/*": JSON, "*/*": JSON}


class RequestRefused(Exception):
    """A request /graphql does not run: its status, code and message, and headers to add."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def response(self, accept: str | None) -> Response:
        return error_response(self.status, self.message, accept, self.headers)


def media_type(accept: str | None) -> str:
    """The response media type `accept` prefers among ours (the first listed of the highest
    quality); application/json when it names neither."""
    best, best_quality = JSON, 0.0
    for part in (accept or "").split(","):
        media, *parameters = (piece.strip() for piece in part.split(";"))
        answer = _ANSWERS.get(media.lower())
        quality = _quality(parameters)
        if answer is not None and quality > best_quality:
            best, best_quality = answer, quality
    return best


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


def error_response(
    status: int, message: str, accept: str | None, headers: Mapping[str, str] | None = None
) -> Response:
    """A GraphQL response holding one error, coded after `status`."""
    body = {
        "errors": [{"message": message, "extensions": {"code": CODES.get(status, "BAD_REQUEST")}}]
    }
    media = media_type(accept)
    return Response(
        orjson.dumps(body),
        status,
        headers=dict(headers or {}),
        media_type=f"{media}; charset=utf-8" if media == GRAPHQL_RESPONSE else media,
    )


def content_length(headers: Mapping[str, str]) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None


def body_too_large(limit: int) -> RequestRefused:
    return RequestRefused(413, f"the request body is over the limit of {limit} bytes")


def limited(receive: Receive, limit: int) -> Receive:
    """`receive`, refusing a body once it passes `limit` bytes (RequestRefused, 413)."""
    received = 0

    async def receive_limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise body_too_large(limit)
        return message

    return receive_limited


def request_fields(data: Any) -> dict[str, Any]:
    """A POST body's JSON, as one GraphQL-over-HTTP request: an object whose query and
    operationName are strings or null and whose variables and extensions are objects or
    null."""
    if isinstance(data, list):
        raise RequestRefused(
            400, "batched operations (a JSON array) are not accepted: send one per request"
        )
    if not isinstance(data, dict):
        raise RequestRefused(
            400, "the request body must be a JSON object: {query, variables, operationName}"
        )
    for name, kinds in (
        ("query", str),
        ("operationName", str),
        ("variables", dict),
        ("extensions", dict),
    ):
        if data.get(name) is not None and not isinstance(data[name], kinds):
            kind = "a string" if kinds is str else "an object"
            raise RequestRefused(400, f"the request's {name} must be {kind} or null")
    return data
