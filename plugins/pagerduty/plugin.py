"""PagerDuty incidents from StreamSpace events, through the Events API v2.

Only `on_event` is implemented, so the runtime sends it every event type the plugin may see
(lifecycle ones included) and the configured lists decide: `triggerOn` opens an incident,
`acknowledgeOn` acknowledges and `resolveOn` resolves the open incident of the same dedup key;
every other type is skipped.

Open incidents are kept in the plugin's storage (`open:<dedup key>`), so a recovery resolves
only what this plugin opened and a `session.started` with no incident before it sends nothing.
Deliveries run concurrently and retry out of order, so two safeguards keep an incident from
staying open by mistake: events of one dedup key are handled one at a time, and a recovery that
finds no open incident leaves a short-lived marker (`recovered:<dedup key>`) that makes an
older failure still being retried skip instead of opening an incident after its recovery.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from runtime.sdk import Event, PermanentFailure, Plugin, PluginContext, RetryLater, Skip

from .client import send_event
from .events_api import Settings, dedup_key, follow_up_body, trigger_body

OPEN = "open:"
RECOVERED = "recovered:"
# Longer than a failing trigger keeps being retried in practice (8 attempts with backoff).
RECOVERY_MEMORY = timedelta(hours=1)
PRUNE_EVERY_SECONDS = 600.0


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse(text: Any) -> datetime | None:
    try:
        return _aware(datetime.fromisoformat(str(text)))
    except ValueError:
        return None


class PagerDutyPlugin(Plugin):
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}

    async def on_load(self, ctx: PluginContext) -> None:
        Settings.of(ctx.config)  # a type in two lists or a bad template fails the load, clearly

    async def on_enable(self, ctx: PluginContext) -> None:
        async def prune() -> None:
            await self.forget_old_recoveries(ctx)

        ctx.scheduler.every(PRUNE_EVERY_SECONDS, prune, name="forget-old-recoveries")

    async def on_event(self, ctx: PluginContext, event: Event) -> Mapping[str, Any] | None:
        settings = Settings.of(ctx.config)
        action = settings.action_for(event.type)
        if action is None:
            raise Skip(f"{event.type} is in none of triggerOn, acknowledgeOn, resolveOn")
        key = dedup_key(settings.dedup_template, event.type, event.payload, event.id)
        async with self._one_at_a_time(key):
            if action == "trigger":
                return await self._trigger(ctx, settings, event, key)
            return await self._follow_up(ctx, settings, event, key, action)

    async def test_connection(self, ctx: PluginContext) -> Mapping[str, Any] | None:
        """Trigger an `info` test incident and resolve it at once, leaving nothing open."""
        settings = Settings.of(ctx.config)
        now = datetime.now(UTC)
        key = f"streamspace/test/{int(now.timestamp() * 1000)}"
        payload = {"test": True, "plugin": ctx.name}
        body = trigger_body(
            settings,
            event_type="streamspace.test",
            event_id=key,
            payload=payload,
            key=key,
            occurred_at=now,
            severity="info",
        )
        body["payload"]["summary"] = "StreamSpace connection test (resolved at once, no action)"
        try:
            triggered = await send_event(ctx.http, settings.events_url, body, settings.timeout)
            resolved = await send_event(
                ctx.http,
                settings.events_url,
                follow_up_body(settings, "resolve", key),
                settings.timeout,
            )
        except (RetryLater, PermanentFailure) as error:
            return {"ok": False, "message": str(error), "dedupKey": key}
        return {
            "ok": True,
            "message": "a test incident was triggered and resolved",
            "dedupKey": key,
            "trigger": triggered,
            "resolve": resolved,
        }

    async def forget_old_recoveries(self, ctx: PluginContext, now: datetime | None = None) -> int:
        """Drop recovery markers no retried trigger can still need; how many were dropped."""
        cutoff = (now or datetime.now(UTC)) - RECOVERY_MEMORY
        dropped = 0
        for name in await ctx.storage.keys(RECOVERED):
            marker = await ctx.storage.get(name) or {}
            moment = _parse(marker.get("at")) if isinstance(marker, Mapping) else None
            if moment is None or moment < cutoff:
                dropped += int(await ctx.storage.delete(name))
        return dropped

    # -- the three actions ---------------------------------------------------------------

    async def _trigger(
        self, ctx: PluginContext, settings: Settings, event: Event, key: str
    ) -> Mapping[str, Any]:
        occurred = _aware(event.occurred_at)
        marker = await ctx.storage.get(RECOVERED + key)
        if isinstance(marker, Mapping):
            recovered = _parse(marker.get("at"))
            if recovered is not None and recovered > occurred:
                raise Skip(f"{key} recovered at {recovered.isoformat()}, after this event")
            await ctx.storage.delete(RECOVERED + key)
        severity = settings.severity_for(event.type)
        body = trigger_body(
            settings,
            event_type=event.type,
            event_id=event.id,
            payload=event.payload,
            key=key,
            occurred_at=occurred,
            severity=severity,
        )
        answer = await send_event(ctx.http, settings.events_url, body, settings.timeout)
        await ctx.storage.set(
            OPEN + key,
            {
                "triggeredAt": occurred.isoformat(),
                "eventId": event.id,
                "eventType": event.type,
                "severity": severity,
            },
        )
        ctx.log.info("incident triggered", dedupKey=key, eventType=event.type, severity=severity)
        return {"action": "trigger", "severity": severity, **answer, "dedupKey": key}

    async def _follow_up(
        self, ctx: PluginContext, settings: Settings, event: Event, key: str, action: str
    ) -> Mapping[str, Any]:
        occurred = _aware(event.occurred_at)
        incident = await ctx.storage.get(OPEN + key)
        if not isinstance(incident, Mapping):
            if action == "resolve":
                await ctx.storage.set(RECOVERED + key, {"at": occurred.isoformat()})
            raise Skip(f"no open incident for {key}")
        triggered = _parse(incident.get("triggeredAt"))
        if triggered is not None and triggered > occurred:
            # An older recovery arriving late must not close a newer failure's incident.
            raise Skip(f"the open incident of {key} was triggered after this event")
        body = follow_up_body(settings, action, key)
        answer = await send_event(ctx.http, settings.events_url, body, settings.timeout)
        if action == "resolve":
            await ctx.storage.delete(OPEN + key)
        else:
            await ctx.storage.set(OPEN + key, {**incident, "acknowledgedAt": occurred.isoformat()})
        ctx.log.info(f"incident {action}d", dedupKey=key, eventType=event.type)
        return {"action": action, **answer, "dedupKey": key}

    @asynccontextmanager
    async def _one_at_a_time(self, key: str) -> AsyncIterator[None]:
        """Serialise the events of one dedup key; the lock is dropped when nobody waits."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key]
                self._locks.pop(key, None)
