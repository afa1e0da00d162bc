"""The retry policy: full-jitter backoff, a plugin's Retry-After, and DEAD after the last try."""

from __future__ import annotations

import random

import pytest

from runtime.delivery.retries import MAX_BACKOFF_SECONDS, RetryPolicy


@pytest.mark.parametrize("attempts", [1, 2, 3, 6])
def test_the_delay_is_drawn_under_a_ceiling_that_doubles_with_each_attempt(attempts: int) -> None:
    policy = RetryPolicy(backoff_base=2.0)
    ceiling = 2.0 * 2 ** (attempts - 1)
    delays = [policy.delay(attempts) for _ in range(500)]
    assert all(0 <= delay <= ceiling for delay in delays)
    # Full jitter: spread over the whole range, not bunched at its top.
    assert min(delays) < ceiling / 4 and max(delays) > ceiling * 3 / 4


def test_the_backoff_never_exceeds_an_hour() -> None:
    random.seed(7)
    policy = RetryPolicy(backoff_base=2.0)
    assert max(policy.delay(40) for _ in range(200)) <= MAX_BACKOFF_SECONDS


def test_a_plugins_retry_after_is_the_delay_capped_at_an_hour_and_never_negative() -> None:
    policy = RetryPolicy(backoff_base=2.0)
    assert policy.delay(5, retry_after=30) == 30
    assert policy.delay(1, retry_after=10 * MAX_BACKOFF_SECONDS) == MAX_BACKOFF_SECONDS
    assert policy.delay(1, retry_after=-4) == 0


def test_a_retry_after_the_last_attempt_is_dead() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.settle("RETRYING", attempts=2) == "RETRYING"
    assert policy.settle("RETRYING", attempts=3) == "DEAD"
    assert policy.settle("RETRYING", attempts=9) == "DEAD"


@pytest.mark.parametrize("status", ["SUCCEEDED", "SKIPPED", "DEAD"])
def test_other_outcomes_stand_whatever_the_attempt(status: str) -> None:
    assert RetryPolicy(max_attempts=1).settle(status, attempts=5) == status
