"""Error codes and masking, and the limits that refuse oversize queries."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.execution import PreExecutionError

from graph import schema as schema_module
from graph import subscriptions
from graph.context import Context, Services
from graph.schema import build_schema, schema
from runtime.catalog import browse as catalog
from runtime.core.auth import Role
from tests.graph.conftest import Execute


async def test_a_misspelt_field_stays_readable(gql: Execute) -> None:
    result = await gql("{ catalog { totlCount } }", role=Role.USER)
    assert result.codes == ["GRAPHQL_VALIDATION_FAILED"]
    message = result.errors[0]["message"]
    assert "totlCount" in message
    assert "totalCount" in message  # GraphQL's "did you mean" survives


async def test_a_syntax_error_stays_readable(gql: Execute) -> None:
    result = await gql("{ catalog { totalCount }", role=Role.USER)
    assert result.codes == ["GRAPHQL_VALIDATION_FAILED"]
    assert "Syntax Error" in result.errors[0]["message"]


async def test_a_variable_of_the_wrong_type_is_bad_user_input(gql: Execute) -> None:
    result = await gql(
        "query($first: Int) { catalog(first: $first) { totalCount } }",
        {"first": "many"},
        role=Role.USER,
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert "$first" in result.errors[0]["message"]
    assert "many" in result.errors[0]["message"]


async def test_a_missing_required_variable_is_bad_user_input(gql: Execute) -> None:
    result = await gql("query($id: ID!) { catalogPlugin(id: $id) { name } }", {}, role=Role.USER)
    assert result.codes == ["BAD_USER_INPUT"]
    assert "$id" in result.errors[0]["message"]


async def test_an_unexpected_error_is_masked_as_internal(
    gql: Execute, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(plugin_id: int) -> None:
        raise RuntimeError("password=hunter2 leaked in a stack trace")

    monkeypatch.setattr(catalog, "get_catalog_plugin", broken)
    with caplog.at_level(logging.ERROR, logger="graph.errors"):
        result = await gql('{ catalogPlugin(id: "1") { name } }', role=Role.USER)
    assert result.codes == ["INTERNAL"]
    assert result.errors[0]["message"] == "Internal server error"
    assert "hunter2" not in repr(result.errors)
    assert result.errors[0]["path"] == ["catalogPlugin"]
    # The operator still learns what happened.
    assert "hunter2" in caplog.text


async def test_debug_shows_the_unexpected_message(
    db: object, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(plugin_id: int) -> None:
        raise RuntimeError("the real reason")

    monkeypatch.setattr(catalog, "get_catalog_plugin", broken)
    context = Context(services=services, request=None, response=None)
    context.authenticate(services.tokens.verify(services.tokens.issue(Role.USER, "alice")))
    result = await build_schema(debug=True).execute(
        '{ catalogPlugin(id: "1") { name } }', context_value=context
    )
    assert result.errors is not None
    assert result.errors[0].message == "the real reason"
    assert result.errors[0].extensions == {"code": "INTERNAL"}


async def test_our_errors_keep_their_message_and_code(gql: Execute) -> None:
    result = await gql('{ catalogPlugin(id: "424242") { name } }', role=Role.USER)
    assert result.codes == ["NOT_FOUND"]
    assert "424242" in result.errors[0]["message"]


def nested(depth: int) -> str:
    """A query `depth` levels deep, through catalogPlugin ↔ installed ↔ catalogPlugin."""
    inner = "name"
    levels = ["installed", "catalogPlugin"]
    for level in range(depth - 2):
        inner = f"{levels[level % 2]} {{ {inner} }}"
    return f'{{ catalogPlugin(id: "1") {{ {inner} }} }}'


async def test_a_query_too_deep_is_refused(gql: Execute) -> None:
    result = await gql(nested(schema_module.MAX_DEPTH + 3), role=Role.USER)
    assert result.data is None
    assert result.codes == ["GRAPHQL_VALIDATION_FAILED"]
    assert "exceeds maximum operation depth" in result.errors[0]["message"]


async def test_a_query_within_the_depth_limit_runs(gql: Execute) -> None:
    result = await gql(nested(schema_module.MAX_DEPTH - 1), role=Role.USER)
    assert result.codes == ["NOT_FOUND"]  # it ran: there is no catalog entry 1


async def test_too_many_aliases_are_refused(gql: Execute) -> None:
    aliases = " ".join(f"a{i}: viewer {{ subject }}" for i in range(schema_module.MAX_ALIASES + 1))
    result = await gql(f"{{ {aliases} }}", role=Role.USER)
    assert result.data is None
    assert result.codes == ["GRAPHQL_VALIDATION_FAILED"]
    assert "aliases found" in result.errors[0]["message"]


async def test_aliases_within_the_limit_run(gql: Execute) -> None:
    aliases = " ".join(f"a{i}: viewer {{ subject }}" for i in range(schema_module.MAX_ALIASES))
    assert len((await gql(f"{{ {aliases} }}", role=Role.USER)).ok()) == schema_module.MAX_ALIASES


async def test_too_many_tokens_are_refused(gql: Execute) -> None:
    fields = " ".join("__typename" for _ in range(schema_module.MAX_TOKENS))
    result = await gql(f"{{ {fields} }}", role=Role.USER)
    assert result.data is None
    assert result.codes == ["GRAPHQL_VALIDATION_FAILED"]
    assert "tokens" in result.errors[0]["message"]
    assert str(schema_module.MAX_TOKENS) in result.errors[0]["message"]


# --- Streams: how WebSocket transports run every operation -------------------------------------


def admin(services: Services) -> Context:
    context = Context(services=services, request=None, response=None)
    context.authenticate(services.tokens.verify(services.tokens.issue(Role.ADMIN, "ops")))
    return context


async def streamed(
    document: str, context: Context | None = None, operation_name: str | None = None
) -> list[dict[str, Any]]:
    results = await build_schema().stream(
        document, context_value=context, operation_name=operation_name
    )
    collected = []
    async for result in results:
        errors = [error.formatted for error in getattr(result, "errors", None) or []]
        collected.append({"pre": isinstance(result, PreExecutionError), "errors": errors})
    return collected


def codes_of(results: list[dict[str, Any]]) -> list[str]:
    return [error["extensions"]["code"] for result in results for error in result["errors"]]


async def test_a_syntax_error_streamed_is_one_coded_error_before_execution() -> None:
    # It used to escape the stream: the client got "complete" and nothing else.
    results = await streamed("{ viewer { subject }")
    assert [result["pre"] for result in results] == [True]
    assert codes_of(results) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "Syntax Error" in results[0]["errors"][0]["message"]


async def test_a_document_over_a_limit_streamed_is_coded() -> None:
    fields = " ".join(f"a{i}: __typename" for i in range(schema_module.MAX_ALIASES + 1))
    assert codes_of(await streamed(f"{{ {fields} }}")) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_an_unknown_operation_name_streamed_is_a_bad_request() -> None:
    results = await streamed("query A { __typename }", operation_name="B")
    assert codes_of(results) == ["BAD_REQUEST"]
    assert "B" in results[0]["errors"][0]["message"]


async def test_a_platform_error_raised_by_a_subscription_is_coded(
    db: object, services: Services
) -> None:
    document = 'subscription { eventOutcomes(eventId: "424242") { status } }'
    results = await streamed(document, admin(services))
    assert codes_of(results) == ["NOT_FOUND"]
    assert results[0]["errors"][0]["message"] == "event 424242 does not exist"


async def test_an_unexpected_error_in_a_subscription_is_masked_and_logged(
    db: object,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(**_: object) -> None:
        raise RuntimeError("password=hunter2 in a subscription")

    monkeypatch.setattr(subscriptions.EventRow, "get_or_none", broken)
    with caplog.at_level(logging.ERROR, logger="graph.errors"):
        results = await streamed(
            'subscription { eventOutcomes(eventId: "1") { status } }', admin(services)
        )
    assert codes_of(results) == ["INTERNAL"]
    assert results[0]["errors"][0]["message"] == "Internal server error"
    assert "hunter2" not in repr(results)
    assert "hunter2" in caplog.text


async def test_a_query_streamed_masks_an_unexpected_error(
    db: object, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(plugin_id: int) -> None:
        raise RuntimeError("password=hunter2")

    monkeypatch.setattr(catalog, "get_catalog_plugin", broken)
    results = await streamed('{ catalogPlugin(id: "1") { name } }', admin(services))
    assert codes_of(results) == ["INTERNAL"]
    assert "hunter2" not in repr(results)


async def test_a_subscription_is_not_executed_as_a_single_result() -> None:
    # Over HTTP it was executed as a query, and failed as an internal error.
    with pytest.raises(InvalidOperationTypeError):
        await schema.execute("subscription { pluginLogs { message } }")
