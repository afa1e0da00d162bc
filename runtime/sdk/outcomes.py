"""How a delivery stands (`DeliveryStatus`), and what a hook may raise to say how its
delivery ended, when not by returning."""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    """Where a delivery stands. A member is its name as a string: it compares equal to the
    text the `deliveries.status` column and the outcome messages hold, and is stored as it."""

    PENDING = "PENDING"  # written; due at next_attempt_at
    RUNNING = "RUNNING"  # claimed under a lease, its hook running
    SUCCEEDED = "SUCCEEDED"
    RETRYING = "RETRYING"  # failed or asked to be retried; due again at next_attempt_at
    DEAD = "DEAD"  # a permanent failure, or a failure on the last attempt
    SKIPPED = "SKIPPED"  # the plugin chose not to handle the event


# Statuses a delivery keeps unless an admin redelivers it.
FINAL = frozenset({DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD, DeliveryStatus.SKIPPED})


class RetryLater(Exception):
    """Raised by a hook when the work should be tried again, not before `after` seconds
    (a vendor's Retry-After, say)."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class Skip(Exception):
    """Raised by a hook for an event it chose not to handle: the delivery is SKIPPED."""


class PermanentFailure(Exception):
    """Raised by a hook when trying again cannot help (a 4xx answer): the delivery is dead."""
