"""No built-in plugin's secret leaks, however the plugin breaks.

Each built-in plugin is installed through GraphQL with recognisable secret values, then broken
every way it can break (an unreachable host, a port out of range, HTTP 4xx, 5xx and 429 answers
that echo the request, a vendor that does not answer in time, SMTP refusals that echo the
password) through the real runtime. Then every GraphQL answer (as admin, user and platform),
every subscription message, every stored row and every log line is searched for the secrets.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from tortoise.connection import get_connection

from graph.app import build_services
from graph.context import Context, Services
from runtime.catalog.builtin import publish_builtins
from runtime.core.auth import Role
from runtime.core.settings import Settings
from tests.conftest import FAST_PATHS, TABLES, Database
from tests.graph.conftest import Execute, schema
from tests.local_http import local_network, serve

WEBHOOK_KEY = "whsec_" + base64.b64encode(b"SECRET-webhook-signing-key").decode()
PAGERDUTY_KEY = "SECRETpagerduty1" + "0" * 16
# Loggers of the test's own stand-in vendors, which see the secrets by design.
VENDOR_LOGGERS = ("aiohttp.access", "aiohttp.server", "aiohttp.web", "mail.log")
SLOW_SECONDS = 2.5
WAIT_MS = 8000


# -- a vendor that echoes what it is sent --------------------------------------------------------


@dataclass
class EchoingVendor:
    """Answers as `mode` says, quoting the request's path, query, body and authorization."""

    url: str = ""
    mode: str = "ok"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        echo = f"echo {request.path_qs} {body} {request.headers.get('Authorization')}"
        if self.mode == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        if self.mode in {"ok", "slow"}:
            # A success whose body repeats the request: the plugin may put it in its result.
            answer = {"id": "1", "status": "success", "dedup_key": "k", "message": echo}
            return web.json_response(answer, status=202 if "enqueue" in request.path else 200)
        status = {"400": 400, "404": 404, "500": 500, "429": 429}[self.mode]
        headers = {"Retry-After": "0"} if status == 429 else {}
        if self.mode == "404":
            return web.json_response(
                {"message": echo, "code": 10015, "errors": {"url": echo}}, status=404
            )
        return web.Response(status=status, headers=headers, text=echo)


@pytest.fixture
async def vendor() -> AsyncIterator[EchoingVendor]:
    found = EchoingVendor()
    async with serve(found.handle, "/{tail:.*}", method="*") as url:
        found.url = url
        yield found


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- an SMTP server that echoes the password it refuses -----------------------------------------


class Accepting:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 accepted"


def echoing_authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    assert isinstance(auth_data, LoginPassword)
    said = f"{auth_data.login.decode()}/{auth_data.password.decode()}"
    return AuthResult(success=False, handled=False, message=f"535 5.7.8 refused {said}")


@pytest.fixture
def smtp_servers() -> Iterator[Callable[..., int]]:
    """Starts aiosmtpd servers (keyword arguments go to its SMTP); returns each one's port."""
    controllers: list[Controller] = []

    def start(**options: Any) -> int:
        port = closed_port()
        controller = Controller(
            Accepting(), hostname="127.0.0.1", port=port, ready_timeout=5, **options
        )
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


# -- the server under test ---------------------------------------------------------------------


@pytest.fixture
async def services(db: Database, tmp_path: Path) -> AsyncIterator[Services]:
    """A server's services whose deliveries get one attempt (each failure is final at once,
    so emitEvent(wait: true) answers with it) and whose breakers never open. The one place
    where the test's outgoing requests to 127.0.0.1 are set up."""
    settings = Settings(
        data_dir=tmp_path,
        database_url="unused",
        broadcast_url="memory://",
        jwt_secret="test-jwt-secret-0123456789-0123456789",
        secret_key="test-secret-key",
        jwt_secret_generated=False,
        delivery_max_attempts=1,
        allowed_networks=local_network().allowed_networks,
        fast_paths=FAST_PATHS,
    )
    built = build_services(settings)
    built.host.settings = dataclasses.replace(built.host.settings, breaker_threshold=1_000)
    await built.host.hub.connect()
    await built.host.start()
    await publish_builtins(built.host.registry)
    yield built
    await built.host.stop()
    await built.host.hub.disconnect()


@dataclass
class Seen:
    """Everything that left the server during the test, as text."""

    texts: list[str] = field(default_factory=list)

    def add(self, where: str, value: Any) -> None:
        self.texts.append(f"{where}: {orjson.dumps(value, default=str).decode()}")


def context_for(services: Services, role: Role) -> Context:
    context = Context(services=services, request=None, response=None)
    context.authenticate(services.tokens.verify(services.tokens.issue(role, "leak-test")))
    return context


