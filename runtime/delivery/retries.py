"""When a delivery that did not succeed runs again, and when it stops trying.

A hook that fails (or asks to be retried) runs again after a delay drawn with full jitter,
uniform in [0, base·2^(attempts-1)], so that many deliveries failing together do not come back
together; a vendor's Retry-After, when the hook passed one on, is the delay instead. Both are
capped at an hour. After its last attempt a delivery is DEAD rather than RETRYING.

Example:
    >>> policy = RetryPolicy(max_attempts=3, backoff_base=2.0)
    >>> 0 <= policy.delay(3) <= 8.0, policy.delay(1, retry_after=120.0)
    (True, 120.0)
    >>> policy.settle(DeliveryStatus.RETRYING, attempts=3)
    <DeliveryStatus.DEAD: 'DEAD'>
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from runtime.sdk.outcomes import DeliveryStatus

MAX_BACKOFF_SECONDS = 3600.0
DEFAULT_MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_base: float = 2.0

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Full jitter: uniform in [0, base·2^(attempts-1)], or the plugin's Retry-After."""
        if retry_after is not None:
            return max(0.0, min(retry_after, MAX_BACKOFF_SECONDS))
        ceiling = min(self.backoff_base * 2 ** max(0, attempts - 1), MAX_BACKOFF_SECONDS)
        return random.uniform(0, ceiling)

    def settle(self, status: DeliveryStatus, attempts: int) -> DeliveryStatus:
        """The delivery's status once its hook ended with `status` on attempt `attempts`: a
        retry after the last attempt is DEAD."""
        if status == DeliveryStatus.RETRYING and attempts >= self.max_attempts:
            return DeliveryStatus.DEAD
        return status
