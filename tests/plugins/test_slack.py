"""streamspace-slack against a local stand-in for Slack's incoming webhooks.

The stand-in checks each request as Slack documents it (api.slack.com/messaging/webhooks,
/reference/messaging/attachments, /reference/block-kit/blocks): a JSON POST with `text`,
attachments whose fields are {title, value, short} with an integer `ts` and a named or hex
colour, or Block Kit blocks within Slack's limits.
"""

from __future__ import annotations

import re
import socket
import time
from typing import Any

import orjson
import pytest
from aiohttp import web

from models import Delivery, InstalledPlugin
from runtime.catalog.installs import PluginSchema
from runtime.core.errors import BadUserInput
from runtime.delivery.emitter import EmitRequest
from runtime.hosting.context import PluginStore
from runtime.hosting.registry import PluginRegistry, discover_builtins
from tests.conftest import Database
from tests.plugins.conftest import VendorServer, builtin_host
from tests.runtime.hosts import all_final, until

NAME = "streamspace-slack"
HOOK_PATH = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
SESSION = {
    "id": "admin-firefox-browser-abc123",
    "user": "john.doe",
    "template": "firefox-browser",
    "state": "running",
    "resources": {"memory": "512Mi", "cpu": "250m"},
}
USER = {
    "id": "u-42",
    "username": "jane",
    "email": "jane@example.com",
    "fullName": "Jane Roe",
    "role": "user",
}
# Every lifecycle event and the first line of the message Slack must receive for it.
EVENTS = {
    "session.created": "🚀 New Session Created",
    "session.started": "▶️ Session Started",
    "session.stopped": "⏹️ Session Stopped",
    "session.hibernated": "💤 Session Hibernated",
    "session.woken": "☀️ Session Woken",
    "session.deleted": "🗑️ Session Deleted",
    "user.created": "👤 New User Created",
    "user.updated": "✏️ User Updated",
    "user.deleted": "🗑️ User Deleted",
    "user.login": "🔑 User Logged In",
    "user.logout": "👋 User Logged Out",
}
SWITCHES = [
    "notifyOn" + "".join(part.capitalize() for part in event.split(".")) for event in EVENTS
]
TOP_LEVEL = {"text", "attachments", "blocks", "channel", "username", "icon_emoji", "icon_url"}
COLOUR = re.compile(r"^(good|warning|danger|#[0-9A-Fa-f]{6})$")


def slack_rules(request: web.Request, body: bytes) -> None:
    """What Slack's incoming webhook accepts; a broken rule answers 400 and fails the test."""
    assert request.method == "POST", request.method
    assert request.headers.get("Content-Type", "").split(";")[0] == "application/json"
    doc = orjson.loads(body)
    assert isinstance(doc, dict) and set(doc) <= TOP_LEVEL, sorted(doc)
    assert isinstance(doc.get("text"), str) and doc["text"].strip(), "text is required"
    for key in ("channel", "username", "icon_emoji"):
        assert key not in doc or (isinstance(doc[key], str) and doc[key]), key
    if "icon_emoji" in doc:
        assert re.fullmatch(r":[a-z0-9_+'-]+:", doc["icon_emoji"]), doc["icon_emoji"]
    for attachment in doc.get("attachments", []):
        assert COLOUR.match(attachment["color"]), attachment["color"]
        assert isinstance(attachment["title"], str)
        assert attachment["footer"] == "StreamSpace"
        ts = attachment["ts"]
        assert isinstance(ts, int) and not isinstance(ts, bool), f"ts must be an integer: {ts!r}"
        assert abs(ts - time.time()) < 300
        for field in attachment["fields"]:
            assert set(field) == {"title", "value", "short"}, field
            assert isinstance(field["title"], str) and isinstance(field["value"], str)
            assert isinstance(field["short"], bool)
    if "blocks" in doc:
        check_blocks(doc["blocks"])


