"""What a hook may raise to say how its delivery ended, when not by returning."""

from __future__ import annotations


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
