"""Shared execution is for subscription messages only: every query runs for its own caller."""

from __future__ import annotations

from graph.context import Context, Services
from graph.schema import schema
from runtime.core.auth import Role
from tests.conftest import Database


def context_of(services: Services, subject: str) -> Context:
    context = Context(services=services, request=None, response=None)
    context.authenticate(services.tokens.verify(services.tokens.issue(Role.ADMIN, subject)))
    return context


async def test_the_same_query_from_two_callers_is_executed_for_each(
    db: Database, services: Services
) -> None:
    query = "{ viewer { subject } }"
    for subject in ("ann", "bob", "ann"):
        result = await schema.execute(query, context_value=context_of(services, subject))
        assert result.data == {"viewer": {"subject": subject}}