def check_blocks(blocks: list[dict[str, Any]]) -> None:
    assert 0 < len(blocks) <= 50
    for block in blocks:
        kind = block["type"]
        assert kind in {"header", "section", "context", "divider"}, kind
        if kind == "header":
            assert block["text"]["type"] == "plain_text"
            assert 0 < len(block["text"]["text"]) <= 150
        elif kind == "section":
            assert "text" in block or "fields" in block
            texts = block.get("fields", []) + ([block["text"]] if "text" in block else [])
            assert len(block.get("fields", [])) <= 10
            for text in texts:
                assert text["type"] in {"mrkdwn", "plain_text"}
                assert 0 < len(text["text"]) <= 2000
        elif kind == "context":
            assert 0 < len(block["elements"]) <= 10
            for element in block["elements"]:
                assert element["type"] in {"mrkdwn", "plain_text", "image"}


@pytest.fixture
def slack(vendor: VendorServer) -> VendorServer:
    vendor.check = slack_rules
    return vendor


def config(vendor: VendorServer, **extra: Any) -> dict[str, Any]:
    return {"webhookUrl": vendor.url + HOOK_PATH, **extra}


def all_on() -> dict[str, bool]:
    return dict.fromkeys(SWITCHES, True)


def timed(vendor: VendorServer) -> list[float]:
    """When each request arrived (monotonic seconds), recorded by the vendor's check."""
    moments: list[float] = []
    rules = vendor.check
    assert rules is not None

    def check(request: web.Request, body: bytes) -> None:
        moments.append(time.monotonic())
        rules(request, body)

    vendor.check = check
    return moments


async def emit(host: Any, event_type: str, payload: dict[str, Any]) -> Any:
    result = await host.emitter.emit(EmitRequest(event_type, payload, wait=True))
    assert len(result.deliveries) == 1
    return result.deliveries[0]


async def test_every_lifecycle_event_reaches_slack(db: Database, slack: VendorServer) -> None:
    async with builtin_host(NAME, config(slack, **all_on())) as host:
        for event_type in EVENTS:
            payload = SESSION if event_type.startswith("session.") else USER
            delivery = await emit(host, event_type, payload)
            assert delivery.status == "SUCCEEDED", (event_type, delivery.error)
            assert delivery.result["status"] == 200
    assert [r.path for r in slack.requests] == [HOOK_PATH] * len(EVENTS)
    bodies = [r.json() for r in slack.requests]
    assert [b["text"] for b in bodies] == list(EVENTS.values())
    for event_type, body in zip(EVENTS, bodies, strict=True):
        (attachment,) = body["attachments"]
        titles = [f["title"] for f in attachment["fields"]]
        if event_type.startswith("session."):
            assert titles == ["User", "Template", "Session ID"], event_type
        else:
            assert titles == ["Username", "Email", "Name", "Role"], event_type
        expected = {"session.created": "good", "session.deleted": "danger"}.get(event_type)
        if expected:
            assert attachment["color"] == expected


async def test_session_created_matches_the_seed_example(db: Database, slack: VendorServer) -> None:
    settings = config(slack, channel="#dev-alerts", includeDetails=True, rateLimit=50)
    async with builtin_host(NAME, settings) as host:
        delivery = await emit(host, "session.created", SESSION)
    assert delivery.status == "SUCCEEDED"
    body = slack.requests[0].json()
    ts = body["attachments"][0]["ts"]
    assert body == {
        "channel": "#dev-alerts",
        "username": "StreamSpace Bot",
        "icon_emoji": ":computer:",
        "text": "🚀 New Session Created",
        "attachments": [
            {
                "color": "good",
                "title": "Session Details",
                "fields": [
                    {"title": "User", "value": "john.doe", "short": True},
                    {"title": "Template", "value": "firefox-browser", "short": True},
                    {
                        "title": "Session ID",
                        "value": "admin-firefox-browser-abc123",
                        "short": False,
                    },
                    {"title": "Memory", "value": "512Mi", "short": True},
                    {"title": "CPU", "value": "250m", "short": True},
                ],
                "footer": "StreamSpace",
                "ts": ts,
            }
        ],
    }


