"""A NUL character in an operation's strings or variables is bad input on every backend.

PostgreSQL cannot store it and SQLite can: refused before the operation runs, the same input
gets the same answer on both, naming where it is, and changes nothing.
"""

from __future__ import annotations

from graph.validation.document_limits import MAX_TOKENS
from graph.validation.nul_inputs import refusal
from models import EventRow, PluginRating
from runtime.core.auth import Role
from tests.graph.conftest import Catalog, Execute

RATE = (
    "mutation($id: ID!, $review: String) "
    "{ ratePlugin(catalogPluginId: $id, rating: 4, review: $review) { rating } }"
)


async def test_a_nul_in_a_variable_is_refused_naming_the_variable(
    gql: Execute, make_plugin: Catalog
) -> None:
    plugin = await make_plugin("streamspace-slack")
    result = await gql(RATE, {"id": str(plugin.id), "review": "great\x00"}, role=Role.USER)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["message"] == (
        "variables.review holds a NUL character (\\u0000), which cannot be stored"
    )
    assert result.errors[0]["extensions"]["fields"] == [
        {"path": "variables.review", "message": "holds a NUL character"}
    ]
    assert await PluginRating.all().count() == 0


async def test_a_nul_deep_in_an_event_payload_is_named_by_its_path(gql: Execute) -> None:
    result = await gql(
        "mutation($input: EmitEventInput!) { emitEvent(input: $input) { duplicate } }",
        {"input": {"type": "custom.x", "payload": {"notes": ["ok", "a\x00b"]}}},
        role=Role.PLATFORM,
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["fields"][0]["path"] == (
        "variables.input.payload.notes.1"
    )
    assert await EventRow.all().count() == 0


async def test_a_nul_escaped_in_a_string_literal_is_refused(gql: Execute) -> None:
    result = await gql('{ catalog(filter: {search: "a\\u0000b"}) { totalCount } }', role=Role.USER)
    assert result.codes == ["BAD_USER_INPUT"]
    assert "holds a NUL character" in result.errors[0]["message"]


async def test_an_escaped_backslash_before_u0000_is_text_and_runs(gql: Execute) -> None:
    result = await gql(
        '{ catalog(filter: {search: "a\\\\u0000b"}) { totalCount } }', role=Role.USER
    )
    assert result.ok() == {"catalog": {"totalCount": 0}}
    spelled = await gql(
        "query($s: String) { catalog(filter: {search: $s}) { totalCount } }",
        {"s": "a\\u0000b"},
        role=Role.USER,
    )
    assert spelled.ok() == {"catalog": {"totalCount": 0}}


async def test_a_document_over_the_token_limit_is_not_read_whole_for_a_nul() -> None:
    # The operation's own parse refuses it at the limit; reading all of it first to look for
    # a NUL was work without bound, for anyone.
    fields = "__typename " * MAX_TOKENS
    document = f'{{ catalog(filter: {{search: "\\u0000"}}) {{ totalCount }} {fields} }}'
    assert await refusal(None, document) is None
