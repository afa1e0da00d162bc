"""The durable dispatcher: claims due deliveries, runs hooks in isolation, records outcomes.

Each active plugin has its own worker with its own concurrency limit, timeout and circuit
breaker, so a plugin that hangs or fails only ever delays its own deliveries. Deliveries are
claimed with a lease (`runtime.delivery.claims`); attempts are counted at claim time, so a hook that
kills the process still runs out of attempts. A hook runs through the SDK's hook runner
(`runtime.sdk.hook_runner`), the one the testing harness runs it through too. When a delivery
runs again, and when it is DEAD, is the retry policy's to say (`runtime.delivery.retries`);
when the plugin is left alone, its circuit breaker's (`runtime.delivery.breaker`).

A worker claims ahead of its hooks: as many deliveries as it expects to finish in about
PREFETCH_SECONDS at the pace its hooks have shown (never fewer than its concurrency), and
claims again while half of them are still queued, so hooks never wait for a round trip. A
queued delivery whose lease would no longer cover a full run is given back, not run.
Outcomes are written behind the hooks, many in one statement (`runtime.delivery.outcomes`).

A worker with room takes new deliveries as they are written: the emitter reserves room
(`PluginWorker.reserve`), writes those rows already claimed by this process (RUNNING, attempt
1, under a lease) and fills the reservation once they are committed. They are never read back
or claimed, and a crash leaves them to their leases like any claim. While older deliveries may
be due in the table, they wait behind them until a claim has drained it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from runtime.core.redaction import NO_SECRETS, Redactor
from runtime.delivery.breaker import CircuitBreaker
from runtime.delivery.claims import Claimed, claim, hand_back
from runtime.delivery.deadlines import Deadlines
from runtime.delivery.event_cache import CachedEvent, EventCache
from runtime.delivery.messages import delivery_message
from runtime.delivery.outcomes import OutcomeWriter
from runtime.delivery.retries import RetryPolicy
from runtime.sdk import Event
from runtime.sdk.hook_runner import HookCaller, run_hook
from runtime.sdk.outcomes import DeliveryStatus

log = logging.getLogger(__name__)

# How long a cancelled worker waits for a claim in flight to answer, to give it back; past
# that, the claim's lease returns it.
CLAIM_SETTLE_SECONDS = 5.0
# A claim takes about this many seconds of work at the pace the plugin's hooks have shown.
PREFETCH_SECONDS = 1.0
MAX_CLAIM = 500
# Time a delivery's lease must still have, beyond the hook's timeout, for its hook to start.
LEASE_MARGIN_SECONDS = 5.0
# Outcomes run but not yet recorded past which a worker's runners wait for the recording.
MAX_UNRECORDED = MAX_CLAIM


class HookPace:
    """A moving average of how long one plugin's hooks take, for sizing its claims."""

    def __init__(self, weight: float = 0.2) -> None:
        self._weight = weight
        self.seconds: float | None = None

    def record(self, seconds: float) -> None:
        if self.seconds is None:
            self.seconds = seconds
        else:
            self.seconds += self._weight * (seconds - self.seconds)

    def rounds(self, window: float, most: int) -> int:
        """How many rounds of hooks fit in `window` seconds (1 until a hook has run)."""
        if self.seconds is None:
            return 1
        return max(1, min(most, int(window / max(self.seconds, 1e-6))))


# Publishes outcome messages, several at once (`Hub.publish_many`).
Publisher = Callable[[list[dict[str, Any]]], Awaitable[None]]


Work = tuple[Claimed, CachedEvent]


class Reservation:
    """Room a worker keeps for deliveries the emitter is writing as claimed by this process.

    Example:
        reservation = worker.reserve(40)       # None: no room (count: as many as it has)
        ... write reservation.count rows RUNNING, attempt 1, until reservation.lease_expires_at
        reservation.fill(works)                # once committed; or reservation.cancel()
    """

    def __init__(self, worker: PluginWorker, count: int, behind: bool = False) -> None:
        self._worker = worker
        self.count = count
        # Whether older deliveries may be due in the table when it was made.
        self.behind = behind
        # The worker's clock first, the rows' second: the worker never counts on more lease
        # than the rows hold.
        self.lease_until = time.monotonic() + worker.lease
        self.lease_expires_at = datetime.now(UTC) + timedelta(seconds=worker.lease)
        self._open = True

    def fill(self, works: list[Work]) -> None:
        """Queue the committed deliveries (at most `count`) to run."""
        if self._close():
            self._worker._take(works, self.behind)

    def cancel(self) -> None:
        """The rows were not written: give the room back."""
        self._close()

    def _close(self) -> bool:
        was_open, self._open = self._open, False
        if was_open:
            self._worker._reserved -= self.count
        return was_open