async def test_session_hibernated_matches_the_seed_example(
    db: Database, slack: VendorServer
) -> None:
    # Empty identity settings leave channel, username and icon to the webhook itself.
    settings = config(slack, notifyOnSessionHibernated=True, channel="", username="", iconEmoji="")
    async with builtin_host(NAME, settings) as host:
        delivery = await emit(
            host, "session.hibernated", {"id": "admin-firefox-browser-abc123", "user": "john.doe"}
        )
    assert delivery.status == "SUCCEEDED"
    body = slack.requests[0].json()
    assert body == {
        "text": "💤 Session Hibernated",
        "attachments": [
            {
                "color": "warning",
                "title": "Session Hibernated Due to Inactivity",
                "fields": [
                    {"title": "User", "value": "john.doe", "short": True},
                    {
                        "title": "Session ID",
                        "value": "admin-firefox-browser-abc123",
                        "short": False,
                    },
                ],
                "footer": "StreamSpace",
                "ts": body["attachments"][0]["ts"],
            }
        ],
    }


async def test_identity_settings_are_sent_as_slack_names_them(
    db: Database, slack: VendorServer
) -> None:
    settings = config(slack, channel="#ops", username="Desk Watch", iconEmoji=":robot_face:")
    async with builtin_host(NAME, settings) as host:
        await emit(host, "user.created", USER)
    body = slack.requests[0].json()
    assert (body["channel"], body["username"], body["icon_emoji"]) == (
        "#ops",
        "Desk Watch",
        ":robot_face:",
    )


async def test_switched_off_events_are_skipped_and_nothing_is_sent(
    db: Database, slack: VendorServer
) -> None:
    # The seed's defaults: session.created and user.created on, session.hibernated off.
    async with builtin_host(NAME, config(slack, notifyOnUserCreated=False)) as host:
        off = [
            await emit(host, "session.hibernated", SESSION),
            await emit(host, "user.created", USER),
            await emit(host, "user.login", USER),
        ]
    assert [d.status for d in off] == ["SKIPPED"] * 3
    assert off[0].result == {"skipped": "notifyOnSessionHibernated is off"}
    assert slack.requests == []


async def test_every_switch_turns_its_event_off(db: Database, slack: VendorServer) -> None:
    async with builtin_host(NAME, config(slack, **dict.fromkeys(SWITCHES, False))) as host:
        for event_type in EVENTS:
            payload = SESSION if event_type.startswith("session.") else USER
            assert (await emit(host, event_type, payload)).status == "SKIPPED", event_type
    assert slack.requests == []


async def test_resource_details_only_when_included(db: Database, slack: VendorServer) -> None:
    async with builtin_host(NAME, config(slack)) as host:
        await emit(host, "session.created", SESSION)
    fields = slack.requests[0].json()["attachments"][0]["fields"]
    assert "Memory" not in [f["title"] for f in fields]
    assert "CPU" not in [f["title"] for f in fields]


async def test_blocks_format(db: Database, slack: VendorServer) -> None:
    settings = config(slack, format="blocks", includeDetails=True)
    async with builtin_host(NAME, settings) as host:
        delivery = await emit(host, "session.created", SESSION)
    assert delivery.status == "SUCCEEDED" and delivery.result["format"] == "blocks"
    body = slack.requests[0].json()
    assert "attachments" not in body
    assert body["text"] == "🚀 New Session Created"  # the notification's fallback
    header, short, long, details, context = body["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "🚀 New Session Created", "emoji": True},
    }
    assert [f["text"] for f in short["fields"]] == [
        "*User*\njohn.doe",
        "*Template*\nfirefox-browser",
    ]
    assert long["text"]["text"] == "*Session ID*\nadmin-firefox-browser-abc123"
    assert [f["text"] for f in details["fields"]] == ["*Memory*\n512Mi", "*CPU*\n250m"]
    assert context["type"] == "context"
    assert context["elements"][0]["text"].startswith("StreamSpace · <!date^")


async def test_user_text_cannot_mention_the_channel(db: Database, slack: VendorServer) -> None:
    async with builtin_host(NAME, config(slack)) as host:
        await emit(host, "user.created", {**USER, "fullName": "<!channel> & friends"})
    fields = slack.requests[0].json()["attachments"][0]["fields"]
    assert {"title": "Name", "value": "&lt;!channel&gt; &amp; friends", "short": True} in fields