@asynccontextmanager
async def subscribed(services: Services, seen: Seen) -> AsyncIterator[None]:
    """The admin's subscriptions, every message they bring kept in `seen`."""
    queries = [
        "subscription { pluginEvents { plugin status delivery { error result } } }",
        "subscription { pluginStatus { plugin status previousStatus error message } }",
        "subscription { pluginLogs { plugin level message data } }",
    ]

    async def read(query: str) -> None:
        stream: Any = await schema.subscribe(query, context_value=context_for(services, Role.ADMIN))
        async for result in stream:
            seen.add("subscription", {"data": result.data, "errors": repr(result.errors)})

    readers = [asyncio.create_task(read(query)) for query in queries]
    await asyncio.sleep(0.1)  # each subscription listens once its pump has started
    try:
        yield
    finally:
        await asyncio.sleep(0.2)  # the last messages arrive
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


@dataclass
class Breaking:
    """Drives one installed plugin through broken configurations, keeping every answer."""

    gql: Execute
    services: Services
    seen: Seen
    name: str
    event: tuple[str, dict[str, Any]]
    plugin_id: str = ""

    async def call(self, query: str, variables: dict[str, Any] | None, role: Role) -> Any:
        result = await self.gql(query, variables, role=role)
        self.seen.add(f"{role.value} answer", {"data": result.data, "errors": result.errors})
        return result

    async def install(self, config: dict[str, Any]) -> None:
        entry = await self.call(
            "query($name: String!) { catalog(filter: {search: $name}) "
            "{ edges { node { id name } } } }",
            {"name": self.name},
            Role.USER,
        )
        [node] = [
            edge["node"]
            for edge in entry.ok()["catalog"]["edges"]
            if edge["node"]["name"] == self.name
        ]
        installed = await self.call(
            "mutation($id: ID!, $config: JSON) { installPlugin(catalogPluginId: $id, "
            "config: $config, enable: true) { id status lastError config } }",
            {"id": node["id"], "config": config},
            Role.ADMIN,
        )
        self.plugin_id = installed.ok()["installPlugin"]["id"]

    async def configure(self, config: dict[str, Any]) -> None:
        await self.call(
            "mutation($id: ID!, $config: JSON) { updatePlugin(id: $id, config: $config) "
            "{ status lastError config } }",
            {"id": self.plugin_id, "config": config},
            Role.ADMIN,
        )

    async def run(self) -> None:
        """An event as the platform (waiting for its outcome), its outcomes as a subscriber,
        and the connection test as an admin."""
        event_type, payload = self.event
        emitted = await self.call(
            "mutation($type: String!, $payload: JSON!, $wait: Int!) { emitEvent(input: "
            "{type: $type, payload: $payload, wait: true, waitTimeoutMs: $wait}) "
            "{ event { id } deliveries { plugin status error result } } }",
            {"type": event_type, "payload": payload, "wait": WAIT_MS},
            Role.PLATFORM,
        )
        event_id = emitted.ok()["emitEvent"]["event"]["id"]
        stream: Any = await schema.subscribe(
            f'subscription {{ eventOutcomes(eventId: "{event_id}") '
            "{ status delivery { error result } } }",
            context_value=context_for(self.services, Role.ADMIN),
        )
        async with asyncio.timeout(10):
            async for result in stream:
                self.seen.add("eventOutcomes", {"data": result.data})
        await self.call(
            "mutation($id: ID!) { testPlugin(id: $id) { ok message result } }",
            {"id": self.plugin_id},
            Role.ADMIN,
        )

    async def read_back(self) -> None:
        """What admins and users read afterwards."""
        admin_reads = [
            "{ deliveries(first: 100) { edges { node { plugin status error result } } } }",
            "{ events(first: 100) { edges { node { type deliveries { error result } } } } }",
            "query($n: String!) { installedPlugin(name: $n) { status lastError config } }",
            "query($n: String!) { pluginLogs(plugin: $n, first: 100) "
            "{ edges { node { level message data } } } }",
        ]
        for query in admin_reads:
            variables = {"n": self.name} if "$n" in query else None
            (await self.call(query, variables, Role.ADMIN)).ok()
        user_reads = [
            "{ installedPlugins { name status lastError } }",
            "{ catalog(first: 50) { edges { node { name installed { status lastError } } } } }",
        ]
        for query in user_reads:
            (await self.call(query, None, Role.USER)).ok()


async def stored_rows() -> str:
    connection = get_connection("default")
    return repr([await connection.execute_query_dict(f'SELECT * FROM "{t}"') for t in TABLES])