class PluginWorker:
    """Runs one plugin's deliveries: at most `concurrency` at once, each under `timeout`."""

    def __init__(
        self,
        plugin: str,
        call_hook: HookCaller,
        publish: Publisher,
        on_breaker: Callable[[str], Awaitable[None]],
        *,
        policy: RetryPolicy,
        timeout: float,
        concurrency: int,
        poll_interval: float,
        breaker: CircuitBreaker | None = None,
        outcomes: OutcomeWriter | None = None,
        events: EventCache | None = None,
        pace: HookPace | None = None,
        redactor: Redactor = NO_SECRETS,
    ) -> None:
        self.plugin = plugin
        # Every error and result of this plugin's hooks passes through it before it is kept.
        self._redactor = redactor
        self._call_hook = call_hook
        self._publish = publish
        self._on_breaker = on_breaker
        self._policy = policy
        self._timeout = timeout
        self._deadlines = Deadlines(timeout)
        self._concurrency = concurrency
        self._poll = poll_interval
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.breaker = breaker or CircuitBreaker()
        self._outcomes = outcomes or OutcomeWriter()
        self._events = events if events is not None else EventCache()
        self._pace = pace or HookPace()
        self._queue: deque[Work] = deque()
        # Deliveries written claimed while older ones may be due in the table: they run once
        # a claim has drained the table, so the older go first.
        self._behind: list[Work] = []
        self._runners: set[asyncio.Task[None]] = set()
        self._busy = 0
        self._reports: list[Work] = []
        self._reporter: asyncio.Task[None] | None = None
        self._reserved = 0
        self._claiming = False
        self._background: set[asyncio.Task[None]] = set()
        # When retries written fall due (loop time, earliest first), and the timer for it.
        self._retries_due: list[float] = []
        self._retry_timer: asyncio.TimerHandle | None = None
        # Whether due deliveries may wait in the table: new ones then wait their turn behind
        # them (`_behind`). `_wakes` counts the notices of new rows, so a claim that ran
        # meanwhile does not clear it.
        self._backlog = True
        self._wakes = 0

    @property
    def lease(self) -> float:
        return self._timeout * 2 + LEASE_MARGIN_SECONDS

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name=f"worker:{self.plugin}")

    def wake(self) -> None:
        """New due deliveries are in the table."""
        self._wakes += 1
        self._backlog = True
        self._wake.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming; give back what is queued; let running deliveries finish within
        `grace`, then hand them back; write every outcome produced.

        The loop is asked to stop rather than only cancelled: on Python 3.11 a cancellation
        that arrives as `wait_for` completes is swallowed, and the loop would go on for ever.
        """
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            _, unfinished = await asyncio.wait({self._loop_task}, timeout=grace)
            if unfinished:
                self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await self._give_back(self._take_queue())
        if self._runners:
            _, pending = await asyncio.wait(self._runners, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if pending:
                log.info(
                    "handed back deliveries still running at stop",
                    extra={"plugin": self.plugin, "deliveries": len(pending)},
                )
        if self._reporter is not None:
            await asyncio.gather(self._reporter, return_exceptions=True)
        if self._retry_timer is not None:
            self._retry_timer.cancel()
        self._deadlines.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    # -- claiming ------------------------------------------------------------------------

    def _depth(self) -> int:
        """How many deliveries to hold (queued and running) at the hooks' current pace."""
        rounds = self._pace.rounds(PREFETCH_SECONDS, MAX_CLAIM // max(1, self._concurrency))
        return max(self._concurrency, min(MAX_CLAIM, self._concurrency * rounds))

    def _wants_more(self) -> bool:
        return len(self._queue) <= self._depth() // 2

    async def _loop(self) -> None:
        # The table is looked at when deliveries may be due there, and at every poll (what
        # another replica wrote without a notice reaching us, leases that ran out); waking
        # for anything else (a runner done, deliveries handed over) claims nothing.
        polled = True
        while not self._stopping:
            if polled or self._backlog:
                try:
                    await self._top_up()
                except Exception:
                    log.exception("claiming deliveries failed", extra={"plugin": self.plugin})
            self._start_runners()
            if self._stopping:
                return
            try:
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()
                polled = False
            except TimeoutError:
                polled = True
            self._wake.clear()

    async def _top_up(self) -> None:
        if not self._wants_more():
            return
        # What waits behind the table is not counted: the claims must drain it to free them.
        held = len(self._queue) + self._busy + self._reserved
        allowance = self.breaker.allowance(self._depth() - held)
        wakes = self._wakes
        claiming = asyncio.ensure_future(self._claim_with_events(allowance))
        claiming.add_done_callback(self._claim_done)
        try:
            claimed = await asyncio.shield(claiming)
        except asyncio.CancelledError:
            # A stop that cannot wait: the claim may be committed already, and what it took
            # goes back rather than staying RUNNING until its lease runs out.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLAIM_SETTLE_SECONDS):
                    await hand_back([delivery for delivery, _ in await claiming])
            raise
        if self._stopping:
            await self._give_back([delivery for delivery, _ in claimed])
            return
        self._queue.extend(claimed)
        if allowance > 0 and len(claimed) < allowance and wakes == self._wakes:
            # The table is drained: what was written claimed meanwhile goes next.
            self._backlog = False
            self._queue.extend(self._behind)
            self._behind.clear()

    def _claim_done(self, _: asyncio.Future[list[Work]]) -> None:
        self._claiming = False

    async def _claim_with_events(self, limit: int) -> list[Work]:
        """Claim due deliveries with their events; a failed read gives the claims back, and
        a delivery whose event is gone meanwhile (retention) is given back to go with it."""
        self._claiming = True
        deliveries = await claim(self.plugin, limit, self.lease)
        if not deliveries:
            return []
        try:
            events = await self._events.get_many(d.event_id for d in deliveries)
        except Exception:
            await hand_back(deliveries)
            raise
        orphans = [d for d in deliveries if d.event_id not in events]
        if orphans:
            await hand_back(orphans)
        return [(d, events[d.event_id]) for d in deliveries if d.event_id in events]

    # -- deliveries written as claimed ----------------------------------------------------

    def reserve(self, wanted: int) -> Reservation | None:
        """Room for up to `wanted` deliveries about to be written as claimed by this worker;
        None when it is not running, its breaker is open or it holds a claim's worth
        already. While due deliveries may wait in the table, those written claimed run
        after them.

        A worker that refused new deliveries while it had due ones in the table would
        have them written due too, and under a steady flow of events it would never stop
        claiming: each claim would find the ones written while it ran."""
        if self._loop_task is None or self._stopping or self.breaker.open:
            return None
        held = len(self._queue) + len(self._behind) + self._busy + self._reserved
        count = min(wanted, self._depth() - held)
        # Older deliveries may be due in the table: these run after them.
        behind = self._backlog
        if count < wanted:
            # The rest are written due: the deliveries after them wait behind them.
            self._backlog = True
        if count <= 0:
            return None
        self._reserved += count
        return Reservation(self, count, behind)

    def _take(self, works: list[Work], behind: bool) -> None:
        if self._stopping or self.breaker.open:
            self._later(self._give_back([delivery for delivery, _ in works]))
            return
        if behind and self._backlog:
            self._behind.extend(works)
            self._wake.set()  # the claim that lets them go
            return
        self._queue.extend(works)
        self._start_runners()

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"give-back:{self.plugin}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _take_queue(self) -> list[Claimed]:
        taken = [delivery for delivery, _ in [*self._queue, *self._behind]]
        self._queue.clear()
        self._behind.clear()
        return taken

    async def _give_back(self, deliveries: list[Claimed]) -> None:
        if not deliveries:
            return
        self._backlog = True  # due again in the table, ahead of what comes next
        try:
            await hand_back(deliveries)
        except Exception:
            # Their leases give them back when they run out.
            log.exception(
                "giving deliveries back failed",
                extra={"plugin": self.plugin, "deliveries": len(deliveries)},
            )

    # -- running -------------------------------------------------------------------------

    def _start_runners(self) -> None:
        wanted = min(self._concurrency - len(self._runners), len(self._queue))
        for _ in range(wanted):
            task = asyncio.create_task(self._runner(), name=f"runner:{self.plugin}")
            self._runners.add(task)
            task.add_done_callback(self._runner_done)

    def _runner_done(self, task: asyncio.Task[None]) -> None:
        self._runners.discard(task)
        self._wake.set()

    async def _runner(self) -> None:
        task = asyncio.current_task()
        while self._queue and not self._stopping:
            reporter = self._reporter
            if len(self._reports) >= MAX_UNRECORDED and reporter and not reporter.done():
                # The database or the broadcast is slower than the hooks: wait for them rather
                # than run ahead of what is recorded.
                await asyncio.wait({reporter})
                continue
            delivery, event = self._queue.popleft()
            if time.monotonic() + self._timeout + LEASE_MARGIN_SECONDS > delivery.lease_until:
                await self._give_back([delivery, *self._stale()])
                continue
            self._busy += 1
            try:
                await self._run(delivery, event, task)
            except Exception:
                # The hook's own failures are outcomes; this is the worker's (its breaker's
                # status change, say): the delivery's lease returns it if nothing recorded it.
                log.exception("running a delivery failed", extra={"plugin": self.plugin})
            finally:
                self._busy -= 1
            if self._backlog and not self._claiming and self._wants_more():
                self._wake.set()
                # Hooks that never wait never let the claim start: without these turns it
                # would start only once the queue ran dry, and the hooks would wait for it.
                await asyncio.sleep(0)

    def _stale(self) -> list[Claimed]:
        """Queued deliveries whose leases would run out during a run (the oldest first)."""
        horizon = time.monotonic() + self._timeout + LEASE_MARGIN_SECONDS
        stale: list[Claimed] = []
        while self._queue and self._queue[0][0].lease_until < horizon:
            stale.append(self._queue.popleft()[0])
        return stale

    async def _run(
        self, delivery: Claimed, event: CachedEvent, task: asyncio.Task[Any] | None = None
    ) -> None:
        payload = event.payload()
        sdk_event = Event(
            id=str(event.id),
            type=event.type,
            payload=payload,
            occurred_at=event.occurred_at,
            attributes={"deliveryId": str(delivery.id), "attempt": delivery.attempts},
        )
        started = time.perf_counter()
        try:
            ran = await run_hook(
                self._call_hook,
                delivery.hook,
                payload,
                sdk_event,
                time_limit=self._timeout,
                deadline=self._deadlines.watch(task),
                redactor=self._redactor,
            )
        except asyncio.CancelledError:
            # Shutdown: hand the delivery back for this or another process to run.
            await hand_back([delivery])
            raise
        seconds = time.perf_counter() - started
        self._pace.record(seconds)
        status = self._policy.settle(ran.status, delivery.attempts)
        delivery.duration_ms = round(seconds * 1000, 3)
        delivery.status, delivery.result, delivery.error = status, ran.result, ran.error
        if status == DeliveryStatus.RETRYING:
            delay = self._policy.delay(delivery.attempts, ran.retry_after)
            delivery.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
        self._reports.append((delivery, event))
        if self._reporter is None or self._reporter.done():
            self._reporter = asyncio.create_task(self._report(), name=f"outcomes:{self.plugin}")
        change = self.breaker.judge(status, ran.retry_after)
        if change:
            await self._breaker_changed(change)

    # -- reporting -----------------------------------------------------------------------

    async def _report(self) -> None:
        """Write the outcomes produced so far, then publish the ones written."""
        while self._reports:
            reports, self._reports = self._reports, []
            # The rows change when they are written: one time for the batch, and one text.
            now = datetime.now(UTC)
            for delivery, _ in reports:
                delivery.updated_at = now
            texts = {now: now.isoformat()}
            try:
                written = await self._outcomes.write_many([d for d, _ in reports])
                self._wake_when_due(
                    delivery
                    for (delivery, _), ok in zip(reports, written, strict=True)
                    if ok and delivery.status == DeliveryStatus.RETRYING
                )
                messages = [
                    {"delivery": delivery_message(delivery, texts), "event": event.message}
                    for (delivery, event), ok in zip(reports, written, strict=True)
                    if ok
                ]
                if messages:
                    await self._publish(messages)
            except Exception:
                # Unwritten outcomes are not lost work: their leases run out and they run again.
                log.exception("recording outcomes failed", extra={"plugin": self.plugin})

    def _wake_when_due(self, retries: Iterable[Claimed]) -> None:
        """Wake the worker when each retry written falls due: it is then due in the table,
        and new deliveries wait behind it. One timer stands for the earliest."""
        loop = asyncio.get_running_loop()
        now = datetime.now(UTC)
        for delivery in retries:
            due = delivery.next_attempt_at or now
            heapq.heappush(self._retries_due, loop.time() + (due - now).total_seconds())
        self._arm_retry_timer()

    def _arm_retry_timer(self) -> None:
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        if self._retries_due and not self._stopping:
            loop = asyncio.get_running_loop()
            self._retry_timer = loop.call_at(self._retries_due[0], self._retries_fell_due)

    def _retries_fell_due(self) -> None:
        self._retry_timer = None
        now = asyncio.get_running_loop().time()
        while self._retries_due and self._retries_due[0] <= now:
            heapq.heappop(self._retries_due)
        self.wake()
        self._arm_retry_timer()

    async def _breaker_changed(self, change: str) -> None:
        if change == "opened":
            # What is queued waits for the breaker's probe instead of failing in turn.
            await self._give_back(self._take_queue())
        await self._on_breaker(change)
