"""Executing a Discord webhook: the HTTP call, Discord's rate-limit headers, and outcomes.

Discord answers a request over a webhook's bucket with 429 and `retry_after`, and announces an
exhausted bucket on the last successful answer (`X-RateLimit-Remaining: 0` with
`X-RateLimit-Reset-After`). The reset moment is kept in the plugin's storage, so every replica
and every concurrent delivery waits for it instead of collecting 429s.

Outcomes follow the runtime's rules: 2xx succeeds; 429, 5xx, timeouts and unreachable hosts
raise RetryLater; any other 4xx (unknown webhook, invalid body) raises PermanentFailure with
Discord's own message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from runtime.sdk import (
    PermanentFailure,
    PluginContext,
    RetryLater,
    retry_after_seconds,
    unreachable,
)

BUCKET_KEY = "discord-bucket"
# A bucket that resets this soon is waited for within the delivery: Discord's webhook buckets
# reset within a couple of seconds, and a RetryLater per queued message would count as a
# failure towards the runtime's circuit breaker.
INLINE_WAIT_LIMIT = 2.0
USER_AGENT = "streamspace-discord/1.0 (+https://streamspace.dev)"


def seconds(value: Any) -> float | None:
    """A non-negative number of seconds from a header or JSON value, or None."""
    if value is None or value == "":
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None


def execute_url(webhook_url: str) -> URL:
    """The webhook URL with `wait=true`, so Discord answers with the created message (and
    reports a message it refuses) instead of a bare 204; other query keys, such as
    `thread_id`, are kept."""
    return URL(webhook_url).update_query(wait="true")


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def discord_error(status: int, text: str) -> str:
    """Discord's explanation of a refused request, e.g. `HTTP 404: Unknown Webhook (code
    10015)`; invalid-body answers (code 50035) also name the offending fields."""
    body = _json(text)
    if not isinstance(body, Mapping):
        detail = text.strip()[:300]
        return f"Discord answered HTTP {status}" + (f": {detail}" if detail else "")
    message = f"Discord answered HTTP {status}: {body.get('message', 'no message')}"
    if "code" in body:
        message += f" (code {body['code']})"
    if body.get("errors"):
        message += f"; errors: {orjson.dumps(body['errors']).decode()[:500]}"
    return message


@dataclass(frozen=True)
class Sent:
    status: int
    message_id: str | None


class DiscordWebhook:
    """Sends messages to one plugin's webhook; holds the bucket's reset moment in memory as
    well as in storage, so a replica that just learnt it need not read it back."""

    def __init__(self) -> None:
        self._reset_at = 0.0  # epoch seconds

    async def _bucket_reset_at(self, ctx: PluginContext) -> float:
        stored = await ctx.storage.get(BUCKET_KEY) or {}
        return max(self._reset_at, float(stored.get("resetAt", 0.0)))

    async def _remember_reset(self, ctx: PluginContext, after: float) -> None:
        self._reset_at = time.time() + after
        await ctx.storage.set(BUCKET_KEY, {"resetAt": self._reset_at})

    async def wait_for_bucket(self, ctx: PluginContext, budget: float) -> None:
        """Return once the webhook's bucket has room: a short wait is slept through, a long one
        raises RetryLater(after=wait) so the delivery is tried again when the bucket resets.
        `budget` is the delivery's time in seconds: only a wait well within it is slept."""
        wait = await self._bucket_reset_at(ctx) - time.time()
        if wait <= 0:
            return
        if wait <= min(INLINE_WAIT_LIMIT, budget / 5):
            await asyncio.sleep(wait)
            return
        raise RetryLater(f"Discord's rate limit for this webhook resets in {wait:.2f}s", after=wait)

    async def execute(self, ctx: PluginContext, message: Mapping[str, Any], budget: float) -> Sent:
        webhook_url = str(ctx.config["webhookUrl"])
        headers = {"content-type": "application/json", "user-agent": USER_AGENT}
        try:
            async with ctx.http.post(
                execute_url(webhook_url),
                data=orjson.dumps(message),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=budget),
            ) as response:
                status = response.status
                answer_headers = response.headers
                text = await response.text()
        except TimeoutError:
            raise RetryLater(f"Discord did not answer within {budget:g}s") from None
        except aiohttp.ClientError as error:
            # The webhook URL carries its token: never let it reach a delivery's error.
            reason = str(error).replace(webhook_url, "<webhook URL>")
            raise unreachable(error, "Discord", reason) from None

        if 200 <= status < 300:
            if answer_headers.get("X-RateLimit-Remaining") == "0":
                reset_after = seconds(answer_headers.get("X-RateLimit-Reset-After"))
                if reset_after:
                    await self._remember_reset(ctx, reset_after)
            body = _json(text) if text else None
            message_id = body.get("id") if isinstance(body, Mapping) else None
            return Sent(status, str(message_id) if message_id is not None else None)

        if status == 429:
            body = _json(text)
            after = seconds(body.get("retry_after")) if isinstance(body, Mapping) else None
            if after is None:
                after = seconds(answer_headers.get("X-RateLimit-Reset-After"))
            if after is None:
                after = retry_after_seconds(answer_headers.get("Retry-After"))
            scope = answer_headers.get("X-RateLimit-Scope") or (
                "global" if isinstance(body, Mapping) and body.get("global") else "webhook"
            )
            if after is not None:
                await self._remember_reset(ctx, after)
            raise RetryLater(f"Discord rate limit ({scope}) reached", after=after)

        if status >= 500:
            after = retry_after_seconds(answer_headers.get("Retry-After"))
            raise RetryLater(discord_error(status, text), after=after)
        raise PermanentFailure(discord_error(status, text))
