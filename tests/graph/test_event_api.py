"""The event operations through GraphQL: emitting, browsing, logs, redelivery, actions, UI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from unittest.mock import ANY

import pytest
from strawberry.types.execution import PreExecutionError

from graph.app import GraphQLApp
from graph.context import Context, Services
from graph.validation.document_limits import MAX_TOKENS
from graph.validation.integer_inputs import refusal as wide_integer_refusal
from models import Delivery, EventRow, PluginLog
from runtime.core.auth import Role
from runtime.sdk import Event, PermanentFailure, Plugin, PluginContext, RetryLater
from tests.asgi import request
from tests.graph.conftest import Execute, InstallPlugins, schema
from tests.runtime.hosts import all_final, until

EMIT = """
mutation($input: EmitEventInput!) {
  emitEvent(input: $input) {
    duplicate
    event { id type payload idempotencyKey }
    deliveries { id plugin hook status attempts result error }
  }
}"""
EMIT_MANY = """
mutation($inputs: [EmitEventInput!]!) {
  emitEvents(inputs: $inputs) { duplicate event { id type } deliveries { plugin status } }
}"""
SESSION = {"id": "s1", "user_id": "ann", "template": "firefox"}
calls: list[str] = []


class Echo(Plugin):
    async def on_load(self, ctx: PluginContext) -> None:
        async def greet(given: Mapping[str, Any]) -> dict[str, Any]:
            return {"hello": given.get("name", "world")}

        async def wipe(given: Mapping[str, Any]) -> bool:
            return True

        ctx.api.action("greet", greet, role="user")
        ctx.api.action("wipe", wipe)
        ctx.ui.add("dashboard", "EchoWidget", title="Echo", color="teal")
        ctx.ui.add("settings", "EchoSettings")

    async def on_session_created(
        self, ctx: PluginContext, session: Mapping[str, Any]
    ) -> dict[str, Any]:
        calls.append(str(session["id"]))
        ctx.log.info("session seen", session=session["id"])
        ctx.log.error("quota close", session=session["id"])
        return {"seen": session["id"], "user": session["userId"]}

    async def on_event(self, ctx: PluginContext, event: Event) -> None:
        calls.append(event.type)

    async def test_connection(self, ctx: PluginContext) -> dict[str, Any]:
        return {"ok": True, "message": "pong"}


class Refusing(Plugin):
    async def on_user_login(self, ctx: PluginContext, user: Mapping[str, Any]) -> None:
        raise PermanentFailure("HTTP 400 from the vendor")

    async def on_session_stopped(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        raise RetryLater("vendor busy", after=3600)

    async def test_connection(self, ctx: PluginContext) -> dict[str, Any]:
        return {"ok": False, "message": "bad credentials"}


@pytest.fixture
async def plugins(install_test_plugins: InstallPlugins) -> dict[str, Any]:
    calls.clear()
    return await install_test_plugins({"echo": Echo, "refusing": Refusing})


async def emit(gql: Execute, **given: Any) -> dict[str, Any]:
    result = await gql(EMIT, {"input": given}, role=Role.PLATFORM)
    return dict(result.ok()["emitEvent"])


# --- emitEvent ------------------------------------------------------------------------------


async def test_the_platform_emits_and_waits_for_final_outcomes(
    gql: Execute, plugins: dict[str, Any]
) -> None:
    result = await emit(gql, type="session.created", payload=SESSION, wait=True)
    assert result["duplicate"] is False
    assert result["event"]["payload"]["userId"] == "ann"
    assert [(d["plugin"], d["hook"], d["status"]) for d in result["deliveries"]] == [
        ("echo", "on_session_created", "SUCCEEDED")
    ]
    assert result["deliveries"][0]["result"] == {"seen": "s1", "user": "ann"}


async def test_only_the_platform_may_emit(gql: Execute, plugins: dict[str, Any]) -> None:
    variables = {"input": {"type": "custom.x", "payload": {}}}
    assert (await gql(EMIT, variables, role=Role.ADMIN)).codes == ["FORBIDDEN"]
    assert (await gql(EMIT, variables, role=None)).codes == ["UNAUTHENTICATED"]


@pytest.mark.parametrize(
    ("given", "path"),
    [
        ({"type": "session.exploded", "payload": {"id": "s1"}}, "type"),
        ({"type": "custom.big", "payload": {"blob": "x" * 70_000}}, "payload"),
        ({"type": "session.created", "payload": {"user": "ann"}}, "payload.id"),
        ({"type": "custom.x", "payload": [1, 2]}, None),
        ({"type": "custom.x", "payload": {}, "idempotencyKey": "k" * 256}, "idempotencyKey"),
        ({"type": "custom.x", "payload": {}, "idempotencyKey": ""}, "idempotencyKey"),
        ({"type": "custom.x", "payload": {}, "idempotencyKey": "  "}, "idempotencyKey"),
        ({"type": "custom.x", "payload": {"n": 2**63}}, "variables.input.payload.n"),
    ],
    ids=[
        "unknown-type",
        "too-large",
        "session-without-id",
        "not-an-object",
        "key-too-long",
        "empty-key",
        "blank-key",
        "integer-beyond-64-bits",
    ],
)
async def test_bad_events_are_refused_and_nothing_is_stored(
    gql: Execute, plugins: dict[str, Any], given: dict[str, Any], path: str | None
) -> None:
    result = await gql(EMIT, {"input": given}, role=Role.PLATFORM)
    assert result.codes == ["BAD_USER_INPUT"]
    if path is not None:
        fields = result.errors[0]["extensions"]["fields"]
        assert [field["path"] for field in fields] == [path]
    assert await Delivery.all().count() == 0


async def test_a_batch_is_stored_in_order(gql: Execute, plugins: dict[str, Any]) -> None:
    inputs = [
        {"type": "session.created", "payload": {"id": "s1", "user": "ann"}},
        {"type": "custom.backup_done", "payload": {"ok": True}},
    ]
    result = await gql(EMIT_MANY, {"inputs": inputs}, role=Role.PLATFORM)
    emitted = result.ok()["emitEvents"]
    assert [e["event"]["type"] for e in emitted] == ["session.created", "custom.backup_done"]
    assert [[d["plugin"] for d in e["deliveries"]] for e in emitted] == [["echo"], ["echo"]]


async def test_a_bad_event_in_a_batch_names_its_index(
    gql: Execute, plugins: dict[str, Any]
) -> None:
    inputs = [{"type": "custom.ok", "payload": {}}, {"type": "nope", "payload": {}}]
    result = await gql(EMIT_MANY, {"inputs": inputs}, role=Role.PLATFORM)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["fields"][0]["path"] == "inputs.1.type"


async def test_an_idempotency_key_returns_the_same_event_and_delivers_once(
    gql: Execute, plugins: dict[str, Any]
) -> None:
    first = await emit(gql, type="session.created", payload=SESSION, idempotencyKey="k1", wait=True)
    again = await emit(gql, type="session.created", payload=SESSION, idempotencyKey="k1", wait=True)
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert again["event"]["id"] == first["event"]["id"]
    assert again["event"]["idempotencyKey"] == "k1"
    assert [d["id"] for d in again["deliveries"]] == [d["id"] for d in first["deliveries"]]
    assert await Delivery.filter(event_id=int(first["event"]["id"])).count() == 1
    assert calls == ["s1"]


async def test_a_key_reused_for_another_event_is_a_conflict_naming_the_first(
    gql: Execute, plugins: dict[str, Any]
) -> None:
    first = await emit(gql, type="session.created", payload=SESSION, idempotencyKey="k1")
    other = {**SESSION, "id": "s2"}
    variables = {"input": {"type": "session.created", "payload": other, "idempotencyKey": "k1"}}
    result = await gql(EMIT, variables, role=Role.PLATFORM)
    assert result.codes == ["CONFLICT"]
    assert result.errors[0]["extensions"]["eventId"] == first["event"]["id"]
    assert f"event {first['event']['id']}" in result.errors[0]["message"]
    assert await Delivery.all().count() == 1
    assert "s2" not in calls  # nothing was delivered for the refused event


async def test_a_key_given_twice_in_a_batch_for_two_events_is_a_conflict(
    gql: Execute, plugins: dict[str, Any]
) -> None:
    inputs = [
        {"type": "custom.a", "payload": {"n": 1}, "idempotencyKey": "k"},
        {"type": "custom.a", "payload": {"n": 2}, "idempotencyKey": "k"},
    ]
    result = await gql(EMIT_MANY, {"inputs": inputs}, role=Role.PLATFORM)
    assert result.codes == ["CONFLICT"]
    assert result.errors[0]["extensions"]["fields"][0]["path"] == "inputs.1.idempotencyKey"
    assert await Delivery.all().count() == 0


@pytest.mark.parametrize(
    "event_type",
    ["streamspace-webhook.fake", "echo.done", "plugin.installed", "repository.sync.failed"],
)
async def test_the_platform_may_not_emit_a_plugins_or_the_servers_types(
    gql: Execute, plugins: dict[str, Any], event_type: str
) -> None:
    result = await gql(EMIT, {"input": {"type": event_type, "payload": {}}}, role=Role.PLATFORM)
    assert result.codes == ["FORBIDDEN"]
    assert result.errors[0]["extensions"]["fields"][0]["path"] == "type"
    assert await Delivery.all().count() == 0


# --- integers beyond 64 bits ----------------------------------------------------------------

WIDE = "123456789012345678901234567890"


async def post_graphql(services: Services, body: bytes) -> dict[str, Any]:
    """An operation posted as a client posts it: the JSON text of the body, not Python values."""
    token = services.tokens.issue(Role.PLATFORM, "core")
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    answer = await request(GraphQLApp(services), "POST", "/graphql", body=body, headers=headers)
    assert answer.status == 200, answer.body
    document: dict[str, Any] = answer.json()
    return document


async def test_a_wide_integer_in_json_variables_is_refused_naming_where(
    services: Services, plugins: dict[str, Any]
) -> None:
    variables = f'{{"input": {{"type": "custom.x", "payload": {{"a": [1, {{"n": {WIDE}}}]}}}}}}'
    body = f'{{"query": {json.dumps(EMIT)}, "variables": {variables}}}'.encode()
    document = await post_graphql(services, body)
    (error,) = document["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["fields"][0]["path"] == "variables.input.payload.a.1.n"
    assert await EventRow.all().count() == 0


async def test_a_wide_integer_literal_is_refused_naming_where(
    gql: Execute, plugins: dict[str, Any]
) -> None:
    payload = "{a: {n: " + WIDE + "}}"
    query = (
        f'mutation {{ emitEvent(input: {{type: "custom.x", payload: {payload}}}) {{ duplicate }} }}'
    )
    result = await gql(query, role=Role.PLATFORM)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["fields"][0]["path"] == "emitEvent.input.payload.a.n"
    assert await EventRow.all().count() == 0


async def test_a_wide_integer_over_websocket_is_refused_before_it_runs(
    services: Services, plugins: dict[str, Any]
) -> None:
    # WebSocket transports stream every operation: the check is there as on HTTP.
    context = Context(services=services, request=None, response=None)
    context.authenticate(services.tokens.verify(services.tokens.issue(Role.PLATFORM, "core")))
    payload = "{n: " + WIDE + "}"
    query = (
        f'mutation {{ emitEvent(input: {{type: "custom.x", payload: {payload}}}) {{ duplicate }} }}'
    )
    results = [result async for result in await schema.stream(query, context_value=context)]
    assert [type(result) for result in results] == [PreExecutionError]
    (error,) = results[0].errors or []
    assert error.extensions == {
        "code": "BAD_USER_INPUT",
        "fields": [{"path": "emitEvent.input.payload.n", "message": ANY}],
    }
    assert await EventRow.all().count() == 0


async def test_a_document_over_the_token_limit_is_not_read_whole_for_a_wide_integer() -> None:
    # The operation's own parse refuses it at the limit; reading all of it first to look for
    # a wide integer was work without bound, for anyone.
    fields = "__typename " * MAX_TOKENS
    document = f"{{ events(first: {WIDE}) {{ totalCount }} {fields} }}"
    assert await wide_integer_refusal(None, document) is None


async def test_integers_at_the_64_bit_limits_are_kept_exactly_from_json_and_literals(
    services: Services, gql: Execute, plugins: dict[str, Any]
) -> None:
    top, bottom = 2**63 - 1, -(2**63)
    body = (
        f'{{"query": {json.dumps(EMIT)}, "variables": {{"input": {{"type": "custom.x",'
        f' "payload": {{"top": {top}, "bottom": {bottom}}}}}}}}}'
    ).encode()
    from_json = (await post_graphql(services, body))["data"]["emitEvent"]
    payload = f"{{top: {top}, bottom: {bottom}}}"
    literal = f'mutation {{ emitEvent(input: {{type: "custom.y", payload: {payload}}})'
    from_literal = (await gql(literal + " { event { id } } }", role=Role.PLATFORM)).ok()
    for event_id in (from_json["event"]["id"], from_literal["emitEvent"]["event"]["id"]):
        stored = await EventRow.get(id=int(event_id))
        assert stored.payload == {"top": top, "bottom": bottom}


# --- events, event, deliveries ----------------------------------------------------------------

EVENTS = """
query($filter: EventFilter, $first: Int, $after: String) {
  events(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id type } }
    pageInfo { hasNextPage endCursor }
  }
}"""
DELIVERIES = """
query($filter: DeliveryFilter, $first: Int, $after: String) {
  deliveries(filter: $filter, first: $first, after: $after) {
    edges { node { id plugin status event { type } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def emitted_mix(gql: Execute) -> list[str]:
    ids = []
    for given in (
        {"type": "session.created", "payload": {"id": "s1", "user": "ann"}},
        {"type": "user.login", "payload": {"id": "u1"}},
        {"type": "custom.a", "payload": {}},
        {"type": "session.created", "payload": {"id": "s2", "user": "bob"}},
        {"type": "custom.b", "payload": {}},
    ):
        ids.append((await emit(gql, **given, wait=True))["event"]["id"])
    return ids


async def test_events_page_newest_first_without_repeats(
    gql: Execute, plugins: dict[str, Any]
) -> None:
    ids = await emitted_mix(gql)
    seen: list[str] = []
    after = None
    while True:
        page = (await gql(EVENTS, {"first": 2, "after": after})).ok()["events"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == list(reversed(ids))


async def test_events_filter_by_type_and_time(gql: Execute, plugins: dict[str, Any]) -> None:
    ids = await emitted_mix(gql)
    by_type = (await gql(EVENTS, {"filter": {"type": "session.created"}})).ok()["events"]
    assert [e["node"]["id"] for e in by_type["edges"]] == [ids[3], ids[0]]
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    future = (await gql(EVENTS, {"filter": {"since": later}})).ok()["events"]
    assert future["edges"] == []
    past = (await gql(EVENTS, {"filter": {"until": later}})).ok()["events"]
    assert len(past["edges"]) == 5


async def test_one_event_with_its_deliveries(gql: Execute, plugins: dict[str, Any]) -> None:
    ids = await emitted_mix(gql)
    query = "query($id: ID!) { event(id: $id) { type payload deliveries { plugin status } } }"
    found = (await gql(query, {"id": ids[0]})).ok()["event"]
    assert found == {
        "type": "session.created",
        "payload": {"id": "s1", "user": "ann", "user_id": "ann", "userId": "ann"},
        "deliveries": [{"plugin": "echo", "status": "SUCCEEDED"}],
    }
    assert (await gql(query, {"id": "999999"})).ok()["event"] is None


async def test_deliveries_filter_by_plugin_type_status_and_time(
    gql: Execute, plugins: dict[str, Any]
) -> None:
    await emitted_mix(gql)

    async def found(**given: Any) -> list[tuple[str, str, str]]:
        page = (await gql(DELIVERIES, {"filter": given, "first": 50})).ok()["deliveries"]
        return [
            (e["node"]["plugin"], e["node"]["event"]["type"], e["node"]["status"])
            for e in page["edges"]
        ]

    assert await found(plugin="refusing") == [("refusing", "user.login", "DEAD")]
    assert await found(eventType="session.created") == [
        ("echo", "session.created", "SUCCEEDED"),
        ("echo", "session.created", "SUCCEEDED"),
    ]
    assert await found(status="DEAD") == [("refusing", "user.login", "DEAD")]
    assert len(await found(plugin="echo")) == 5  # on_event takes user.login and custom.*
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert await found(since=later) == []
    assert len(await found(until=later)) == 6


async def test_deliveries_page_by_cursor(gql: Execute, plugins: dict[str, Any]) -> None:
    await emitted_mix(gql)
    first = (await gql(DELIVERIES, {"first": 4})).ok()["deliveries"]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (await gql(DELIVERIES, {"first": 4, "after": first["pageInfo"]["endCursor"]})).ok()
    ids = [e["node"]["id"] for e in first["edges"] + rest["deliveries"]["edges"]]
    assert len(ids) == len(set(ids)) == 6
    assert ids == sorted(ids, key=int, reverse=True)
    assert rest["deliveries"]["pageInfo"]["hasNextPage"] is False


async def test_a_bad_cursor_is_bad_input(gql: Execute, plugins: dict[str, Any]) -> None:
    assert (await gql(EVENTS, {"after": "garbage"})).codes == ["BAD_USER_INPUT"]


# --- pluginLogs -----------------------------------------------------------------------------

LOGS = """
query($plugin: String!, $level: LogLevel) {
  pluginLogs(plugin: $plugin, level: $level) { edges { node { plugin level message data } } }
}"""


async def test_plugin_logs_filter_by_least_level(gql: Execute, plugins: dict[str, Any]) -> None:
    await emit(gql, type="session.created", payload=SESSION, wait=True)

    async def both_stored() -> bool:
        return await PluginLog.filter(plugin="echo").count() == 2

    await until(both_stored)

    async def messages(level: str | None) -> list[tuple[str, str]]:
        result = await gql(LOGS, {"plugin": "echo", "level": level})
        edges = result.ok()["pluginLogs"]["edges"]
        return [(e["node"]["level"], e["node"]["message"]) for e in edges]

    assert await messages(None) == [("ERROR", "quota close"), ("INFO", "session seen")]
    assert await messages("WARNING") == [("ERROR", "quota close")]
    logs = await gql(LOGS, {"plugin": "echo", "level": "ERROR"})
    assert logs.ok()["pluginLogs"]["edges"][0]["node"]["data"] == {"session": "s1"}
    assert (await gql(LOGS, {"plugin": "echo"}, role=Role.USER)).codes == ["FORBIDDEN"]


# --- redeliver ------------------------------------------------------------------------------

REDELIVER = "mutation($id: ID!) { redeliver(deliveryId: $id) { id status attempts } }"


async def test_dead_and_succeeded_deliveries_are_redelivered(
    gql: Execute, plugins: dict[str, Any]
) -> None:
    dead = await emit(gql, type="user.login", payload={"id": "u1"}, wait=True)
    dead_delivery = next(d for d in dead["deliveries"] if d["plugin"] == "refusing")
    assert dead_delivery["status"] == "DEAD"
    done = await emit(gql, type="session.created", payload=SESSION, wait=True)
    for delivery, event in ((dead_delivery, dead), (done["deliveries"][0], done)):
        again = (await gql(REDELIVER, {"id": delivery["id"]})).ok()["redeliver"]
        assert (again["id"], again["status"]) == (delivery["id"], "PENDING")
        await until(partial(all_final, int(event["event"]["id"])))
        row = await Delivery.get(id=int(delivery["id"]))
        assert row.attempts == delivery["attempts"] + 1
    assert calls.count("s1") == 2


async def test_unfinished_deliveries_are_not_redelivered(
    gql: Execute, plugins: dict[str, Any]
) -> None:
    waiting = await emit(gql, type="session.stopped", payload={"id": "s1"})
    delivery = next(d for d in waiting["deliveries"] if d["plugin"] == "refusing")
    await until(lambda: Delivery.filter(id=int(delivery["id"]), status="RETRYING").exists())
    assert (await gql(REDELIVER, {"id": delivery["id"]})).codes == ["CONFLICT"]
    assert (await gql(REDELIVER, {"id": "424242"})).codes == ["NOT_FOUND"]
    assert (await gql(REDELIVER, {"id": delivery["id"]}, role=Role.USER)).codes == ["FORBIDDEN"]


# --- testPlugin, pluginAction, uiExtensions ---------------------------------------------------

TEST_PLUGIN = "mutation($id: ID!) { testPlugin(id: $id) { ok message result } }"
ACTION = """
mutation($plugin: String!, $action: String!, $input: JSON) {
  pluginAction(plugin: $plugin, action: $action, input: $input)
}"""


async def test_test_plugin_reports_the_plugins_own_verdict(
    gql: Execute, plugins: dict[str, Any], services: Services
) -> None:
    echo = (await gql(TEST_PLUGIN, {"id": str(plugins["echo"].id)})).ok()["testPlugin"]
    assert (echo["ok"], echo["message"]) == (True, "pong")
    refusing = (await gql(TEST_PLUGIN, {"id": str(plugins["refusing"].id)})).ok()["testPlugin"]
    assert (refusing["ok"], refusing["message"]) == (False, "bad credentials")
    await services.host.installer.update(plugins["echo"].id, None, enabled=False)
    inactive = (await gql(TEST_PLUGIN, {"id": str(plugins["echo"].id)})).ok()["testPlugin"]
    assert inactive["ok"] is False and "not active" in inactive["message"]


class Hanging(Plugin):
    """Its connection test and its action never answer; its hooks may take 0.2 s."""

    MANIFEST = {"name": "hanging", "version": "1.0.0", "timeoutSeconds": 0.2}

    async def on_load(self, ctx: PluginContext) -> None:
        async def wait(given: Mapping[str, Any]) -> None:
            await asyncio.sleep(3600)

        ctx.api.action("wait", wait, role="user")

    async def test_connection(self, ctx: PluginContext) -> None:
        await asyncio.sleep(3600)


async def test_a_test_or_action_that_never_answers_is_answered_after_the_plugins_timeout(
    gql: Execute, install_test_plugins: InstallPlugins
) -> None:
    rows = await install_test_plugins({"hanging": Hanging})
    async with asyncio.timeout(30):  # without the limit, this test would hang here
        tested = (await gql(TEST_PLUGIN, {"id": str(rows["hanging"].id)})).ok()["testPlugin"]
        called = await gql(ACTION, {"plugin": "hanging", "action": "wait"}, role=Role.USER)
    assert tested == {
        "ok": False,
        "message": "test_connection did not finish within 0.2 s",
        "result": None,
    }
    assert called.errors[0]["message"] == "hanging: action wait did not finish within 0.2 s"
    assert called.errors[0]["extensions"] == {"code": "INTERNAL", "timeoutSeconds": 0.2}


async def test_plugin_actions_are_called_with_their_role(
    gql: Execute, plugins: dict[str, Any]
) -> None:
    greet = {"plugin": "echo", "action": "greet", "input": {"name": "ann"}}
    assert (await gql(ACTION, greet, role=Role.USER)).ok()["pluginAction"] == {"hello": "ann"}
    wipe = {"plugin": "echo", "action": "wipe"}
    assert (await gql(ACTION, wipe, role=Role.USER)).codes == ["FORBIDDEN"]
    assert (await gql(ACTION, wipe, role=Role.ADMIN)).ok()["pluginAction"] is True
    assert (await gql(ACTION, greet, role=None)).codes == ["UNAUTHENTICATED"]
    missing = {"plugin": "echo", "action": "nope"}
    assert (await gql(ACTION, missing)).codes == ["NOT_FOUND"]
    assert (await gql(ACTION, {"plugin": "ghost", "action": "greet"})).codes == ["NOT_FOUND"]


async def test_a_caller_an_action_does_not_admit_never_learns_what_exists(
    gql: Execute, plugins: dict[str, Any]
) -> None:
    """The role is checked first: the same FORBIDDEN whether the plugin or the action exists
    (it used to be NOT_FOUND for what did not exist, FORBIDDEN for what did)."""
    asked = [("echo", "wipe"), ("echo", "nope"), ("ghost", "wipe")]  # only the first exists
    for role in (Role.USER, Role.PLATFORM):
        answers = [await gql(ACTION, {"plugin": p, "action": a}, role=role) for p, a in asked]
        assert [answer.codes for answer in answers] == [["FORBIDDEN"]] * 3
        told = {
            answer.errors[0]["message"].replace(plugin, "P").replace(action, "A")
            for answer, (plugin, action) in zip(answers, asked, strict=True)
        }
        assert told == {f"no action 'A' of plugin 'P' is open to the {role.value} role"}
    # Admins see every plugin anyway: they are told what is missing.
    assert (await gql(ACTION, {"plugin": "echo", "action": "nope"})).errors[0]["message"] == (
        "plugin 'echo' has no action 'nope'"
    )


async def test_an_action_registered_for_a_role_no_token_holds_admits_nobody(
    gql: Execute, plugins: dict[str, Any], services: Services
) -> None:
    async def handler(_: Any) -> bool:
        return True

    services.host.loaded["echo"].context.api.action("odd", handler, role="superuser")
    answer = await gql(ACTION, {"plugin": "echo", "action": "odd"})  # was INTERNAL
    assert answer.codes == ["FORBIDDEN"]


async def test_ui_extensions_are_served_by_slot_while_active(
    gql: Execute, plugins: dict[str, Any], services: Services
) -> None:
    query = (
        "query($slot: String) { uiExtensions(slot: $slot) { plugin slot component title props } }"
    )
    dashboard = (await gql(query, {"slot": "dashboard"}, role=Role.USER)).ok()["uiExtensions"]
    assert dashboard == [
        {
            "plugin": "echo",
            "slot": "dashboard",
            "component": "EchoWidget",
            "title": "Echo",
            "props": {"color": "teal"},
        }
    ]
    every = (await gql(query, {})).ok()["uiExtensions"]
    assert sorted(e["slot"] for e in every) == ["dashboard", "settings"]
    await services.host.installer.update(plugins["echo"].id, None, enabled=False)
    assert (await gql(query, {"slot": "dashboard"})).ok()["uiExtensions"] == []
