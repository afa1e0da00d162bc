"""One hook run, the same in production and in a plugin's unit test.

The worker (runtime.delivery.worker) and `PluginHarness` (runtime.sdk.testing) both call a
plugin's hooks through `PluginHooks` and judge how a call ended with `run_hook`, so a plugin
meets the same rules under both: the payload fields its permissions let it see, `ctx.event`
set for the call, a result kept as the delivery stores it (a plain string as `{"value": ...}`,
what JSON cannot hold as its text), what it raised read as an outcome, its secrets redacted.
Neither needs the database; the retry policy then settles the delivery's own status (a retry
after the last attempt is DEAD: runtime.delivery.retries). A plugin's other code (on_load,
on_enable, on_disable, on_unload, its connection test and its actions) runs `within` the same
time limit, for the host and the harness alike.

Example:
    hooks = PluginHooks(plugin, ctx, ["sessions:read"])
    ran = await run_hook(hooks, "on_session_created", payload, event, time_limit=10.0)
    ran.status, ran.result, ran.error       # ('SKIPPED', {'skipped': 'not mine'}, None)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from runtime.core.redaction import NO_SECRETS, Redactor
from runtime.db.storable import storable_json, storable_text
from runtime.sdk import Plugin
from runtime.sdk.context import CURRENT_EVENT, PluginContext
from runtime.sdk.event_catalog import Event, visible_payload
from runtime.sdk.outcomes import DeliveryStatus, PermanentFailure, RetryLater, Skip

# Seconds a hook may run when its plugin names no timeout.
DEFAULT_TIMEOUT = 10.0
# Calls hook `hook` with the delivery's payload and its event; answers the hook's result.
HookCaller = Callable[[str, Mapping[str, Any], Event], Awaitable[Any]]
T = TypeVar("T")


class PluginHooks:
    """Calls one plugin's hooks as the runtime does: a `HookCaller`."""

    __slots__ = ("_context", "_permissions", "_plugin")

    def __init__(self, plugin: Plugin, context: PluginContext, permissions: Sequence[str]) -> None:
        self._plugin = plugin
        self._context = context
        # Kept as given: the harness's permissions may change between two of its events.
        self._permissions = permissions

    async def __call__(self, hook: str, payload: Mapping[str, Any], event: Event) -> Any:
        # A plugin sees only the payload fields its permissions allow. The payload is the
        # delivery's own copy: one that hides nothing is passed on as it is.
        seen = visible_payload(payload, self._permissions)
        if seen is not payload:
            event = Event(event.id, event.type, seen, event.occurred_at, event.attributes)
        token = CURRENT_EVENT.set(event)
        try:
            if hook == "on_event":
                return await self._plugin.on_event(self._context, event)
            return await getattr(self._plugin, hook)(self._context, seen)
        finally:
            CURRENT_EVENT.reset(token)


@dataclass(frozen=True, slots=True)
class HookOutcome:
    """How a hook ended: SUCCEEDED, SKIPPED, RETRYING or DEAD (before the retry policy has
    its say), with the result and error as a delivery stores them and what the hook raised."""

    status: DeliveryStatus
    result: Any = None
    error: str | None = None
    retry_after: float | None = None
    raised: BaseException | None = None


async def run_hook(
    call: HookCaller,
    hook: str,
    payload: Mapping[str, Any],
    event: Event,
    *,
    time_limit: float,
    deadline: AbstractContextManager[object] | None = None,
    redactor: Redactor = NO_SECRETS,
) -> HookOutcome:
    """Run one hook under `deadline` (which raises TimeoutError once `time_limit` seconds have
    passed) and judge how it ended. A cancellation is not an outcome: it propagates."""
    try:
        with deadline if deadline is not None else nullcontext():
            result = stored_result(await call(hook, payload, event), redactor)
    except TimeoutError as overrun:
        return _failed(
            DeliveryStatus.RETRYING, f"timed out after {time_limit:g}s", redactor, overrun
        )
    except Skip as skip:
        reason = storable_text(redactor.text(str(skip)))
        return HookOutcome(DeliveryStatus.SKIPPED, {"skipped": reason or True}, raised=skip)
    except PermanentFailure as failure:
        return _failed(
            DeliveryStatus.DEAD, str(failure) or type(failure).__name__, redactor, failure
        )
    except RetryLater as later:
        text = str(later) or "retry later"
        return _failed(DeliveryStatus.RETRYING, text, redactor, later, later.after)
    except Exception as failure:
        return _failed(
            DeliveryStatus.RETRYING, f"{type(failure).__name__}: {failure}", redactor, failure
        )
    return HookOutcome(DeliveryStatus.SUCCEEDED, result)


def _failed(
    status: DeliveryStatus,
    error: str,
    redactor: Redactor,
    raised: BaseException,
    retry_after: float | None = None,
) -> HookOutcome:
    return HookOutcome(status, None, storable_text(redactor.text(error)), retry_after, raised)


def stored_result(result: Any, redactor: Redactor = NO_SECRETS) -> Any:
    """A hook's result as the JSON column stores it.

    Tortoise reads a `str` given to a JSONField as JSON text already encoded (and refuses
    one that is not), so a plain string is kept as `{"value": ...}`, and so is the text of a
    value JSON cannot hold. A NUL in it is stored replaced (runtime.db.storable): one result
    PostgreSQL refuses would fail its whole batch. A plugin may echo one of its secrets in
    its result: the encoded text is searched for them in one pass, and only a result that
    holds one is walked to replace it.
    """
    if result is None:
        return None
    try:
        encoded = orjson.dumps(result)
    except TypeError:
        return {"value": storable_text(redactor.secrets_in(repr(result)))}
    value = orjson.loads(encoded)
    if redactor.holds_secret(encoded):
        value = redactor.result(value)
    value = storable_json(value, encoded)
    return {"value": value} if isinstance(value, str) else value


class TimedOut(Exception):
    """Plugin code did not finish in time; the message says which and how long it had."""


def _settle(task: asyncio.Future[Any]) -> None:
    # Read what the abandoned call ended with, so asyncio never reports it as unretrieved.
    if not task.cancelled():
        task.exception()


async def within(seconds: float, what: str, call: Awaitable[T]) -> T:
    """`call`'s result, or TimedOut ("<what> did not finish within <seconds> s").

    For plugin code outside deliveries, which is rare: each call gets a task and a timer of
    its own (event hooks share their worker's, runtime.delivery.deadlines). The task is
    cancelled at the deadline and not waited for, so plugin code that swallows the
    cancellation cannot hold its caller (the host's start-up, an install, a request) any
    longer.
    """
    task = asyncio.ensure_future(call)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_settle)
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_settle)
        raise TimedOut(f"{what} did not finish within {seconds:g} s")
    return task.result()
