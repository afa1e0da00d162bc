"""The hooks of streamspace-teams: each lifecycle event, when switched on, becomes one card.

The path of one notification: the event's `notifyOn…` switch (off: SKIPPED), the hourly rate
limit (over it: counted and SKIPPED; the count is reported in the next card that goes out), then
one POST. A failed POST gives its rate-limit slot back, so a retried delivery is not counted
twice and the held-back count it carried is reported by a later card instead of being lost.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runtime.sdk import (
    HookResult,
    HourlyLimit,
    LifecycleNotifier,
    Notice,
    NoticeField,
    PluginContext,
    Skip,
    config_key,
    describe,
)

from . import cards, transport

# The manifest's defaults, so an installation made before a switch existed behaves as a new one.
DEFAULTS: dict[str, Any] = json.loads(
    (Path(__file__).with_name("plugin.json")).read_text(encoding="utf-8")
)["defaultConfig"]


def setting(ctx: PluginContext, key: str) -> Any:
    return ctx.config.get(key, DEFAULTS.get(key))


class TeamsPlugin(LifecycleNotifier):
    def __init__(self) -> None:
        super().__init__()
        # HourlyLimit reads and writes its window in storage; deliveries of this plugin run
        # concurrently, so counting is serialised here to not lose an increment.
        self._counting = asyncio.Lock()

    async def on_load(self, ctx: PluginContext) -> None:
        card_format = setting(ctx, "cardFormat")
        if card_format not in cards.FORMATS:
            raise ValueError(f"cardFormat must be one of {', '.join(cards.FORMATS)}")
        ctx.log.info("streamspace-teams ready", cardFormat=card_format)

    # -- session and user hooks: one card each -----------------------------------------------

    # -- testPlugin -------------------------------------------------------------------------

    async def test_connection(self, ctx: PluginContext) -> HookResult:
        """Send a real card; it neither counts against nor reports the rate limit, because an
        admin pressing "test" should see the result now without disturbing notifications."""
        notice = Notice(
            event_type="test",
            title="StreamSpace test notification",
            emoji="✅",
            severity="good",
            fields=[
                NoticeField("Plugin", "streamspace-teams"),
                NoticeField("Card format", str(setting(ctx, "cardFormat"))),
                NoticeField("Result", "This channel will receive StreamSpace notifications."),
            ],
        )
        try:
            answer = await self.send(ctx, notice, held_back=0)
        except Exception as error:
            # testPlugin reports {"ok": false} itself: the admin reads Teams' own reason.
            return {"ok": False, "message": str(error)}
        return {
            "ok": True,
            "message": f"Teams accepted the test card (HTTP {answer.status})",
            "status": answer.status,
            "cardFormat": setting(ctx, "cardFormat"),
        }

    # -- the shared path ----------------------------------------------------------------------

    async def notify(
        self, ctx: PluginContext, event_type: str, payload: Mapping[str, Any]
    ) -> HookResult:
        switch = config_key(event_type)
        if not setting(ctx, switch):
            raise Skip(f"{switch} is off")
        notice = describe(event_type, payload, include_details=bool(setting(ctx, "includeDetails")))
        per_hour = int(setting(ctx, "rateLimit"))
        limit = HourlyLimit(ctx.storage, per_hour)
        async with self._counting:
            allowance = await limit.take()
        if not allowance.send:
            ctx.log.info("notification held back by the rate limit", eventType=event_type)
            raise Skip(
                f"over the rate limit of {per_hour} messages per hour; "
                "counted and reported in the next message"
            )
        try:
            answer = await self.send(ctx, notice, held_back=allowance.held_back)
        except BaseException:
            async with self._counting:
                await limit.give_back(allowance)
            raise
        return {
            "status": answer.status,
            "cardFormat": setting(ctx, "cardFormat"),
            "heldBack": allowance.held_back,
        }

    async def send(self, ctx: PluginContext, notice: Notice, *, held_back: int) -> transport.Answer:
        body = cards.build(
            str(setting(ctx, "cardFormat")), notice, held_back=held_back, at=datetime.now(UTC)
        )
        # Below the hook timeout (the manifest's matches this setting's default), so a slow
        # Teams ends here with a clear error and the rate-limit slot given back, not by the
        # hook being cancelled.
        timeout = max(1.0, float(setting(ctx, "timeoutSeconds")) * 0.8)
        return await transport.post(ctx.http, str(ctx.config["webhookUrl"]), body, timeout)
