"""The e-mail plugin's hooks: each lifecycle event becomes an e-mail, now or in a digest.

With `digestWindowSeconds` at 0 every event is sent as it arrives (one SMTP connection per
message) and the delivery's outcome is the SMTP server's answer. Above 0, the hook queues the
event in storage and returns `{"queued": true}`; a scheduled job sends what the window
collected as one e-mail per distinct recipient list, so per-event recipients only ever see
their own events.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.sdk import (
    LifecycleNotifier,
    Network,
    PermanentFailure,
    PluginContext,
    RetryLater,
    Skip,
    config_key,
)

from . import smtp
from .digest import MAX_PER_DIGEST, DigestQueue, Queued
from .messages import (
    COLORS,
    TemplateProblem,
    Templates,
    build_message,
    notice_item,
    template_context,
)
from .settings import Settings, read_settings

HookResult = Mapping[str, Any] | None
# How often the digest job looks at the queue when only leftovers of an earlier digest
# configuration remain (the window was turned off while events were queued).
DRAIN_INTERVAL = 5.0


def digest_tick(window: int) -> float:
    """How often the digest job looks for a closed window: a quarter of it, 0.25 s to 30 s,
    so a digest leaves at most a quarter window late without polling storage needlessly."""
    return min(max(window / 4, 0.25), 30.0)


def _honour_swallowed_cancellation() -> None:
    """Re-raise a cancellation that a library swallowed.

    aiosmtplib connects through asyncio.wait_for, which on Python 3.11 swallows a cancellation
    arriving just as the attempt ends; the task still counts the request. Without this the
    digest job, cancelled when the plugin unloads, would go on for ever and the unload with it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _sample_item() -> dict[str, Any]:
    return notice_item(
        "session.created",
        {
            "id": "sample-session",
            "user": "sample.user",
            "userId": "sample.user",
            "template": "firefox-browser",
            "templateName": "firefox-browser",
            "state": "running",
            "resources": {"memory": "512Mi", "cpu": "250m"},
        },
        include_details=True,
    )


def _test_item(settings: Settings) -> dict[str, Any]:
    item = notice_item("test", {}, include_details=False)
    item.update(
        title="Test message",
        emoji="✉️",
        color=COLORS["info"],
        fields=[
            {"title": "SMTP server", "value": f"{settings.host}:{settings.port}", "short": True},
            {"title": "Security", "value": settings.security, "short": True},
        ],
    )
    return item


