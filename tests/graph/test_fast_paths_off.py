"""With the fast paths off (STREAMSPACE_FAST_PATHS=0, `serve --no-fast-paths`), requests take
the libraries' documented ways, and clients receive what they receive with them on.

Each test runs the same requests both ways, recording which fast path each took.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from graph._fast import leaf_inputs
from graph._fast.plain_fields import PlainFieldsExecution
from graph._fast.shared_results import SharedResultExecution
from graph.app import GraphQLApp
from graph.context import Context, Services
from runtime.catalog.browse import PAGE_STATEMENTS
from runtime.core.auth import Role
from runtime.db._statement_cache import StatementCache
from runtime.hosting.host import STATUS_CHANNEL
from tests.conftest import Database
from tests.graph._fast.test_fanout import STATUS, connected, inbox_reads, subscribed
from tests.graph.conftest import Catalog, started_services

CATALOG = """
query($filter: CatalogFilter) {
  catalog(filter: $filter, sort: NAME, first: 2) {
    totalCount
    edges { cursor node { id name version avgRating tags } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def recorder(
    monkeypatch: pytest.MonkeyPatch, taken: set[str]
) -> Callable[[object, str, str], None]:
    """Replaces `owner.attribute` by a function that notes `name` in `taken`, then runs it."""

    def record(owner: object, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)

        def noted(*args: Any, **kwargs: Any) -> Any:
            taken.add(name)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, attribute, noted)

    return record


async def test_a_catalog_page_without_fast_paths_is_the_same_page_the_libraries_way(
    db: Database, tmp_path: Path, make_plugin: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("alpha", "bravo", "charlie"):
        await make_plugin(name, tags=["chat"], versions=("1.0.0", "1.1.0"))
    taken: set[str] = set()
    record = recorder(monkeypatch, taken)
    record(PlainFieldsExecution, "execute_field", "plain fields")
    record(leaf_inputs, "_table", "leaf inputs")
    record(StatementCache, "values", "statement cache")
    answers: dict[bool, tuple[object, set[str]]] = {}
    for fast in (True, False):
        taken.clear()
        PAGE_STATEMENTS.clear()
        async with started_services(tmp_path / str(fast), fast_paths=fast) as services:
            result = await GraphQLApp(services).schema.execute(
                CATALOG,
                variable_values={"filter": {"tags": ["chat"]}},
                context_value=admin(services),
            )
        assert not result.errors, result.errors
        answers[fast] = (result.data, set(taken))
    assert answers[True][1] == {"plain fields", "leaf inputs", "statement cache"}
    assert answers[False][1] == set()
    assert answers[False][0] == answers[True][0]
    assert [edge["node"]["name"] for edge in answers[False][0]["catalog"]["edges"]] == [  # type: ignore[index]
        "alpha",
        "bravo",
    ]


async def test_subscribers_without_fast_paths_read_their_own_messages_and_get_the_same(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = inbox_reads(monkeypatch)
    taken: set[str] = set()
    recorder(monkeypatch, taken)(SharedResultExecution, "build", "shared results")
    received: dict[bool, list[list[dict[str, Any]]]] = {}
    written: list[bytes] = []

    def write_frame(frame: bytes) -> bool:
        written.append(frame)
        return True

    for fast in (True, False):
        reads.clear()
        taken.clear()
        # Without the fast paths, a frame writer the server offers is left unused.
        writer = None if fast else write_frame
        async with (
            started_services(tmp_path / str(fast), fast_paths=fast) as services,
            connected(services, writer) as ann,
            connected(services, writer) as bob,
        ):
            await subscribed(ann, STATUS)
            await subscribed(bob, STATUS)
            for plugin in ("p", "q"):
                at = "2026-01-01T00:00:00+00:00"
                await services.host.hub.publish(
                    STATUS_CHANNEL, {"plugin": plugin, "status": "ACTIVE", "at": at}
                )
            await ann.wait_for(3)
            await bob.wait_for(3)
        received[fast] = [client.messages()[1:] for client in (ann, bob)]
        if fast:
            assert reads == []  # handed over in the publisher's task
            assert "shared results" in taken
        else:
            assert len(reads) == 4  # each subscriber's task read each message
            assert "shared results" not in taken
    assert written == []
    assert received[False] == received[True]
    plugins = [m["payload"]["data"]["pluginStatus"]["plugin"] for m in received[False][0]]
    assert plugins == ["p", "q"]


def admin(services: Services) -> Context:
    context = Context(services=services, request=None, response=None)
    context.authenticate(services.tokens.verify(services.tokens.issue(Role.ADMIN, "ops")))
    return context
