"""The hook runner: how a hook's call ends, as the worker and the harness both read it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from runtime.core.redaction import Redactor
from runtime.delivery.deadlines import Deadlines
from runtime.sdk import Event, PermanentFailure, RetryLater, Skip
from runtime.sdk.hook_runner import HookOutcome, TimedOut, run_hook, within

EVENT = Event("1", "session.created", {"id": "s1"})


def raising(error: BaseException) -> Any:
    async def call(hook: str, payload: Mapping[str, Any], event: Event) -> Any:
        raise error

    return call


async def answering(hook: str, payload: Mapping[str, Any], event: Event) -> Any:
    return {"hook": hook, "id": payload["id"]}


async def ran(call: Any, **options: Any) -> HookOutcome:
    return await run_hook(
        call, "on_session_created", EVENT.payload, EVENT, time_limit=10, **options
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (Skip("not mine"), ("SKIPPED", {"skipped": "not mine"}, None, None)),
        (Skip(), ("SKIPPED", {"skipped": True}, None, None)),
        (RetryLater("busy", after=30), ("RETRYING", None, "busy", 30)),
        (RetryLater(""), ("RETRYING", None, "retry later", None)),
        (PermanentFailure("gone"), ("DEAD", None, "gone", None)),
        (PermanentFailure(), ("DEAD", None, "PermanentFailure", None)),
        (ValueError("bad\x00value"), ("RETRYING", None, "ValueError: bad\ufffdvalue", None)),
    ],
)
async def test_what_a_hook_raises_is_read_as_its_outcome(
    error: Exception, expected: tuple[Any, ...]
) -> None:
    outcome = await ran(raising(error))
    assert (outcome.status, outcome.result, outcome.error, outcome.retry_after) == expected
    assert outcome.raised is error


async def test_a_result_is_kept_as_the_delivery_stores_it() -> None:
    outcome = await ran(answering)
    assert (outcome.status, outcome.result) == (
        "SUCCEEDED",
        {"hook": "on_session_created", "id": "s1"},
    )


async def test_secrets_leave_neither_in_errors_nor_in_results() -> None:
    redactor = Redactor.of_secrets({"token": "tok-SECRET-0123456789"})
    failed = await ran(raising(RuntimeError("refused tok-SECRET-0123456789")), redactor=redactor)
    assert failed.error == "RuntimeError: refused ********"

    async def echo(hook: str, payload: Mapping[str, Any], event: Event) -> Any:
        return {"echo": "tok-SECRET-0123456789"}

    assert (await ran(echo, redactor=redactor)).result == {"echo": "********"}


async def test_a_hook_past_its_deadline_is_retried_naming_the_limit() -> None:
    async def hangs(hook: str, payload: Mapping[str, Any], event: Event) -> Any:
        await asyncio.Event().wait()

    deadlines = Deadlines(0.05)
    outcome = await run_hook(hangs, "h", {}, EVENT, time_limit=0.05, deadline=deadlines.watch())
    deadlines.cancel()
    assert (outcome.status, outcome.error) == ("RETRYING", "timed out after 0.05s")


async def test_a_cancellation_is_not_an_outcome() -> None:
    """The worker hands a cancelled delivery back; it must see the cancellation."""
    started = asyncio.Event()

    async def hangs(hook: str, payload: Mapping[str, Any], event: Event) -> Any:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(ran(hangs))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- within: plugin code outside deliveries, under a time limit it cannot outstay --------


async def test_a_call_that_finishes_in_time_answers_what_it_returned() -> None:
    async def quick() -> str:
        return "done"

    assert await within(5, "quick", quick()) == "done"


async def test_a_call_that_raises_raises_the_same() -> None:
    async def failing() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await within(5, "failing", failing())


async def test_a_call_past_its_time_is_cancelled_and_named() -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    with pytest.raises(TimedOut, match=r"^on_load did not finish within 0\.05 s$"):
        await within(0.05, "on_load", forever())
    await asyncio.wait_for(cancelled.wait(), 10)


async def test_a_call_that_swallows_its_cancellation_is_not_waited_for() -> None:
    release = asyncio.Event()
    finished = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await release.wait()  # goes on after being told to stop
        finished.set()

    with pytest.raises(TimedOut):
        await within(0.05, "on_unload", stubborn())
    assert not finished.is_set()
    release.set()
    await asyncio.wait_for(finished.wait(), 10)
