"""streamspace-slack: session and user lifecycle notifications to a Slack incoming webhook.

Each event hook is switched by its `notifyOn…` setting (off: the delivery is SKIPPED and
nothing is sent). Messages over `rateLimit` per hour are held back (SKIPPED), counted, and the
next message that goes out says how many. Slack's answers map to the runtime's outcomes:
429 and 5xx are retried (Retry-After honoured), other 4xx are final.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from runtime.sdk import (
    HookResult,
    HourlyLimit,
    LifecycleNotifier,
    Notice,
    NoticeField,
    PermanentFailure,
    PluginContext,
    RetryLater,
    Skip,
    config_key,
    describe,
)

from .messages import build_message
from .transport import post_message

# The manifest's defaultConfig is the one source of every default: a configuration saved by an
# older version that lacks a newer setting still reads the documented default.
DEFAULTS: dict[str, Any] = orjson.loads(Path(__file__).with_name("plugin.json").read_bytes())[
    "defaultConfig"
]


def setting(ctx: PluginContext, key: str) -> Any:
    value = ctx.config.get(key)
    return DEFAULTS.get(key) if value is None else value


class SlackPlugin(LifecycleNotifier):
    def __init__(self) -> None:
        # HourlyLimit reads, changes and writes one storage value; deliveries of this plugin
        # run concurrently, so each take/give_back runs alone.
        self._limit_lock = asyncio.Lock()

    async def on_load(self, ctx: PluginContext) -> None:
        url = urlsplit(str(ctx.config.get("webhookUrl") or ""))
        # The schema's `uri` format accepts any scheme (mailto:, urn:); Slack needs HTTP(S).
        if url.scheme not in {"http", "https"} or not url.netloc:
            raise ValueError("webhookUrl must be an http(s) URL such as https://hooks.slack.com/…")
        ctx.log.info(
            "Slack notifications ready",
            host=url.hostname,
            format=setting(ctx, "format"),
            rateLimit=setting(ctx, "rateLimit"),
        )

    async def notify(
        self, ctx: PluginContext, event_type: str, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        switch = config_key(event_type)
        if not setting(ctx, switch):
            raise Skip(f"{switch} is off")
        notice = describe(event_type, payload, include_details=bool(setting(ctx, "includeDetails")))
        per_hour = int(setting(ctx, "rateLimit"))
        limit = HourlyLimit(ctx.storage, per_hour)
        async with self._limit_lock:
            allowance = await limit.take()
        if not allowance.send:
            ctx.log.warning(
                f"{event_type} held back by the rate limit of {per_hour} messages per hour",
                event=event_type,
                subject=notice.subject_id,
            )
            raise Skip(
                f"held back by the rate limit of {per_hour} messages per hour; "
                "counted and reported in the next message"
            )
        try:
            result = await self.send(ctx, notice, held_back=allowance.held_back)
        except (RetryLater, PermanentFailure):
            # Not delivered: the slot is free again and the held-back count is reported by
            # whichever message goes out next (this one on its retry, or another).
            async with self._limit_lock:
                await limit.give_back(allowance)
            raise
        return {**result, "heldBackReported": allowance.held_back}

    async def send(self, ctx: PluginContext, notice: Notice, *, held_back: int) -> dict[str, Any]:
        style = str(setting(ctx, "format"))
        body = build_message(
            notice,
            style=style,
            ts=int(datetime.now(UTC).timestamp()),
            held_back=held_back,
            identity={key: setting(ctx, key) for key in ("channel", "username", "iconEmoji")},
        )
        return {**await post_message(ctx, body), "format": style}

    async def test_connection(self, ctx: PluginContext) -> HookResult:
        """A real message to the configured webhook; outside the rate limit, since an admin
        asked for it and expects to see it."""
        notice = Notice(
            event_type="streamspace-slack.test",
            title="StreamSpace test message",
            emoji="✅",
            severity="good",
            fields=[
                NoticeField("Plugin", ctx.name),
                NoticeField("Format", str(setting(ctx, "format"))),
                NoticeField("Sent at", datetime.now(UTC).isoformat(timespec="seconds"), False),
            ],
        )
        try:
            result = await self.send(ctx, notice, held_back=0)
        except (RetryLater, PermanentFailure) as error:
            return {"ok": False, "message": str(error)}
        return {"ok": True, "message": "Slack accepted the test message", **result}
