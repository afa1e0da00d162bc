"""Indexes the hot reads depend on: a lookup by them never scans the table."""

from __future__ import annotations

from tortoise.connection import get_connection

from tests.conftest import Database


async def test_deliveries_are_found_by_their_event_through_an_index(db: Database) -> None:
    connection = get_connection("default")
    if db.backend == "sqlite":
        plan = await connection.execute_query_dict(
            "EXPLAIN QUERY PLAN SELECT id FROM deliveries WHERE event_id = ?", [1]
        )
        assert any("USING" in row["detail"] and "INDEX" in row["detail"] for row in plan), plan
    else:
        rows = await connection.execute_query_dict(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'deliveries'"
        )
        assert any("(event_id)" in row["indexdef"] for row in rows), rows
