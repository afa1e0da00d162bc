"""Pooled PostgreSQL connections go back to the pool without a reset round trip, yet never
carry a transaction left open into their next use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from tortoise.connection import get_connection

from models import close_database, init_database

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pool(postgres_database: str) -> AsyncIterator[Any]:
    await init_database(postgres_database)
    try:
        yield get_connection("default")
    finally:
        await close_database()


async def test_a_released_connection_sends_no_reset(pool: Any, postgres_database: str) -> None:
    async with pool.acquire_connection() as connection:
        backend = await connection.fetchval("SELECT pg_backend_pid()")
    observer = await asyncpg.connect(postgres_database.replace("postgres://", "postgresql://", 1))
    try:
        last = await observer.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", backend)
    finally:
        await observer.close()
    # Its last statement is still ours: no RESET ALL, UNLISTEN *, CLOSE ALL came after it.
    assert last == "SELECT pg_backend_pid()"


async def test_a_transaction_left_open_is_rolled_back_before_the_next_use(pool: Any) -> None:
    for _ in range(3):  # whichever connection the pool hands out next
        async with pool.acquire_connection() as connection:
            assert not connection.is_in_transaction()
            assert await connection.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
            await connection.execute("BEGIN")
            await connection.execute("CREATE TEMPORARY TABLE left_open (x int)")
