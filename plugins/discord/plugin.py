"""Discord notifications for every session and user lifecycle event.

Each hook checks its `notifyOn…` switch (off: SKIPPED), waits for Discord's rate-limit bucket,
takes a slot of the hourly `rateLimit` (over it: SKIPPED, counted, and reported by the next
message that goes out), then posts one embed through the channel webhook.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from runtime.sdk import (
    HourlyLimit,
    LifecycleNotifier,
    PermanentFailure,
    PluginContext,
    RetryLater,
    Skip,
    config_key,
    describe,
)

from .client import DiscordWebhook, Sent
from .messages import held_back_note, notice_embed, ping_embed, webhook_message

DEFAULT_TIMEOUT = 10.0
# Of the delivery's time (`timeoutSeconds`, which the manifest's hook timeout matches), the HTTP
# call gets this share, so a slow Discord ends in our own message rather than a hook timeout.
HTTP_SHARE = 0.75


class DiscordPlugin(LifecycleNotifier):
    def __init__(self) -> None:
        self.webhook = DiscordWebhook()

    async def on_load(self, ctx: PluginContext) -> None:
        # format: uri also admits mailto: and urn: URIs; only an HTTP(S) URL can be executed.
        for key in ("webhookUrl", "avatarUrl"):
            value = ctx.config.get(key)
            if value and not str(value).lower().startswith(("https://", "http://")):
                raise ValueError(f"{key} must be an http:// or https:// URL")

    # -- sending -------------------------------------------------------------------------

    async def notify(
        self, ctx: PluginContext, event_type: str, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        switch = config_key(event_type)
        if not ctx.config.get(switch, False):
            raise Skip(f"{switch} is off")
        timeout = float(ctx.config.get("timeoutSeconds") or DEFAULT_TIMEOUT)
        # Before taking a slot of the hourly limit: a delivery told to come back later must
        # not use one up.
        await self.webhook.wait_for_bucket(ctx, timeout)
        per_hour = int(ctx.config.get("rateLimit", 20))
        limit = HourlyLimit(ctx.storage, per_hour)
        allowance = await limit.take()
        if not allowance.send:
            raise Skip(
                f"held back by the rate limit of {per_hour} messages per hour; "
                "the next message reports it"
            )
        notice = describe(
            event_type, payload, include_details=bool(ctx.config.get("includeDetails"))
        )
        # The specific hooks receive the payload only, not the event's occurredAt; the hook
        # runs as the event is delivered, so its own time is the event's to within the
        # delivery delay.
        message = webhook_message(
            notice_embed(notice, datetime.now(UTC)),
            username=ctx.config.get("username"),
            avatar_url=ctx.config.get("avatarUrl"),
            content=held_back_note(allowance.held_back),
        )
        try:
            sent = await self.webhook.execute(ctx, message, timeout * HTTP_SHARE)
        except BaseException:
            # Not delivered (it will be retried, or is dead): the slot and the held-back count
            # go back, so the count is reported by whichever message does arrive.
            await limit.give_back(allowance)
            raise
        return _result(sent, held_back=allowance.held_back)

    async def test_connection(self, ctx: PluginContext) -> dict[str, Any]:
        """testPlugin: a real embed to the channel. Not counted against `rateLimit`."""
        timeout = float(ctx.config.get("timeoutSeconds") or DEFAULT_TIMEOUT)
        message = webhook_message(
            ping_embed(ctx.name, datetime.now(UTC)),
            username=ctx.config.get("username"),
            avatar_url=ctx.config.get("avatarUrl"),
        )
        try:
            await self.webhook.wait_for_bucket(ctx, timeout)
            sent = await self.webhook.execute(ctx, message, timeout * HTTP_SHARE)
        except (RetryLater, PermanentFailure) as error:
            return {"ok": False, "message": str(error)}
        return {"ok": True, "message": "a test message was posted to the channel", **_result(sent)}


def _result(sent: Sent, held_back: int = 0) -> dict[str, Any]:
    """A delivery's result: Discord's answer and the created message's id."""
    result: dict[str, Any] = {"status": sent.status, "messageId": sent.message_id}
    if held_back:
        result["heldBack"] = held_back
    return result