async def test_over_the_rate_limit_messages_are_held_back_and_summarised(
    db: Database, slack: VendorServer
) -> None:
    async with builtin_host(NAME, config(slack, rateLimit=2)) as host:
        sent = [await emit(host, "session.created", {**SESSION, "id": f"s{i}"}) for i in range(2)]
        held = [await emit(host, "session.created", {**SESSION, "id": f"s{i}"}) for i in (2, 3)]
        assert [d.status for d in sent] == ["SUCCEEDED", "SUCCEEDED"]
        assert [d.status for d in held] == ["SKIPPED", "SKIPPED"]
        assert "rate limit of 2 messages per hour" in held[0].result["skipped"]
        assert len(slack.requests) == 2
        # The clock hour ends: HourlyLimit keeps its window in the plugin's storage.
        store = PluginStore(NAME)
        window = await store.get("rate-window")
        assert window["held"] == 2
        await store.set("rate-window", {**window, "hour": "2000-01-01T00"})
        delivery = await emit(host, "user.created", USER)
        after = await emit(host, "user.deleted", USER)
    assert delivery.status == "SUCCEEDED" and delivery.result["heldBackReported"] == 2
    texts = [r.json()["text"] for r in slack.requests]
    assert (
        texts[2] == "👤 New User Created\n(2 more notifications were held back by the rate limit)"
    )
    # Reported once: the count starts again.
    assert after.status == "SUCCEEDED" and texts[3] == "🗑️ User Deleted"


async def test_the_summary_survives_a_failed_send_and_shows_in_blocks(
    db: Database, slack: VendorServer
) -> None:
    async with builtin_host(NAME, config(slack, rateLimit=1, format="blocks")) as host:
        await emit(host, "session.created", SESSION)
        assert (await emit(host, "session.created", SESSION)).status == "SKIPPED"
        store = PluginStore(NAME)
        await store.set("rate-window", {**await store.get("rate-window"), "hour": "2000-01-01T00"})
        # The message that carries the summary fails once; its retry still carries it.
        slack.answers = [(500, {}, "internal_error")]
        result = await host.emitter.emit(EmitRequest("user.created", USER))
        await until(lambda: all_final(result.event.id))
    delivery = await Delivery.get(event_id=result.event.id)
    assert (delivery.status, delivery.attempts) == ("SUCCEEDED", 2)
    body = slack.requests[-1].json()
    note = "(1 more notification was held back by the rate limit)"
    assert body["text"].endswith(note)
    assert body["blocks"][-1]["elements"][-1] == {"type": "mrkdwn", "text": note}


async def test_429_is_retried_after_retry_after(db: Database, slack: VendorServer) -> None:
    moments = timed(slack)
    slack.answers = [(429, {"Retry-After": "1"}, "rate_limited")]
    async with builtin_host(NAME, config(slack)) as host:
        result = await host.emitter.emit(EmitRequest("session.created", SESSION))
        await until(lambda: all_final(result.event.id))
    delivery = await Delivery.get(event_id=result.event.id)
    assert (delivery.status, delivery.attempts) == ("SUCCEEDED", 2)
    # The host's own backoff here is 0.01 s: the wait is Slack's.
    assert len(moments) == 2 and moments[1] - moments[0] >= 0.9


async def test_server_errors_are_retried(db: Database, slack: VendorServer) -> None:
    slack.answers = [(503, {}, "service_unavailable")]
    async with builtin_host(NAME, config(slack)) as host:
        result = await host.emitter.emit(EmitRequest("user.created", USER))
        await until(lambda: all_final(result.event.id))
    delivery = await Delivery.get(event_id=result.event.id)
    assert (delivery.status, delivery.attempts) == ("SUCCEEDED", 2)


@pytest.mark.parametrize(
    ("status", "reason"),
    [(404, "no_service"), (400, "invalid_payload"), (403, "action_prohibited")],
)
async def test_a_refused_message_is_dead_with_slacks_reason(
    db: Database, slack: VendorServer, status: int, reason: str
) -> None:
    slack.answers = [(status, {}, reason)]
    async with builtin_host(NAME, config(slack)) as host:
        result = await host.emitter.emit(EmitRequest("session.created", SESSION))
        await until(lambda: all_final(result.event.id))
    delivery = await Delivery.get(event_id=result.event.id)
    assert (delivery.status, delivery.attempts) == ("DEAD", 1)
    assert delivery.error == f"Slack answered HTTP {status}: {reason}"
    assert HOOK_PATH not in delivery.error


