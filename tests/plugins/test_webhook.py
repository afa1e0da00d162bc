"""streamspace-webhook against a local receiver that checks Standard Webhooks signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from models import Delivery, InstalledPlugin
from runtime.catalog.config_schema import SecretShape
from runtime.core.address_policy import AddressPolicy
from runtime.delivery.emitter import EmitRequest
from runtime.hosting.host import PluginHost, PluginTestFailed
from runtime.hosting.registry import PluginRegistry, discover_builtins
from runtime.sdk import PermanentFailure
from tests.conftest import FAST_PATHS, Database
from tests.local_http import local_network, serve
from tests.runtime.hosts import BOX, all_final, until

SECRET_BYTES = os.urandom(24)
SECRET = "whsec_" + base64.b64encode(SECRET_BYTES).decode()


@dataclass
class Receiver:
    """Answers with the queued statuses (then 200) and keeps every request it verified."""

    statuses: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        message_id = request.headers["webhook-id"]
        timestamp = request.headers["webhook-timestamp"]
        signed = f"{message_id}.{timestamp}.{body}".encode()
        expected = base64.b64encode(
            hmac.new(SECRET_BYTES, signed, hashlib.sha256).digest()
        ).decode()
        signatures = [s.split(",", 1)[1] for s in request.headers["webhook-signature"].split(" ")]
        assert expected in signatures, "signature does not verify"
        assert request.headers["content-type"] == "application/json"
        self.received.append({"id": message_id, "body": orjson.loads(body)})
        status, headers = self.statuses.pop(0) if self.statuses else (200, {})
        return web.Response(status=status, headers=headers)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    async with serve(found.handle) as url:
        found.url = url
        yield found


async def webhook_host(url: str, network: AddressPolicy | None = None, **config: Any) -> PluginHost:
    from runtime.broadcast.hub import Hub
    from runtime.catalog.installs import Installer
    from runtime.hosting.host import HostSettings

    registry = PluginRegistry()
    discover_builtins(registry)
    installer = Installer(BOX)
    secrets = SecretShape.of_keys({"url", "secret"})
    public, hidden = installer.split({"url": url, "secret": SECRET, **config}, secrets)
    await InstalledPlugin.create(
        name="streamspace-webhook",
        version="1.0.0",
        enabled=True,
        config=public,
        secret_config=hidden,
    )
    hub = Hub("memory://", fast_paths=FAST_PATHS)
    await hub.connect()
    host = PluginHost(
        registry,
        hub,
        installer,
        HostSettings(backoff_base=0.01, poll_interval=0.05, fast_paths=FAST_PATHS),
        network=network or local_network(),
    )
    await host.start()
    return host


async def stop(host: PluginHost) -> None:
    await host.stop()
    await host.hub.disconnect()


async def test_an_event_is_posted_signed_with_type_timestamp_and_data(
    db: Database, receiver: Receiver
) -> None:
    host = await webhook_host(receiver.url)
    try:
        result = await host.emitter.emit(
            EmitRequest("session.created", {"id": "s1", "user": "ann"}, wait=True)
        )
    finally:
        await stop(host)
    assert [d.status for d in result.deliveries] == ["SUCCEEDED"]
    body = receiver.received[0]["body"]
    assert body["type"] == "session.created"
    assert body["data"]["userId"] == "ann"
    assert body["timestamp"]


async def test_retries_keep_the_webhook_id_and_honour_retry_after(
    db: Database, receiver: Receiver
) -> None:
    receiver.statuses = [(503, {}), (429, {"Retry-After": "0"})]
    host = await webhook_host(receiver.url)
    try:
        result = await host.emitter.emit(EmitRequest("user.login", {"id": "u1"}))
        await until(lambda: all_final(result.event.id))
    finally:
        await stop(host)
    delivery = await Delivery.get(event_id=result.event.id)
    assert (delivery.status, delivery.attempts) == ("SUCCEEDED", 3)
    assert len({r["id"] for r in receiver.received}) == 1


async def test_a_client_error_is_final(db: Database, receiver: Receiver) -> None:
    receiver.statuses = [(404, {})]
    host = await webhook_host(receiver.url)
    try:
        result = await host.emitter.emit(EmitRequest("user.login", {"id": "u1"}))
        await until(lambda: all_final(result.event.id))
    finally:
        await stop(host)
    delivery = await Delivery.get(event_id=result.event.id)
    assert (delivery.status, delivery.attempts) == ("DEAD", 1)
    assert "404" in (delivery.error or "")


async def first_error(url: str, network: AddressPolicy) -> str | None:
    """The error of the first attempt to deliver one event to `url`, and of a connection test."""
    await InstalledPlugin.all().delete()
    host = await webhook_host(url, network=network)
    try:
        result = await host.emitter.emit(EmitRequest("user.login", {"id": "u1"}))
        event_id = result.event.id
        await until(lambda: Delivery.exists(event_id=event_id, error__isnull=False))
        # The connection test's error leaves the host redacted, naming what was raised.
        refused = rf"^{PermanentFailure.__name__}: .*refused by the address policy"
        with pytest.raises(PluginTestFailed, match=refused):
            await host.test_plugin("streamspace-webhook")
    finally:
        await stop(host)
    return (await Delivery.get(event_id=event_id)).error


async def test_a_receiver_on_loopback_is_refused_unless_allowed(
    db: Database, receiver: Receiver
) -> None:
    """The plugins' HTTP session obeys the address policy: by default a webhook URL on
    127.0.0.1 (or localhost) reaches nothing, and the delivery's error says why."""
    for url in (receiver.url, receiver.url.replace("127.0.0.1", "localhost")):
        error = await first_error(url, AddressPolicy()) or ""
        assert "refused by the address policy" in error, error
        assert "a loopback address" in error
    assert receiver.received == []


async def test_a_refused_receiver_is_dead_at_once_rather_than_retried(
    db: Database, receiver: Receiver
) -> None:
    """Trying again cannot change the address policy: the first attempt is the last."""
    await first_error(receiver.url, AddressPolicy())
    delivery = await Delivery.get()
    assert (delivery.status, delivery.attempts) == ("DEAD", 1)


async def test_types_outside_the_configured_events_are_skipped(
    db: Database, receiver: Receiver
) -> None:
    host = await webhook_host(receiver.url, events=["session.created"])
    try:
        result = await host.emitter.emit(EmitRequest("user.login", {"id": "u1"}, wait=True))
    finally:
        await stop(host)
    assert [d.status for d in result.deliveries] == ["SKIPPED"]
    assert receiver.received == []


async def test_the_connection_test_sends_a_ping(db: Database, receiver: Receiver) -> None:
    host = await webhook_host(receiver.url)
    try:
        result = await host.test_plugin("streamspace-webhook")
    finally:
        await stop(host)
    assert result is not None and result["status"] == 200
    assert receiver.received[0]["body"]["type"] == "ping"


async def test_the_installed_plugin_reports_its_delivery_figures(
    db: Database, receiver: Receiver
) -> None:
    from runtime.delivery.stats import delivery_stats

    receiver.statuses = [(404, {})]
    host = await webhook_host(receiver.url)
    try:
        for index in range(3):
            await host.emitter.emit(EmitRequest("user.login", {"id": f"u{index}"}, wait=True))
    finally:
        await stop(host)
    figures = await delivery_stats("streamspace-webhook")
    assert (figures.delivered, figures.dead, figures.failing) == (2, 1, 0)
    assert figures.avg_duration_ms is not None and figures.last_delivery_at is not None
