"""streamspace-teams end to end: emitEvent → the card a local stand-in for Teams receives.

The stand-in checks each request as Microsoft documents it: the Workflows message envelope
around an Adaptive Card 1.4 (element types, enums, FactSet facts), or the legacy connector
MessageCard (@type, @context, hex themeColor, sections of name/value facts).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from models import Delivery, InstalledPlugin
from runtime.catalog.installs import PluginSchema
from runtime.core.errors import BadUserInput
from runtime.delivery.emitter import EmitRequest
from runtime.hosting.host import PluginHost
from runtime.hosting.registry import PluginRegistry, discover_builtins
from runtime.sdk.event_catalog import LIFECYCLE_TYPES
from tests.conftest import Database
from tests.plugins.conftest import Recorded, VendorServer, builtin_host
from tests.runtime.hosts import all_final, until

NAME = "streamspace-teams"
ALL_ON = {f"notifyOn{''.join(p.capitalize() for p in t.split('.'))}": True for t in LIFECYCLE_TYPES}
SESSION = {
    "id": "admin-firefox-browser-abc123",
    "user": "john.doe",
    "template": "firefox-browser",
    "state": "running",
    "resources": {"memory": "512Mi", "cpu": "250m"},
}
USER = {
    "id": "u-42",
    "username": "john.doe",
    "email": "john@example.com",
    "fullName": "John Doe",
    "role": "user",
}
# What each lifecycle event reads as, and its colour in either format.
EXPECTED = {
    "session.created": ("New Session Created", "good"),
    "session.started": ("Session Started", "good"),
    "session.stopped": ("Session Stopped", "warning"),
    "session.hibernated": ("Session Hibernated", "warning"),
    "session.woken": ("Session Woken", "good"),
    "session.deleted": ("Session Deleted", "attention"),
    "user.created": ("New User Created", "good"),
    "user.updated": ("User Updated", "accent"),
    "user.deleted": ("User Deleted", "attention"),
    "user.login": ("User Logged In", "accent"),
    "user.logout": ("User Logged Out", "accent"),
}
THEME = {"good": "2EB886", "warning": "DAA038", "attention": "A30200", "accent": "0078D7"}
WORKFLOWS_ACCEPTED = (202, {}, "")
CONNECTOR_OK = (200, {}, "1")


# -- the vendor's documented rules ----------------------------------------------------------

ADAPTIVE_ELEMENTS = {"TextBlock", "FactSet"}
COLOURS = {"default", "dark", "light", "accent", "good", "warning", "attention"}
WEIGHTS = {"default", "lighter", "bolder"}
SIZES = {"default", "small", "medium", "large", "extralarge"}


def _common(request: web.Request, body: bytes) -> None:
    assert request.method == "POST", "Teams webhooks take POST"
    assert request.headers.get("content-type", "").startswith("application/json")
    # Teams refuses messages over 28 KB.
    assert len(body) < 28 * 1024, "message larger than 28 KB"


def check_adaptive(request: web.Request, body: bytes) -> None:
    """The Workflows envelope and Adaptive Card schema, as Teams documents them."""
    import orjson

    _common(request, body)
    message = orjson.loads(body)
    assert message["type"] == "message", "envelope type must be 'message'"
    attachments = message["attachments"]
    assert isinstance(attachments, list) and len(attachments) == 1
    attachment = attachments[0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert "contentUrl" in attachment and attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert isinstance(card["body"], list) and card["body"]
    for element in card["body"]:
        assert element["type"] in ADAPTIVE_ELEMENTS, f"unknown element {element['type']}"
        if element["type"] == "TextBlock":
            assert isinstance(element["text"], str) and element["text"]
            assert element.get("color", "default").lower() in COLOURS
            assert element.get("weight", "default").lower() in WEIGHTS
            assert element.get("size", "default").lower() in SIZES
        else:
            assert isinstance(element["facts"], list)
            for fact in element["facts"]:
                assert set(fact) == {"title", "value"}, f"fact keys {sorted(fact)}"
                assert isinstance(fact["title"], str) and isinstance(fact["value"], str)
    first = card["body"][0]
    assert first["type"] == "TextBlock" and first["weight"] == "bolder"
    assert first["size"] == "medium"


def check_message_card(request: web.Request, body: bytes) -> None:
    """The legacy Office 365 connector MessageCard, as its reference documents it."""
    import orjson

    _common(request, body)
    card = orjson.loads(body)
    assert card["@type"] == "MessageCard"
    assert card["@context"] == "https://schema.org/extensions"
    assert re.fullmatch(r"[0-9A-Fa-f]{6}", card["themeColor"]), "themeColor must be hex, no #"
    # A card needs a summary or a text.
    assert isinstance(card["summary"], str) and card["summary"]
    assert isinstance(card["title"], str) and card["title"]
    for section in card["sections"]:
        assert isinstance(section["activityTitle"], str)
        for fact in section.get("facts", []):
            assert set(fact) == {"name", "value"}, f"fact keys {sorted(fact)}"
            assert isinstance(fact["name"], str) and isinstance(fact["value"], str)


# -- helpers --------------------------------------------------------------------------------


def config(vendor: VendorServer, **extra: Any) -> dict[str, Any]:
    return {"webhookUrl": f"{vendor.url}/workflows/abc/triggers/manual/run?sig=s3cret", **extra}


def payload_of(event_type: str) -> dict[str, Any]:
    return dict(SESSION if event_type.startswith("session.") else USER)


def card_of(request: Recorded) -> dict[str, Any]:
    card: dict[str, Any] = request.json()["attachments"][0]["content"]
    return card


def facts_of(request: Recorded) -> dict[str, str]:
    body = request.json()
    if "@type" in body:
        return {f["name"]: f["value"] for s in body["sections"] for f in s.get("facts", [])}
    facts = [e for e in card_of(request)["body"] if e["type"] == "FactSet"]
    return {f["title"]: f["value"] for e in facts for f in e["facts"]}


def text_of(request: Recorded) -> str:
    """Every human-readable string of the card, in order."""
    body = request.json()
    if "@type" in body:
        return " ".join(
            [body["title"], *(str(s.get("text", "")) for s in body["sections"])]
        ).strip()
    return " ".join(e["text"] for e in card_of(request)["body"] if e["type"] == "TextBlock")


async def emit(host: PluginHost, event_type: str, payload: dict[str, Any]) -> Delivery:
    result = await host.emitter.emit(EmitRequest(event_type, payload, wait=True))
    [delivery] = result.deliveries
    return delivery


async def final_delivery(host: PluginHost, event_type: str, payload: dict[str, Any]) -> Delivery:
    result = await host.emitter.emit(EmitRequest(event_type, payload))
    await until(lambda: all_final(result.event.id))
    return await Delivery.get(event_id=result.event.id)


async def age_rate_window(host: PluginHost) -> None:
    """Make the counted hour a past one, as if the clock had moved on to the next hour."""
    storage = host.loaded[NAME].context.storage
    window = await storage.get("rate-window")
    assert window is not None
    await storage.set("rate-window", {**window, "hour": "2000-01-01T00"})


def timed(check: Callable[[web.Request, bytes], None], times: list[float]) -> Any:
    def wrapped(request: web.Request, body: bytes) -> None:
        times.append(time.monotonic())
        check(request, body)

    return wrapped


# -- every lifecycle event, both formats ----------------------------------------------------


async def test_every_lifecycle_event_arrives_as_an_adaptive_card(
    db: Database, vendor: VendorServer
) -> None:
    vendor.check = check_adaptive
    vendor.answers = [WORKFLOWS_ACCEPTED] * len(LIFECYCLE_TYPES)
    async with builtin_host(NAME, config(vendor, **ALL_ON)) as host:
        deliveries = [await emit(host, t, payload_of(t)) for t in LIFECYCLE_TYPES]
    assert [d.status for d in deliveries] == ["SUCCEEDED"] * len(LIFECYCLE_TYPES)
    assert all(d.result["status"] == 202 for d in deliveries)
    assert len(vendor.requests) == len(LIFECYCLE_TYPES)
    for event_type, request in zip(LIFECYCLE_TYPES, vendor.requests, strict=True):
        title, colour = EXPECTED[event_type]
        assert request.path == "/workflows/abc/triggers/manual/run"
        heading = card_of(request)["body"][0]
        assert title in heading["text"] and heading["color"] == colour
        facts = facts_of(request)
        if event_type.startswith("session."):
            assert facts == {
                "User": "john.doe",
                "Template": "firefox-browser",
                "Session ID": "admin-firefox-browser-abc123",
            }
        else:
            assert facts == {
                "Username": "john.doe",
                "Email": "john@example.com",
                "Name": "John Doe",
                "Role": "user",
            }


async def test_every_lifecycle_event_arrives_as_a_message_card(
    db: Database, vendor: VendorServer
) -> None:
    vendor.check = check_message_card
    vendor.answers = [CONNECTOR_OK] * len(LIFECYCLE_TYPES)
    async with builtin_host(NAME, config(vendor, cardFormat="messagecard", **ALL_ON)) as host:
        deliveries = [await emit(host, t, payload_of(t)) for t in LIFECYCLE_TYPES]
    assert [d.status for d in deliveries] == ["SUCCEEDED"] * len(LIFECYCLE_TYPES)
    for event_type, request in zip(LIFECYCLE_TYPES, vendor.requests, strict=True):
        title, colour = EXPECTED[event_type]
        card = request.json()
        assert title in card["title"] and title in card["summary"]
        assert card["sections"][0]["activityTitle"] == title
        assert card["themeColor"] == THEME[colour]
        assert facts_of(request)["Username" if event_type.startswith("user.") else "User"] == (
            "john.doe"
        )


# -- configuration --------------------------------------------------------------------------


async def test_switches_decide_which_events_are_sent(db: Database, vendor: VendorServer) -> None:
    vendor.check = check_adaptive
    settings = config(vendor, notifyOnSessionCreated=False, notifyOnUserLogin=True)
    async with builtin_host(NAME, settings) as host:
        created = await emit(host, "session.created", SESSION)  # switched off
        started = await emit(host, "session.started", SESSION)  # off by default
        deleted = await emit(host, "session.deleted", SESSION)  # on by default
        login = await emit(host, "user.login", USER)  # switched on
    assert [d.status for d in (created, started, deleted, login)] == [
        "SKIPPED",
        "SKIPPED",
        "SUCCEEDED",
        "SUCCEEDED",
    ]
    assert "notifyOnSessionCreated" in str(created.result)
    assert [card_of(r)["body"][0]["text"] for r in vendor.requests] == [
        "🗑️ Session Deleted",
        "🔑 User Logged In",
    ]


@pytest.mark.parametrize("card_format", ["adaptive", "messagecard"])
async def test_include_details_adds_memory_and_cpu(
    db: Database, vendor: VendorServer, card_format: str
) -> None:
    vendor.check = check_adaptive if card_format == "adaptive" else check_message_card
    for details in (False, True):
        settings = config(vendor, cardFormat=card_format, includeDetails=details)
        async with builtin_host(NAME, settings) as host:
            assert (await emit(host, "session.created", SESSION)).status == "SUCCEEDED"
        await InstalledPlugin.filter(name=NAME).delete()
    without, with_details = (facts_of(r) for r in vendor.requests)
    assert "Memory" not in without and "CPU" not in without
    assert (with_details["Memory"], with_details["CPU"]) == ("512Mi", "250m")


async def test_the_webhook_url_is_a_required_secret_and_formats_are_checked(db: Database) -> None:
    registry = PluginRegistry()
    discover_builtins(registry)
    spec = registry.get(NAME)
    assert spec is not None
    schema = PluginSchema.of(spec.manifest.raw)
    assert "webhookUrl" in schema.secrets
    assert schema.defaults["cardFormat"] == "adaptive" and schema.defaults["rateLimit"] == 20
    for bad in ({}, {"webhookUrl": "not a url"}, {"webhookUrl": "https://x.test/", "rateLimit": 0}):
        with pytest.raises(BadUserInput):
            schema.validated({**schema.defaults, **bad})
    with pytest.raises(BadUserInput, match="cardFormat"):
        schema.validated({**schema.defaults, "webhookUrl": "https://x", "cardFormat": "html"})


async def test_the_builtin_catalog_offers_the_plugin(db: Database) -> None:
    from models import CatalogPlugin
    from runtime.catalog.builtin import publish_builtins

    registry = PluginRegistry()
    discover_builtins(registry)
    await publish_builtins(registry)
    entry = await CatalogPlugin.get(name=NAME)
    assert (entry.category, entry.available) == ("notifications", True)
    assert "teams" in entry.tags


async def test_the_webhook_url_is_stored_encrypted(db: Database, vendor: VendorServer) -> None:
    async with builtin_host(NAME, config(vendor)):
        row = await InstalledPlugin.get(name=NAME)
    assert "webhookUrl" not in row.config
    assert row.secret_config and "s3cret" not in row.secret_config


# -- rate limit -----------------------------------------------------------------------------


@pytest.mark.parametrize("card_format", ["adaptive", "messagecard"])
async def test_over_the_rate_limit_is_counted_and_reported_in_the_next_card(
    db: Database, vendor: VendorServer, card_format: str
) -> None:
    vendor.check = check_adaptive if card_format == "adaptive" else check_message_card
    settings = config(vendor, cardFormat=card_format, rateLimit=2, **ALL_ON)
    async with builtin_host(NAME, settings) as host:
        first_hour = [await emit(host, "user.login", {**USER, "id": f"u{i}"}) for i in range(5)]
        await age_rate_window(host)
        next_hour = await emit(host, "session.created", SESSION)
        after = await emit(host, "session.deleted", SESSION)
    assert [d.status for d in first_hour] == ["SUCCEEDED"] * 2 + ["SKIPPED"] * 3
    assert "rate limit" in str(first_hour[-1].result)
    assert next_hour.status == "SUCCEEDED" and next_hour.result["heldBack"] == 3
    assert after.status == "SUCCEEDED" and after.result["heldBack"] == 0
    assert len(vendor.requests) == 4
    note = "(3 more notifications were held back by the rate limit)"
    assert note in text_of(vendor.requests[2])
    assert "held back" not in text_of(vendor.requests[3])
    assert all("held back" not in text_of(r) for r in vendor.requests[:2])


async def test_a_failed_send_gives_its_rate_limit_slot_back(
    db: Database, vendor: VendorServer
) -> None:
    vendor.check = check_adaptive
    vendor.answers = [(503, {}, "Service Unavailable"), WORKFLOWS_ACCEPTED]
    async with builtin_host(NAME, config(vendor, rateLimit=1)) as host:
        first = await final_delivery(host, "session.created", SESSION)
        second = await emit(host, "session.created", SESSION)
    # The retry of the first was not held back by the slot its own failed try had taken.
    assert (first.status, first.attempts) == ("SUCCEEDED", 2)
    assert second.status == "SKIPPED"
    assert len(vendor.requests) == 2


# -- Teams' answers -------------------------------------------------------------------------


async def test_429_is_retried_after_retry_after(db: Database, vendor: VendorServer) -> None:
    times: list[float] = []
    vendor.check = timed(check_adaptive, times)
    vendor.answers = [(429, {"Retry-After": "1"}, "Too many requests"), WORKFLOWS_ACCEPTED]
    async with builtin_host(NAME, config(vendor)) as host:
        delivery = await final_delivery(host, "session.created", SESSION)
    assert (delivery.status, delivery.attempts) == ("SUCCEEDED", 2)
    assert delivery.result["status"] == 202
    assert times[1] - times[0] >= 0.9, "Retry-After was not honoured"
    assert facts_of(vendor.requests[1]) == facts_of(vendor.requests[0])


async def test_a_connector_200_reporting_a_429_is_retried(
    db: Database, vendor: VendorServer
) -> None:
    vendor.check = check_message_card
    throttled = (
        "Webhook message delivery failed with error: Microsoft Teams endpoint returned "
        "HTTP error 429 with ContextId tcid=0,server=msgapi-canary-eus2-0,cv=deadbeef"
    )
    vendor.answers = [(200, {}, throttled), CONNECTOR_OK]
    async with builtin_host(NAME, config(vendor, cardFormat="messagecard")) as host:
        delivery = await final_delivery(host, "session.created", SESSION)
    assert (delivery.status, delivery.attempts) == ("SUCCEEDED", 2)


async def test_a_server_error_is_retried(db: Database, vendor: VendorServer) -> None:
    vendor.check = check_adaptive
    vendor.answers = [(502, {}, "Bad Gateway"), (500, {}, "oops"), WORKFLOWS_ACCEPTED]
    async with builtin_host(NAME, config(vendor)) as host:
        delivery = await final_delivery(host, "user.created", USER)
    assert (delivery.status, delivery.attempts) == ("SUCCEEDED", 3)


async def test_400_is_final_and_keeps_teams_reason_but_not_the_url(
    db: Database, vendor: VendorServer
) -> None:
    vendor.check = check_adaptive
    reason = '{"error":{"code":"TriggerInputSchemaMismatch","message":"bad input"}}'
    vendor.answers = [(400, {}, reason)]
    async with builtin_host(NAME, config(vendor)) as host:
        delivery = await final_delivery(host, "session.created", SESSION)
    assert (delivery.status, delivery.attempts) == ("DEAD", 1)
    assert "400" in (delivery.error or "") and "TriggerInputSchemaMismatch" in (
        delivery.error or ""
    )
    assert "s3cret" not in (delivery.error or "")
    assert len(vendor.requests) == 1


async def test_an_unreachable_teams_is_retried_without_leaking_the_url(db: Database) -> None:
    closed = "http://127.0.0.1:9/hook?sig=s3cret"  # the discard port: nothing listens
    async with builtin_host(NAME, {"webhookUrl": closed}) as host:
        result = await host.emitter.emit(EmitRequest("session.created", SESSION))
        await until(lambda: Delivery.exists(event_id=result.event.id, attempts__gte=2))
        delivery = await Delivery.get(event_id=result.event.id)
    assert "could not be reached" in (delivery.error or "")
    assert "s3cret" not in (delivery.error or "")


# -- testPlugin -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("card_format", "check", "answer"),
    [
        ("adaptive", check_adaptive, WORKFLOWS_ACCEPTED),
        ("messagecard", check_message_card, CONNECTOR_OK),
    ],
)
async def test_test_plugin_sends_a_real_card(
    db: Database,
    vendor: VendorServer,
    card_format: str,
    check: Callable[[web.Request, bytes], None],
    answer: tuple[int, dict[str, str], str],
) -> None:
    vendor.check = check
    vendor.answers = [answer]
    async with builtin_host(NAME, config(vendor, cardFormat=card_format, rateLimit=1)) as host:
        result = await host.test_plugin(NAME)
        # The test card took no slot of the hourly limit.
        notified = await emit(host, "session.created", SESSION)
    assert result is not None and result["ok"] is True and result["status"] == answer[0]
    assert "StreamSpace test notification" in text_of(vendor.requests[0])
    assert facts_of(vendor.requests[0])["Plugin"] == NAME
    assert notified.status == "SUCCEEDED"


async def test_test_plugin_reports_a_refusal(db: Database, vendor: VendorServer) -> None:
    vendor.answers = [(404, {}, "Not Found")]
    async with builtin_host(NAME, config(vendor)) as host:
        result = await host.test_plugin(NAME)
    assert result is not None and result["ok"] is False
    assert "404" in result["message"] and "s3cret" not in result["message"]


def test_the_card_timestamp_is_the_form_adaptive_cards_accept() -> None:
    from plugins.teams import cards
    from runtime.sdk import describe

    notice = describe("session.created", SESSION, include_details=False)
    message = cards.build(
        "adaptive", notice, held_back=1, at=datetime(2024, 5, 6, 7, 8, 9, 123, tzinfo=UTC)
    )
    texts = [e["text"] for e in message["attachments"][0]["content"]["body"] if "text" in e]
    assert "(1 more notification was held back by the rate limit)" in texts
    assert (
        texts[-1]
        == "StreamSpace · {{DATE(2024-05-06T07:08:09Z, SHORT)}} {{TIME(2024-05-06T07:08:09Z)}}"
    )
