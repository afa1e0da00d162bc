"""A caller's mistake in an argument is BAD_USER_INPUT naming the argument, never INTERNAL.

Ids past the databases' BIGINT, ids that are not written as integers, forged cursors and
strings longer than the column they are compared with all reached the database, which
refused them: an internal error, and a traceback in the log.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from graph.context import Context, Services
from graph.queries import MAX_TAGS
from runtime.core.auth import Role
from tests.graph.conftest import Catalog, Execute, schema

PAST_BIGINT = str(2**63)
NOT_IDS = ["abc", "1e3", " 1", "-1", "1_0", "\uff11", "", PAST_BIGINT, "9" * 100_000]
LONG = "x" * 100_000

# (operation with $id, the argument's name in the error, role)
ID_ARGUMENTS = [
    ("query($id: ID!) { catalogPlugin(id: $id) { name } }", "id", Role.USER),
    ("query($id: ID!) { event(id: $id) { id } }", "id", Role.ADMIN),
    ("query($id: ID!) { installedPlugin(id: $id) { id } }", "id", Role.USER),
    ("query($id: ID!) { catalog(filter: {repositoryId: $id}) { totalCount } }",
     "filter.repositoryId", Role.USER),
    ("query($id: ID!) { deliveries(filter: {eventId: $id}) { pageInfo { endCursor } } }",
     "filter.eventId", Role.ADMIN),
    ("mutation($id: ID!) { redeliver(deliveryId: $id) { id } }", "deliveryId", Role.ADMIN),
    ("mutation($id: ID!) { removeRepository(id: $id) }", "id", Role.ADMIN),
    ("mutation($id: ID!) { syncRepository(id: $id) { added } }", "id", Role.ADMIN),
    ("mutation($id: ID!) { installPlugin(catalogPluginId: $id) { id } }",
     "catalogPluginId", Role.ADMIN),
    ("mutation($id: ID!) { updatePlugin(id: $id, enabled: true) { id } }", "id", Role.ADMIN),
    ("mutation($id: ID!) { enablePlugin(id: $id) { id } }", "id", Role.ADMIN),
    ("mutation($id: ID!) { disablePlugin(id: $id) { id } }", "id", Role.ADMIN),
    ("mutation($id: ID!) { upgradePlugin(id: $id) { id } }", "id", Role.ADMIN),
    ("mutation($id: ID!) { rollbackPlugin(id: $id) { id } }", "id", Role.ADMIN),
    ("mutation($id: ID!) { uninstallPlugin(id: $id) }", "id", Role.ADMIN),
    ("mutation($id: ID!) { testPlugin(id: $id) { ok } }", "id", Role.ADMIN),
    ("mutation($id: ID!) { ratePlugin(catalogPluginId: $id, rating: 3) { id } }",
     "catalogPluginId", Role.USER),
]  # fmt: skip


@pytest.fixture
def no_traceback(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.ERROR, logger="graph.errors")
    return caplog


def refused(result: Any, path: str) -> str:
    assert result.codes == ["BAD_USER_INPUT"], result.errors
    message: str = result.errors[0]["message"]
    assert message.startswith(f"{path}: "), message
    return message


@pytest.mark.parametrize(("operation", "path", "role"), ID_ARGUMENTS, ids=lambda v: str(v)[:40])
async def test_an_id_that_is_no_bigint_is_bad_input_naming_the_argument(
    gql: Execute, no_traceback: pytest.LogCaptureFixture, operation: str, path: str, role: Role
) -> None:
    for value in NOT_IDS:
        message = refused(await gql(operation, {"id": value}, role=role), path)
        assert "is not an id" in message
        assert len(message) < 200  # a long value is quoted cut short
    assert no_traceback.text == ""


async def test_the_largest_bigint_and_zero_are_ids_of_nothing(gql: Execute) -> None:
    for value in (str(2**63 - 1), "0", "007"):
        result = await gql("query($id: ID!) { event(id: $id) { id } }", {"id": value})
        assert result.ok() == {"event": None}


def cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


FORGED = [["abc"], [None], [True], [2**64 - 1], [1.5e300], [1, 2], "garbage", {"id": 1}]


@pytest.mark.parametrize(
    "operation",
    [
        "query($after: String) { events(after: $after) { pageInfo { endCursor } } }",
        "query($after: String) { deliveries(after: $after) { pageInfo { endCursor } } }",
        'query($after: String) { pluginLogs(plugin: "p", after: $after) { pageInfo '
        "{ endCursor } } }",
    ],
    ids=["events", "deliveries", "pluginLogs"],
)
async def test_a_forged_cursor_is_bad_input(
    gql: Execute, no_traceback: pytest.LogCaptureFixture, operation: str
) -> None:
    for values in FORGED:
        after = values if isinstance(values, str) else cursor(values)  # type: ignore[arg-type]
        assert "is not a cursor" in refused(await gql(operation, {"after": after}), "after")
    assert no_traceback.text == ""


async def test_a_rating_cursor_past_bigint_is_bad_input(gql: Execute, make_plugin: Catalog) -> None:
    plugin = await make_plugin("rated")
    after = cursor(["2026-01-01T00:00:00+00:00", 2**64 - 1])
    result = await gql(
        "query($id: ID!, $after: String) { catalogPlugin(id: $id) "
        "{ ratings(after: $after) { pageInfo { endCursor } } } }",
        {"id": str(plugin.id), "after": after},
        role=Role.USER,
    )
    refused(result, "after")


# (operation with $s, the argument's path in the error, role)
TEXT_ARGUMENTS = [
    ("query($s: String) { events(filter: {type: $s}) { pageInfo { endCursor } } }",
     "filter.type", Role.ADMIN),
    ("query($s: String) { deliveries(filter: {plugin: $s}) { pageInfo { endCursor } } }",
     "filter.plugin", Role.ADMIN),
    ("query($s: String) { deliveries(filter: {eventType: $s}) { pageInfo { endCursor } } }",
     "filter.eventType", Role.ADMIN),
    ("query($s: String!) { pluginLogs(plugin: $s) { pageInfo { endCursor } } }", "plugin",
     Role.ADMIN),
    ("query($s: String) { installedPlugin(name: $s) { id } }", "name", Role.USER),
    ("query($s: String) { catalog(filter: {category: $s}) { totalCount } }", "filter.category",
     Role.USER),
    ("query($s: String) { catalog(filter: {type: $s}) { totalCount } }", "filter.type",
     Role.USER),
    ("query($s: String) { catalog(filter: {search: $s}) { totalCount } }", "filter.search",
     Role.USER),
    ("query($s: String!) { catalog(filter: {tags: [$s]}) { totalCount } }", "filter.tags",
     Role.USER),
    ('mutation($s: String) { upgradePlugin(id: "1", version: $s) { id } }', "version",
     Role.ADMIN),
]  # fmt: skip


@pytest.mark.parametrize(("operation", "path", "role"), TEXT_ARGUMENTS, ids=lambda v: str(v)[:50])
async def test_a_string_longer_than_its_column_is_bad_input(
    gql: Execute, no_traceback: pytest.LogCaptureFixture, operation: str, path: str, role: Role
) -> None:
    message = refused(await gql(operation, {"s": LONG}, role=role), path)
    assert message.endswith(f"characters, not {len(LONG)}")
    assert no_traceback.text == ""


async def test_too_many_tags_are_bad_input(gql: Execute) -> None:
    tags = [f"t{i}" for i in range(MAX_TAGS + 1)]
    result = await gql(
        "query($t: [String!]) { catalog(filter: {tags: $t}) { totalCount } }",
        {"t": tags},
        role=Role.USER,
    )
    assert refused(result, "filter.tags") == (
        f"filter.tags: at most {MAX_TAGS} tags, not {MAX_TAGS + 1}"
    )


async def test_strings_as_long_as_their_column_are_looked_up(gql: Execute) -> None:
    result = await gql("query($s: String) { installedPlugin(name: $s) { id } }", {"s": "x" * 255})
    assert result.ok() == {"installedPlugin": None}


async def test_an_event_id_to_subscribe_to_that_is_no_bigint_is_bad_input(
    db: object, services: Services, no_traceback: pytest.LogCaptureFixture
) -> None:
    context = Context(services=services, request=None, response=None)
    context.authenticate(services.tokens.verify(services.tokens.issue(Role.ADMIN, "ops")))
    for value in ("abc", PAST_BIGINT):
        document = f'subscription {{ eventOutcomes(eventId: "{value}") {{ status }} }}'
        results = [
            result async for result in await schema.subscribe(document, context_value=context)
        ]
        [error] = [error for result in results for error in result.errors or []]
        assert error.extensions == {
            "code": "BAD_USER_INPUT",
            "fields": [{"path": "eventId", "message": "not an id"}],
        }
    assert no_traceback.text == ""


# Year 1 at +14:00 is year 0 in UTC, year 9999 at -14:00 is year 10000: PostgreSQL's driver
# failed on them (INTERNAL), SQLite took them.
OUT_OF_UTC = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


@pytest.mark.parametrize(
    "operation",
    [
        "query($t: DateTime) { events(filter: {since: $t}) { pageInfo { endCursor } } }",
        "query($t: DateTime) { deliveries(filter: {until: $t}) { pageInfo { endCursor } } }",
    ],
    ids=["events", "deliveries"],
)
async def test_an_instant_outside_utc_years_is_bad_input(
    gql: Execute, no_traceback: pytest.LogCaptureFixture, operation: str
) -> None:
    for moment in OUT_OF_UTC:
        result = await gql(operation, {"t": moment})
        assert result.codes == ["BAD_USER_INPUT"]
        assert "outside the years 1 to 9999 once in UTC" in result.errors[0]["message"]
    assert no_traceback.text == ""


async def test_an_event_occurring_outside_utc_years_is_bad_input(
    gql: Execute, no_traceback: pytest.LogCaptureFixture
) -> None:
    result = await gql(
        'mutation { emitEvent(input: {type: "custom.x", payload: {}, '
        f'occurredAt: "{OUT_OF_UTC[0]}"}}) {{ duplicate }} }}',
        role=Role.PLATFORM,
    )
    assert result.codes == ["GRAPHQL_VALIDATION_FAILED"]  # a literal: GraphQL's own check
    assert "outside the years 1 to 9999" in result.errors[0]["message"]
    assert no_traceback.text == ""


async def test_a_catalog_cursor_outside_utc_years_is_bad_input(
    gql: Execute, no_traceback: pytest.LogCaptureFixture
) -> None:
    after = cursor([OUT_OF_UTC[0], 1])
    result = await gql(
        "query($after: String) { catalog(sort: NEWEST, after: $after) { totalCount } }",
        {"after": after},
        role=Role.USER,
    )
    refused(result, "after")
    assert no_traceback.text == ""
