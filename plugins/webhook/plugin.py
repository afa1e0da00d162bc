"""POSTs each event as `{"type", "timestamp", "data"}`, signed per Standard Webhooks.

`webhook-id` is the delivery's id, so a receiver sees the same id on every retry of one
delivery and can drop duplicates; 2xx succeeds, 429 and 5xx and timeouts are retried
(Retry-After honoured), other 4xx answers are final.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from standardwebhooks.webhooks import Webhook

from runtime.sdk import (
    Event,
    Plugin,
    PluginContext,
    RetryLater,
    Skip,
    raise_for_status,
    retry_after_seconds,
    unreachable,
)


class WebhookPlugin(Plugin):
    async def on_load(self, ctx: PluginContext) -> None:
        Webhook(str(ctx.config["secret"]))  # refuses a secret that is not base64

    async def on_event(self, ctx: PluginContext, event: Event) -> Mapping[str, Any] | None:
        wanted = ctx.config.get("events") or []
        if wanted and event.type not in wanted:
            raise Skip(f"{event.type} is not among the configured events")
        message_id = f"msg_{event.attributes.get('deliveryId', event.id)}"
        timestamp = (event.occurred_at or datetime.now(UTC)).isoformat()
        return await self.send(ctx, message_id, event.type, timestamp, event.payload)

    async def test_connection(self, ctx: PluginContext) -> Mapping[str, Any] | None:
        now = datetime.now(UTC)
        return await self.send(
            ctx, f"msg_ping_{int(now.timestamp() * 1000)}", "ping", now.isoformat(), {"ping": True}
        )

    async def send(
        self, ctx: PluginContext, message_id: str, event_type: str, timestamp: str, data: Any
    ) -> Mapping[str, Any]:
        body = orjson.dumps({"type": event_type, "timestamp": timestamp, "data": data}).decode()
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": "streamspace-webhook/1.0",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(str(ctx.config["secret"])).sign(message_id, now, body),
        }
        timeout = aiohttp.ClientTimeout(total=float(ctx.config.get("timeoutSeconds", 10)))
        try:
            async with ctx.http.post(
                str(ctx.config["url"]), data=body, headers=headers, timeout=timeout
            ) as response:
                status = response.status
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        except TimeoutError as error:
            raise RetryLater(f"the receiver did not answer in time: {error}") from None
        except aiohttp.ClientError as error:
            raise unreachable(error, "the receiver") from None
        raise_for_status(status, "the receiver", retry_after=retry_after)
        return {"status": status, "webhookId": message_id}
