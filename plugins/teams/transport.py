"""POSTing a card to a Teams webhook and reading Teams' answer as a delivery outcome.

Workflows answers 202 Accepted; legacy connectors answer 200 with the body "1", and on
throttling some answer 200 with "...returned HTTP error 429..." in the body instead of a 429,
which is read here as the 429 it is. 429 and 5xx and network errors are retried (Retry-After
honoured); any other 4xx is final. The webhook URL carries its credential (the `sig` query
parameter), so it never appears in an error message or log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from runtime.sdk import Http, PermanentFailure, RetryLater, retry_after_seconds, unreachable

USER_AGENT = "streamspace-teams/1.0"
# A 200 from a legacy connector that is really an error reports the status in its text.
_EMBEDDED_STATUS = re.compile(r"returned HTTP error (\d{3})")
_DETAIL_CHARS = 300


@dataclass(frozen=True)
class Answer:
    status: int
    text: str


def _detail(text: str) -> str:
    """Teams' own words about a refusal, short, for the delivery's error."""
    text = " ".join(text.split())
    if not text:
        return ""
    return ": " + (text if len(text) <= _DETAIL_CHARS else text[:_DETAIL_CHARS] + "…")


def _unreachable(error: aiohttp.ClientError) -> str:
    # Not str(error): some aiohttp errors quote the full URL, and with it the signature.
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"{type(error).__name__}: {error.os_error}"
    return type(error).__name__


async def post(http: Http, url: str, body: dict[str, Any], timeout_seconds: float) -> Answer:
    """POST `body` as JSON; return Teams' answer or raise RetryLater / PermanentFailure."""
    data = orjson.dumps(body)
    headers = {"content-type": "application/json", "user-agent": USER_AGENT}
    try:
        async with http.post(
            url,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            # A redirect would resend the card somewhere the admin did not configure.
            allow_redirects=False,
        ) as response:
            status = response.status
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            text = await response.text(errors="replace")
    except TimeoutError:
        raise RetryLater(f"Teams did not answer within {timeout_seconds:g}s") from None
    except aiohttp.ClientError as error:
        raise unreachable(error, "Teams", _unreachable(error)) from None
    if 200 <= status < 300:
        embedded = _EMBEDDED_STATUS.search(text)
        if embedded is None:
            return Answer(status, text)
        status = int(embedded.group(1))
    if status == 429:
        raise RetryLater(f"Teams is throttling this webhook (HTTP 429){_detail(text)}", retry_after)
    if status >= 500:
        raise RetryLater(f"Teams answered HTTP {status}{_detail(text)}", retry_after)
    raise PermanentFailure(f"Teams answered HTTP {status}{_detail(text)}")