class EmailPlugin(LifecycleNotifier):
    settings: Settings
    templates: Templates
    queue: DigestQueue
    network: Network

    async def on_load(self, ctx: PluginContext) -> None:
        self.network = ctx.network
        self.templates = Templates(ctx.config)
        self.settings = read_settings(ctx.config)
        # Rendered once with sample values, so a template that compiles but fails on real
        # values (an attribute of something undefined, say) is refused now, not per event.
        self.templates.render(template_context([_sample_item()], self.settings.subject_prefix))
        self.queue = DigestQueue(ctx.storage)
        self._flushing = asyncio.Lock()
        flush = functools.partial(self.flush_digest, ctx)
        if self.settings.digest_window > 0:
            ctx.scheduler.every(digest_tick(self.settings.digest_window), flush, name="digest")
        elif leftover := await self.queue.size():
            # Sent by the job, not here: loading must not wait on the SMTP server.
            ctx.log.info(f"{leftover} events are still queued from a digest: sending them")
            ctx.scheduler.every(DRAIN_INTERVAL, flush, name="digest")

    # -- the event hooks: each is one e-mail (or one digest entry) -------------------------

    async def test_connection(self, ctx: PluginContext) -> HookResult:
        """Sends a real test message to the `to` recipients; failures are reported, not
        raised, so testPlugin shows the SMTP server's answer."""
        recipients = list(self.settings.to)
        try:
            sent, message_id = await self.deliver(
                [_test_item(self.settings)], recipients, test=True
            )
        except (RetryLater, PermanentFailure) as error:
            return {"ok": False, "message": str(error)}
        return {
            "ok": True,
            "message": f"a test message was sent to {', '.join(sent.recipients)}",
            "messageId": message_id,
            "recipients": sent.recipients,
            "refused": sent.refused,
        }

    # -- sending -----------------------------------------------------------------------

    async def notify(
        self, ctx: PluginContext, event_type: str, payload: Mapping[str, Any]
    ) -> HookResult:
        switch = config_key(event_type)
        if not ctx.config.get(switch, False):
            raise Skip(f"{switch} is off")
        item = notice_item(event_type, payload, include_details=self.settings.include_details)
        if self.settings.digest_window > 0:
            await self.queue.put(item)
            return {"queued": True, "digestWindowSeconds": self.settings.digest_window}
        sent, message_id = await self.deliver([item], self.settings.recipients(event_type))
        if sent.refused:
            ctx.log.warning("some recipients were refused", event=event_type, refused=sent.refused)
        return {
            "sent": True,
            "messageId": message_id,
            "recipients": sent.recipients,
            "refused": sent.refused,
        }

    async def deliver(
        self, items: Sequence[Mapping[str, Any]], recipients: Sequence[str], *, test: bool = False
    ) -> tuple[smtp.Sent, str]:
        try:
            subject, text, html = self.templates.render(
                template_context(items, self.settings.subject_prefix, test=test)
            )
        except TemplateProblem as problem:
            raise PermanentFailure(str(problem)) from None
        message = build_message(
            sender=self.settings.sender,
            sender_name=self.settings.sender_name,
            recipients=recipients,
            subject=subject,
            text=text,
            html=html,
            event_types=[str(item["type"]) for item in items],
        )
        sent = await smtp.send(self.settings, message, recipients, self.network)
        return sent, str(message["Message-ID"])

    async def flush_digest(self, ctx: PluginContext) -> None:
        """Send the queued events whose window has closed: one e-mail per recipient list.

        A transient failure leaves the events queued for the next run; a permanent one (a
        refused recipient, failed login) is logged with the events it drops, as sending them
        again could never succeed.
        """
        async with self._flushing:
            try:
                await self._flush(ctx)
            finally:
                # Also on return: the job must end when the plugin unloads, see below.
                _honour_swallowed_cancellation()

    async def _flush(self, ctx: PluginContext) -> None:
        while True:
            batch = await self.queue.due(self.settings.digest_window)
            if not batch:
                return
            groups: dict[tuple[str, ...], list[Queued]] = {}
            for entry in batch:
                wanted = tuple(self.settings.recipients(str(entry.item.get("type"))))
                groups.setdefault(wanted, []).append(entry)
            for recipients, entries in groups.items():
                done = await self._send_digest(ctx, list(recipients), entries)
                _honour_swallowed_cancellation()
                if not done:
                    return
            if len(batch) < MAX_PER_DIGEST:
                return

    async def _send_digest(
        self, ctx: PluginContext, recipients: list[str], entries: list[Queued]
    ) -> bool:
        """True when the entries are done with (sent or dropped); False to retry later."""
        count = len(entries)
        try:
            sent, message_id = await self.deliver([e.item for e in entries], recipients)
        except RetryLater as error:
            ctx.log.warning(f"a digest of {count} events stays queued: {error}", events=count)
            return False
        except PermanentFailure as error:
            ctx.log.error(
                f"a digest of {count} events cannot be sent and is dropped: {error}",
                events=[f"{e.item.get('type')} {e.item.get('subject_id') or ''}" for e in entries],
                recipients=recipients,
            )
            await self.queue.remove(entries)
            return True
        await self.queue.remove(entries)
        ctx.log.info(
            f"sent a digest of {count} events",
            messageId=message_id,
            recipients=sent.recipients,
            refused=sent.refused,
        )
        return True