async def test_an_unreachable_webhook_is_retried(db: Database) -> None:
    # A port nothing listens on: the refused attempt is retried, not given up.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with builtin_host(NAME, {"webhookUrl": f"http://127.0.0.1:{port}{HOOK_PATH}"}) as host:
        result = await host.emitter.emit(EmitRequest("session.created", SESSION))

        async def failed_once() -> bool:
            row = await Delivery.get(event_id=result.event.id)
            return row.attempts >= 1 and row.error is not None

        await until(failed_once)
    delivery = await Delivery.get(event_id=result.event.id)
    assert delivery.status in {"RETRYING", "PENDING"}, delivery.status
    assert "Slack could not be reached" in (delivery.error or "")
    assert HOOK_PATH not in (delivery.error or "")


async def test_test_plugin_sends_a_real_message(db: Database, slack: VendorServer) -> None:
    async with builtin_host(NAME, config(slack, rateLimit=1)) as host:
        await emit(host, "session.created", SESSION)  # the hour's only message
        result = await host.test_plugin(NAME)
    assert result is not None and result["ok"] is True and result["status"] == 200
    body = slack.requests[-1].json()
    assert body["text"] == "✅ StreamSpace test message"
    fields = body["attachments"][0]["fields"]
    assert {"title": "Plugin", "value": NAME, "short": True} in fields


async def test_test_plugin_reports_what_slack_refused(db: Database, slack: VendorServer) -> None:
    slack.answers = [(404, {}, "no_service")]
    async with builtin_host(NAME, config(slack)) as host:
        result = await host.test_plugin(NAME)
    assert result == {"ok": False, "message": "Slack answered HTTP 404: no_service"}


async def test_the_webhook_url_is_a_secret_and_required(db: Database, slack: VendorServer) -> None:
    async with builtin_host(NAME, config(slack)) as host:
        assert host.loaded[NAME].status == "ACTIVE"
    row = await InstalledPlugin.get(name=NAME)
    assert "webhookUrl" not in row.config
    assert HOOK_PATH not in orjson.dumps(row.secret_config).decode()


def schema() -> PluginSchema:
    registry = PluginRegistry()
    discover_builtins(registry)
    spec = registry.get(NAME)
    assert spec is not None
    return PluginSchema.of(spec.manifest.raw)


def problems(config: dict[str, Any]) -> dict[str, str]:
    plugin_schema = schema()
    try:
        plugin_schema.validated({**plugin_schema.defaults, **config})
    except BadUserInput as error:
        return {p.path: p.message for p in error.fields}
    return {}


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({}, "webhookUrl"),
        ({"webhookUrl": "not a url"}, "webhookUrl"),
        ({"rateLimit": 0}, "rateLimit"),
        ({"rateLimit": 101}, "rateLimit"),
        ({"format": "xml"}, "format"),
        ({"iconEmoji": "robot"}, "iconEmoji"),
        ({"notifyOnUserLogin": "yes"}, "notifyOnUserLogin"),
        ({"notifyOnSessionCrashed": True}, "notifyOnSessionCrashed"),
    ],
)
async def test_configuration_is_validated_field_by_field(
    db: Database, settings: dict[str, Any], path: str
) -> None:
    base = {"webhookUrl": "https://hooks.slack.com" + HOOK_PATH}
    found = problems({**base, **settings} if settings else {})
    assert path in found, found


async def test_manifest_defaults(db: Database) -> None:
    plugin_schema = schema()
    assert plugin_schema.secrets == {"webhookUrl"}
    defaults = plugin_schema.defaults
    assert (defaults["notifyOnSessionCreated"], defaults["notifyOnSessionHibernated"]) == (
        True,
        False,
    )
    assert defaults["notifyOnUserCreated"] is True
    assert set(SWITCHES) <= set(defaults)
    assert (defaults["rateLimit"], defaults["format"], defaults["includeDetails"]) == (
        20,
        "attachments",
        False,
    )


async def test_a_non_http_webhook_url_fails_loading(db: Database) -> None:
    async with builtin_host(NAME, {"webhookUrl": "mailto:ops@example.com"}) as host:
        assert NAME not in host.loaded
    row = await InstalledPlugin.get(name=NAME)
    assert row.status == "FAILED"
    assert "http(s) URL" in (row.last_error or "")
