"""A vendor request that reached no answer: retried, unless the address policy refused it."""

from __future__ import annotations

import aiohttp
import pytest

from runtime.core.address_policy import AddressPolicy, AddressRefused
from runtime.sdk import PermanentFailure, RetryLater, unreachable
from tests.e2e.conftest import free_port


async def test_a_host_the_policy_refuses_is_a_permanent_failure() -> None:
    async with AddressPolicy().session() as session:
        with pytest.raises(aiohttp.ClientError) as raised:
            await session.get("http://127.0.0.1:9/")
    outcome = unreachable(raised.value, "Acme")
    assert isinstance(outcome, PermanentFailure)
    assert str(outcome).startswith("Acme could not be reached: refused by the address policy")


async def test_a_closed_port_is_tried_again() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError) as raised:
            await session.get(f"http://127.0.0.1:{free_port()}/")
    outcome = unreachable(raised.value, "Acme", "no answer")
    assert isinstance(outcome, RetryLater)
    assert str(outcome) == "Acme could not be reached: no answer"


def test_a_refusal_is_found_however_deep_it_is_wrapped() -> None:
    try:
        try:
            raise AddressRefused("refused by the address policy: x")
        except AddressRefused as inner:
            raise aiohttp.ClientConnectionError("wrapped") from inner
    except aiohttp.ClientError as error:
        assert isinstance(unreachable(error, "Acme"), PermanentFailure)
