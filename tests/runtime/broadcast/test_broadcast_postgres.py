"""The PostgreSQL broadcast backend: concurrent publishes, large payloads, a dropped listener."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from runtime.broadcast.hub import Hub
from tests.runtime.hosts import until

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """The run's migrated PostgreSQL database (it holds broadcast_payloads)."""
    return postgres_database


async def test_concurrent_publishes_all_arrive(postgres_url: str) -> None:
    async with (
        Hub(postgres_url) as sender,
        Hub(postgres_url) as receiver,
        receiver.subscribe("plugin-status") as inbox,
    ):
        await asyncio.gather(*(sender.publish("plugin-status", {"n": n}) for n in range(20)))
        got = [await asyncio.wait_for(inbox.get(), 5) for _ in range(20)]
    assert sorted(message.data["n"] for message in got if message.data) == list(range(20))


async def test_a_payload_over_the_notify_limit_arrives_whole(postgres_url: str) -> None:
    big = {"text": "x" * 50_000}
    async with (
        Hub(postgres_url) as sender,
        Hub(postgres_url) as receiver,
        receiver.subscribe("deliveries") as inbox,
    ):
        assert await sender.publish("deliveries", big)
        message = await asyncio.wait_for(inbox.get(), 5)
    assert message.data == big


async def test_a_terminated_listener_reconnects_and_reports_the_gap(postgres_url: str) -> None:
    async with (
        Hub(postgres_url) as sender,
        Hub(postgres_url) as receiver,
        receiver.subscribe("plugin-logs") as inbox,
    ):
        listener = receiver.backend._listener
        admin = await asyncpg.connect(postgres_url.replace("postgres://", "postgresql://", 1))
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", listener.get_server_pid())
        finally:
            await admin.close()
        gap = await asyncio.wait_for(inbox.get(), 10)
        assert gap.data is None and gap.missed >= 1
        await until(lambda: receiver.link_up, deadline=10)
        await sender.publish("plugin-logs", {"after": True})
        message = await asyncio.wait_for(inbox.get(), 10)
    assert message.data == {"after": True}
