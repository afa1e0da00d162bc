"""Running GraphQL operations in-process, as a caller holding a given role."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from graph.app import build_services
from graph.context import Context, Services
from graph.schema import schema
from runtime.auth import Role
from runtime.settings import Settings
from tests.conftest import Database


@dataclass
class Result:
    data: dict[str, Any] | None
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def codes(self) -> list[str | None]:
        return [error.get("extensions", {}).get("code") for error in self.errors]

    def ok(self) -> dict[str, Any]:
        assert not self.errors, self.errors
        assert self.data is not None
        return self.data


class Execute(Protocol):
    def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        role: Role | None = Role.ADMIN,
        subject: str = "alice",
    ) -> Awaitable[Result]: ...


@pytest.fixture
def services(tmp_path: Path) -> Services:
    settings = Settings(
        data_dir=tmp_path,
        database_url="unused",
        broadcast_url="memory://",
        jwt_secret="test-jwt-secret-0123456789-0123456789",
        secret_key="test-secret-key",
        jwt_secret_generated=False,
    )
    return build_services(settings)


@pytest.fixture
def gql(db: Database, services: Services) -> Execute:
    """Execute an operation as `subject` holding `role` (None: no token at all)."""

    async def execute(
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        role: Role | None = Role.ADMIN,
        subject: str = "alice",
    ) -> Result:
        context = Context(services=services, request=None, response=None)
        if role is not None:
            token = services.tokens.issue(role, subject)
            context.authenticate(services.tokens.verify(token))
        result = await schema.execute(query, variable_values=variables, context_value=context)
        errors = [error.formatted for error in result.errors or []]
        return Result(data=result.data, errors=errors)

    return execute


