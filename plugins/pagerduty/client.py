"""Sending one event to the Events API and turning its answer into a delivery outcome.

PagerDuty answers 202 `{"status": "success", "message": "Event processed", "dedup_key": ...}`;
400 `{"status": "invalid event", "message": ..., "errors": [...]}` is final (sending the same
body again cannot succeed); 429 (rate limited) and 5xx are retried, after Retry-After when
PagerDuty sends it, otherwise after the runtime's exponential backoff.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from runtime.sdk import Http, PermanentFailure, RetryLater, retry_after_seconds, unreachable

HEADERS = {"content-type": "application/json", "user-agent": "streamspace-pagerduty/1.0"}


def _answer(text: str) -> Mapping[str, Any]:
    """The JSON answer, or an empty mapping when a proxy answered with something else."""
    try:
        parsed = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, Mapping) else {}


def _reason(status: int, answer: Mapping[str, Any], text: str) -> str:
    message = answer.get("message") or text.strip()[:300] or f"HTTP {status}"
    errors = answer.get("errors")
    if isinstance(errors, list) and errors:
        return f"{message}: {'; '.join(str(error) for error in errors)}"
    return str(message)


async def send_event(
    http: Http, url: str, body: Mapping[str, Any], seconds: float
) -> dict[str, Any]:
    """POST `body`; the answer's status, message and dedup key, or the outcome to raise."""
    try:
        async with http.post(
            url,
            data=orjson.dumps(body),
            headers=HEADERS,
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as response:
            status = response.status
            text = await response.text()
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    except TimeoutError:
        raise RetryLater(f"PagerDuty did not answer within {seconds:g}s") from None
    except aiohttp.ClientError as error:
        raise unreachable(error, "PagerDuty") from None
    answer = _answer(text)
    if 200 <= status < 300:
        return {
            "status": status,
            "message": answer.get("message"),
            "dedupKey": answer.get("dedup_key") or body.get("dedup_key"),
        }
    reason = _reason(status, answer, text)
    if status == 429:
        raise RetryLater(f"PagerDuty rate limit (HTTP 429): {reason}", after=retry_after)
    if status >= 500:
        raise RetryLater(f"PagerDuty answered HTTP {status}: {reason}", after=retry_after)
    if status == 400:
        raise PermanentFailure(f"PagerDuty rejected the event as invalid: {reason}")
    raise PermanentFailure(f"PagerDuty answered HTTP {status}: {reason}")
