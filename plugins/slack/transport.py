"""POSTing a message to a Slack incoming webhook and reading Slack's answer.

Slack answers 200 with the body `ok`; a refused message gets 400/403/404/410 with a short
reason as the body (`invalid_payload`, `no_service`, `channel_is_archived`, …), which no retry
can fix; 429 says when to come back in Retry-After; 5xx and network trouble are transient.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from runtime.sdk import (
    PermanentFailure,
    PluginContext,
    RetryLater,
    retry_after_seconds,
    unreachable,
)

USER_AGENT = "streamspace-slack/1.0"
# Slack's error bodies are one word; a proxy's HTML error page is cut to stay readable.
REASON_LIMIT = 200


def _reason(status: int, text: str) -> str:
    reason = " ".join(text.split())[:REASON_LIMIT]
    return f"Slack answered HTTP {status}: {reason}" if reason else f"Slack answered HTTP {status}"


async def post_message(ctx: PluginContext, body: Mapping[str, Any]) -> dict[str, Any]:
    """Send `body`; returns {status, response} or raises RetryLater / PermanentFailure."""
    timeout = aiohttp.ClientTimeout(total=float(ctx.config.get("timeoutSeconds") or 10))
    headers = {"content-type": "application/json", "user-agent": USER_AGENT}
    try:
        async with ctx.http.post(
            str(ctx.config["webhookUrl"]), data=orjson.dumps(body), headers=headers, timeout=timeout
        ) as response:
            status = response.status
            text = await response.text(errors="replace")
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    except aiohttp.InvalidURL:
        # Its message is the URL itself, whose path is the webhook's secret.
        raise PermanentFailure("the webhook URL is not a valid URL") from None
    except TimeoutError as error:
        raise RetryLater(f"Slack did not answer in time: {error}") from None
    except aiohttp.ClientError as error:
        raise unreachable(error, "Slack") from None
    if 200 <= status < 300:
        return {"status": status, "response": text.strip()[:REASON_LIMIT]}
    if status == 429:
        raise RetryLater(_reason(status, text or "rate_limited"), after=retry_after)
    if status >= 500:
        raise RetryLater(_reason(status, text), after=retry_after)
    raise PermanentFailure(_reason(status, text))
