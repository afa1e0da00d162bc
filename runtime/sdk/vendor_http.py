"""Turning a vendor's HTTP answer into a delivery outcome, the same way for every plugin.

Example:
    >>> retry_after_seconds("120")
    120.0
    >>> raise_for_status(503, "Slack", retry_after=None)
    Traceback (most recent call last):
    runtime.sdk.outcomes.RetryLater: Slack answered HTTP 503
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from runtime.core.address_refusals import AddressRefused
from runtime.sdk.outcomes import PermanentFailure, RetryLater


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def raise_for_status(
    status: int, vendor: str, *, retry_after: float | None, detail: str = ""
) -> None:
    """Return on 2xx; raise RetryLater for 429 and 5xx, PermanentFailure for anything else."""
    if 200 <= status < 300:
        return
    message = f"{vendor} answered HTTP {status}" + (f": {detail[:300]}" if detail else "")
    if status == 429 or status >= 500:
        raise RetryLater(message, after=retry_after)
    raise PermanentFailure(message)


def refusal_in(error: BaseException) -> AddressRefused | None:
    """The address policy's refusal behind `error` (aiohttp wraps it), or None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, AddressRefused):
            return current
        seen.add(id(current))
        wrapped = getattr(current, "os_error", None)
        current = (
            wrapped
            if isinstance(wrapped, BaseException)
            else current.__cause__ or current.__context__
        )
    return None


def unreachable(error: BaseException, vendor: str, reason: str | None = None) -> Exception:
    """The outcome of a request that reached no answer: PermanentFailure when the address
    policy refused the host (trying again cannot change a setting), else RetryLater.

    `reason` replaces the error's own text where that could quote a secret URL.
    """
    refused = refusal_in(error)
    if refused is not None:
        return PermanentFailure(f"{vendor} could not be reached: {refused}")
    return RetryLater(f"{vendor} could not be reached: {reason or error}")