def logged(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter()
    return "\n".join(
        f"{formatter.format(record)} {record.__dict__}"
        for record in caplog.records
        if not record.name.startswith(VENDOR_LOGGERS)
    )


def assert_nothing_leaked(secrets: list[str], **places: str) -> None:
    for where, text in places.items():
        for secret in secrets:
            leaks = [line[:500] for line in text.splitlines() if secret in line]
            assert not leaks, f"{secret} leaked in {where}:\n" + "\n".join(leaks[:10])


async def broken_every_way(
    breaking: Breaking,
    vendor: EchoingVendor,
    config_for: Callable[[str], dict[str, Any]],
    modes: tuple[str, ...] = ("ok", "400", "404", "500", "429", "slow"),
) -> None:
    """Through the vendor in each mode, then an unreachable host and a port out of range."""
    await breaking.install(config_for(vendor.url))
    for mode in modes:
        vendor.mode = mode
        await breaking.run()
    await breaking.configure(config_for(f"http://127.0.0.1:{closed_port()}"))
    await breaking.run()
    await breaking.configure(config_for("http://127.0.0.1:99999"))
    await breaking.run()
    await breaking.read_back()


SESSION = ("session.created", {"id": "s1", "user": "ann", "template": "firefox"})
ERROR = ("session.error", {"id": "s1", "user": "ann", "error": "OOMKilled"})


def webhook(base: str) -> dict[str, Any]:
    return {
        "url": f"{base}/hook/SECRET-webhook-1?token=SECRET-webhook-2",
        "secret": WEBHOOK_KEY,
        "timeoutSeconds": 1,
    }


def slack(base: str) -> dict[str, Any]:
    return {"webhookUrl": f"{base}/services/SECRET-slack-1/B0/SECRET-slack-2", "timeoutSeconds": 1}


def teams(base: str) -> dict[str, Any]:
    return {"webhookUrl": f"{base}/workflows/run?api-version=1&sig=SECRET-teams-1"}


def discord(base: str) -> dict[str, Any]:
    return {"webhookUrl": f"{base}/api/webhooks/123/SECRET-discord-1", "timeoutSeconds": 1}


def pagerduty(base: str) -> dict[str, Any]:
    return {"routingKey": PAGERDUTY_KEY, "eventsUrl": f"{base}/v2/enqueue", "timeoutSeconds": 1}


HTTP_PLUGINS = [
    (
        "streamspace-webhook",
        webhook,
        SESSION,
        ["SECRET-webhook-1", "SECRET-webhook-2", WEBHOOK_KEY],
    ),
    ("streamspace-slack", slack, SESSION, ["SECRET-slack-1", "SECRET-slack-2"]),
    ("streamspace-teams", teams, SESSION, ["SECRET-teams-1"]),
    ("streamspace-discord", discord, SESSION, ["SECRET-discord-1"]),
    ("streamspace-pagerduty", pagerduty, ERROR, [PAGERDUTY_KEY]),
]


@pytest.mark.parametrize(
    ("name", "config_for", "event", "secrets"),
    HTTP_PLUGINS,
    ids=[plugin[0] for plugin in HTTP_PLUGINS],
)
async def test_an_http_plugin_broken_every_way_leaks_no_secret(
    gql: Execute,
    services: Services,
    vendor: EchoingVendor,
    caplog: pytest.LogCaptureFixture,
    name: str,
    config_for: Callable[[str], dict[str, Any]],
    event: tuple[str, dict[str, Any]],
    secrets: list[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    seen = Seen()
    breaking = Breaking(gql, services, seen, name, event)
    async with subscribed(services, seen):
        await broken_every_way(breaking, vendor, config_for)
    statuses = await gql("{ deliveries(first: 100) { edges { node { status error } } } }")
    outcomes = {edge["node"]["status"] for edge in statuses.ok()["deliveries"]["edges"]}
    assert "DEAD" in outcomes, "the plugin was not broken"
    assert_nothing_leaked(
        secrets,
        answers="\n".join(seen.texts),
        rows=await stored_rows(),
        logs=logged(caplog),
    )


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_the_email_plugin_broken_every_way_leaks_no_secret(
    gql: Execute,
    services: Services,
    smtp_servers: Callable[..., int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "SECRET-email-1"
    seen = Seen()
    breaking = Breaking(gql, services, seen, "streamspace-email", SESSION)

    def config(port: int, security: str = "none") -> dict[str, Any]:
        return {
            "smtpHost": "127.0.0.1",
            "smtpPort": port,
            "security": security,
            "from": "streamspace@example.com",
            "to": ["ops@example.com"],
            "username": "ops",
            "password": password,
            "timeoutSeconds": 5,
        }

    refusing = smtp_servers(
        authenticator=echoing_authenticator, auth_required=True, auth_require_tls=False
    )
    plain = smtp_servers()
    async with subscribed(services, seen):
        await breaking.install(config(refusing))
        await breaking.run()  # the login is refused, the refusal quoting the password
        await breaking.configure(config(plain, security="starttls"))
        await breaking.run()  # STARTTLS required, not offered
        await breaking.configure(config(closed_port()))
        await breaking.run()  # nothing listens
        await breaking.read_back()
    statuses = await gql("{ deliveries(first: 100) { edges { node { status error } } } }")
    errors = [edge["node"]["error"] for edge in statuses.ok()["deliveries"]["edges"]]
    assert any("535" in str(error) for error in errors), errors
    assert_nothing_leaked(
        [password],
        answers="\n".join(seen.texts),
        rows=await stored_rows(),
        logs=logged(caplog),
    )
