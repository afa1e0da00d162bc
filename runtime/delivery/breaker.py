"""The circuit breaker of one plugin: it stops claiming while the plugin's hooks keep failing.

After `threshold` consecutive failures the breaker opens (the host shows the plugin DEGRADED
and its queue goes back to the table); while open, one delivery is let through per `cooldown`
as a probe, and the first success closes it again. A skipped event is an answer, and a
vendor's "slow down" (a Retry-After) is the vendor working as designed: neither counts.

Example:
    >>> breaker = CircuitBreaker(threshold=2, cooldown=30.0)
    >>> breaker.judge(DeliveryStatus.RETRYING, None), breaker.judge(DeliveryStatus.DEAD, None)
    (None, 'opened')
    >>> breaker.allowance(free_slots=4)  # open, within its cooldown: nothing is claimed
    0
    >>> breaker.judge(DeliveryStatus.SUCCEEDED, retry_after=None)
    'closed'
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from runtime.sdk.outcomes import DeliveryStatus

# Outcomes that show the plugin answering: they close the breaker and reset its count.
ANSWERED = frozenset({DeliveryStatus.SUCCEEDED, DeliveryStatus.SKIPPED})


@dataclass
class CircuitBreaker:
    """Opens after `threshold` consecutive failures; while open, one probe per `cooldown`."""

    threshold: int = 5
    cooldown: float = 30.0
    failures: int = 0
    opened_at: float | None = None

    @property
    def open(self) -> bool:
        return self.opened_at is not None

    def allowance(self, free_slots: int) -> int:
        """How many deliveries may be claimed now."""
        if self.opened_at is None:
            return free_slots
        if free_slots > 0 and time.monotonic() - self.opened_at >= self.cooldown:
            self.opened_at = time.monotonic()
            return min(1, free_slots)
        return 0

    def record(self, success: bool) -> str | None:
        """'opened' or 'closed' when the state changes."""
        if success:
            was_open, self.failures, self.opened_at = self.open, 0, None
            return "closed" if was_open else None
        self.failures += 1
        if not self.open and self.failures >= self.threshold:
            self.opened_at = time.monotonic()
            return "opened"
        return None

    def judge(self, status: DeliveryStatus, retry_after: float | None) -> str | None:
        """Count a hook that ended with `status` (a Retry-After is not counted); 'opened' or
        'closed' when the state changes."""
        if retry_after is not None:
            return None
        return self.record(status in ANSWERED)
