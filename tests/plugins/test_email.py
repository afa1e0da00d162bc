"""streamspace-email against a real SMTP server (aiosmtpd on 127.0.0.1), end to end from
emitEvent to the received message: MIME structure, recipients, templates, digests, TLS, AUTH
and how the server's answers become delivery outcomes."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from models import Delivery, InstalledPlugin, PluginLog
from runtime.broadcast.hub import Hub
from runtime.catalog.installs import Installer
from runtime.core.address_policy import AddressPolicy
from runtime.delivery.emitter import DELIVERY_CHANNEL, EmitRequest
from runtime.hosting.host import HostSettings, PluginHost
from runtime.hosting.registry import PluginRegistry, discover_builtins
from runtime.sdk import config_key
from tests.conftest import FAST_PATHS, Database
from tests.local_http import local_network
from tests.plugins.conftest import builtin_host
from tests.runtime.hosts import BOX, all_final, until

NAME = "streamspace-email"
LIFECYCLE = [
    "session.created",
    "session.started",
    "session.stopped",
    "session.hibernated",
    "session.woken",
    "session.deleted",
    "user.created",
    "user.updated",
    "user.deleted",
    "user.login",
    "user.logout",
]
ALL_ON = {config_key(event_type): True for event_type in LIFECYCLE}
SESSION = {
    "id": "admin-firefox-abc123",
    "user": "john.doe",
    "template": "firefox-browser",
    "state": "running",
    "resources": {"memory": "512Mi", "cpu": "250m"},
}
USER = {
    "id": "u1",
    "username": "john.doe",
    "email": "john@example.com",
    "fullName": "John Doe",
    "role": "user",
}


# -- a recording SMTP server ----------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    authenticated: bool


@dataclass
class Recorder:
    """aiosmtpd handler: keeps every message; `refuse` answers RCPT for an address with its
    queued replies, one per attempt, the last one for every attempt after."""

    received: list[Received] = field(default_factory=list)
    refuse: dict[str, list[str]] = field(default_factory=dict)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        answers = self.refuse.get(address)
        answer = (answers.pop(0) if len(answers) > 1 else answers[0]) if answers else "250 OK"
        if answer.startswith("2"):
            envelope.rcpt_tos.append(address)
        return answer

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                parsed,
                # STARTTLS sets session.ssl; implicit TLS shows only on the transport.
                tls=session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
                authenticated=bool(session.authenticated),
            )
        )
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    port: int
    recorder: Recorder

    @property
    def received(self) -> list[Received]:
        return self.recorder.received


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path
    pem: str

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, made for this test run."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(folder / "cert.pem", folder / "key.pem", pem.decode())


StartServer = Callable[..., SmtpServer]


@pytest.fixture
def smtp_server() -> Iterator[StartServer]:
    """Starts aiosmtpd servers (keyword arguments go to aiosmtpd's SMTP), stopped after."""
    controllers: list[Controller] = []

    def start(port: int | None = None, **options: Any) -> SmtpServer:
        recorder = Recorder()
        server = SmtpServer(port or free_port(), recorder)
        controller = Controller(
            recorder,
            hostname="127.0.0.1",
            port=server.port,
            server_hostname="localhost",
            ready_timeout=5,
            **options,
        )
        controller.start()
        controllers.append(controller)
        return server

    yield start
    for controller in controllers:
        controller.stop()


def settings(server: SmtpServer, **extra: Any) -> dict[str, Any]:
    return {
        "smtpHost": "127.0.0.1",
        "smtpPort": server.port,
        "security": "none",
        "from": "streamspace@example.com",
        "to": ["ops@example.com"],
        **extra,
    }


async def emit(host: PluginHost, event_type: str, payload: dict[str, Any]) -> Delivery:
    result = await host.emitter.emit(EmitRequest(event_type, payload, wait=True))
    [delivery] = result.deliveries
    return delivery


def text_and_html(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


@asynccontextmanager
async def restarted_host() -> AsyncIterator[PluginHost]:
    """A new host over the same database: the plugin installed earlier loads again."""
    registry = PluginRegistry()
    discover_builtins(registry)
    hub = Hub("memory://", fast_paths=FAST_PATHS)
    await hub.connect()
    host = PluginHost(
        registry,
        hub,
        Installer(BOX),
        HostSettings(backoff_base=0.01, poll_interval=0.05, fast_paths=FAST_PATHS),
        network=local_network(),
    )
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
        await hub.disconnect()


# -- the address policy ---------------------------------------------------------------------


@pytest.mark.parametrize("host_name", ["127.0.0.1", "localhost"])
async def test_an_smtp_server_on_loopback_is_refused_unless_allowed(
    db: Database, smtp_server: StartServer, host_name: str
) -> None:
    """SMTP connections obey the server's address policy like HTTP ones: refused, the delivery
    is final (retrying cannot change a setting) and says why."""
    server = smtp_server()
    config = settings(server, smtpHost=host_name)
    async with builtin_host(NAME, config, network=AddressPolicy()) as host:
        delivery = await emit(host, "session.created", SESSION)
    assert delivery.status == "DEAD"
    assert delivery.error is not None
    assert "refused by the address policy" in delivery.error
    assert f"{host_name} " in delivery.error and "a loopback address" in delivery.error
    assert server.received == []

    await InstalledPlugin.all().delete()
    async with builtin_host(NAME, config) as host:  # loopback allowed
        delivery = await emit(host, "session.created", SESSION)
    assert delivery.status == "SUCCEEDED", delivery.error
    assert len(server.received) == 1


# -- one message per event ------------------------------------------------------------------


async def test_a_session_event_arrives_as_text_and_html_alternatives(
    db: Database, smtp_server: StartServer
) -> None:
    server = smtp_server()
    async with builtin_host(NAME, settings(server, includeDetails=True)) as host:
        delivery = await emit(host, "session.created", SESSION)
    assert delivery.status == "SUCCEEDED", delivery.error
    assert delivery.result["sent"] is True
    assert delivery.result["recipients"] == ["ops@example.com"]
    [mail] = server.received
    assert mail.mail_from == "streamspace@example.com"
    assert mail.rcpt_tos == ["ops@example.com"]
    message = mail.message
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert message["Subject"] == "[StreamSpace] New Session Created: admin-firefox-abc123"
    assert message["From"] == "StreamSpace <streamspace@example.com>"
    assert message["To"] == "ops@example.com"
    assert message["Date"] and message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"] == delivery.result["messageId"]
    assert message["Message-ID"].endswith("@example.com>")
    assert message["X-StreamSpace-Events"] == "session.created"
    text, html = text_and_html(message)
    for expected in ("New Session Created", "User: john.doe", "Template: firefox-browser"):
        assert expected in text
    assert "Memory: 512Mi" in text and "CPU: 250m" in text
    assert "<th" in html and "john.doe" in html and "512Mi" in html


async def test_every_lifecycle_event_is_mailed(db: Database, smtp_server: StartServer) -> None:
    server = smtp_server()
    async with builtin_host(NAME, settings(server, **ALL_ON)) as host:
        for event_type in LIFECYCLE:
            payload = SESSION if event_type.startswith("session.") else USER
            delivery = await emit(host, event_type, payload)
            assert delivery.status == "SUCCEEDED", (event_type, delivery.error)
    assert [m.message["X-StreamSpace-Events"] for m in server.received] == LIFECYCLE
    subjects = [m.message["Subject"] for m in server.received]
    assert subjects[3] == "[StreamSpace] Session Hibernated: admin-firefox-abc123"
    assert subjects[6] == "[StreamSpace] New User Created: u1"
    assert subjects[10] == "[StreamSpace] User Logged Out: u1"
    text, _ = text_and_html(server.received[7].message)
    assert "Username: john.doe" in text and "Email: john@example.com" in text


async def test_switched_off_events_are_skipped(db: Database, smtp_server: StartServer) -> None:
    server = smtp_server()
    async with builtin_host(NAME, settings(server)) as host:  # defaults: login is off
        delivery = await emit(host, "user.login", USER)
    assert delivery.status == "SKIPPED"
    assert delivery.result == {"skipped": "notifyOnUserLogin is off"}
    assert server.received == []


async def test_per_event_recipients_are_added_to_the_main_list(
    db: Database, smtp_server: StartServer
) -> None:
    server = smtp_server()
    config = settings(
        server,
        to=["ops@example.com", "lead@example.com"],
        recipientsByEvent={"user.deleted": ["security@example.com", "ops@example.com"]},
    )
    async with builtin_host(NAME, config) as host:
        await emit(host, "user.deleted", USER)
        await emit(host, "session.created", SESSION)
    deleted, created = server.received
    assert deleted.rcpt_tos == ["ops@example.com", "lead@example.com", "security@example.com"]
    assert deleted.message["To"] == "ops@example.com, lead@example.com, security@example.com"
    assert created.rcpt_tos == ["ops@example.com", "lead@example.com"]


# -- templates -------------------------------------------------------------------------------


async def test_payload_values_are_escaped_in_the_html_part(
    db: Database, smtp_server: StartServer
) -> None:
    server = smtp_server()
    user = {**USER, "fullName": "<script>alert('x')</script> & Co", "username": "<b>eve</b>"}
    async with builtin_host(NAME, settings(server)) as host:
        delivery = await emit(host, "user.created", user)
    assert delivery.status == "SUCCEEDED", delivery.error
    text, html = text_and_html(server.received[0].message)
    assert "<script>" not in html and "<b>eve</b>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in html
    assert "&lt;b&gt;eve&lt;/b&gt;" in html
    assert "Name: <script>alert('x')</script> & Co" in text  # plain text stays as written


async def test_templates_from_the_configuration_replace_the_built_in_ones(
    db: Database, smtp_server: StartServer
) -> None:
    server = smtp_server()
    config = settings(
        server,
        subjectPrefix="[Lab]",
        subjectTemplate="{{ subject_prefix }} {{ event.type }}\nby {{ event.payload.username }}",
        textTemplate="Welcome {{ event.payload.fullName }} ({{ event.payload.role }})",
        htmlTemplate='<p class="who">{{ event.payload.fullName }}</p>',
    )
    async with builtin_host(NAME, config) as host:
        await emit(host, "user.created", {**USER, "fullName": "Ann <Admin>"})
    message = server.received[0].message
    assert message["Subject"] == "[Lab] user.created by john.doe"
    text, html = text_and_html(message)
    assert text.strip() == "Welcome Ann <Admin> (user)"
    assert html.strip() == '<p class="who">Ann &lt;Admin&gt;</p>'


@pytest.mark.parametrize(
    ("key", "template", "expected"),
    [
        ("textTemplate", "{% for x in events %}{{ x.title }}", "textTemplate is not a valid"),
        ("htmlTemplate", "<p>{{ event.title }</p>", "htmlTemplate is not a valid"),
        ("subjectTemplate", "{{ event.nothing.deeper }}", "subjectTemplate failed to render"),
    ],
)
async def test_a_broken_template_is_refused_when_the_plugin_loads(
    db: Database, smtp_server: StartServer, key: str, template: str, expected: str
) -> None:
    server = smtp_server()
    async with builtin_host(NAME, settings(server, **{key: template})) as host:
        assert NAME not in host.loaded
    installed = await InstalledPlugin.get(name=NAME)
    assert installed.status == "FAILED"
    assert expected in (installed.last_error or "")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"security": "tls", "tlsCaFile": "/nonexistent/ca.pem"},
            "tlsCaFile '/nonexistent/ca.pem'",
        ),
        ({"security": "tls", "tlsCaPem": "not a certificate"}, "tlsCaPem could not be read"),
        ({"username": "mailer"}, "username and password must be set together"),
    ],
)
async def test_settings_a_schema_cannot_check_are_refused_when_the_plugin_loads(
    db: Database, smtp_server: StartServer, extra: dict[str, Any], expected: str
) -> None:
    async with builtin_host(NAME, settings(smtp_server(), **extra)) as host:
        assert NAME not in host.loaded
    installed = await InstalledPlugin.get(name=NAME)
    assert installed.status == "FAILED"
    assert expected in (installed.last_error or "")


# -- digests ---------------------------------------------------------------------------------


async def test_events_within_the_window_go_out_as_one_digest(
    db: Database, smtp_server: StartServer
) -> None:
    server = smtp_server()
    config = settings(server, digestWindowSeconds=1, **ALL_ON)
    async with builtin_host(NAME, config) as host:
        results = [
            await emit(host, "session.created", SESSION),
            await emit(host, "session.hibernated", {**SESSION, "id": "s2"}),
            await emit(host, "user.created", USER),
        ]
        assert [(d.status, d.result["queued"]) for d in results] == [("SUCCEEDED", True)] * 3
        await until(lambda: server.received)
        # Sent means logged and taken off the queue (the job runs on after the server's 250).
        await until(
            lambda: PluginLog.filter(plugin=NAME, message="sent a digest of 3 events").exists()
        )
        assert await host.loaded[NAME].context.storage.keys("digest:") == []
    [mail] = server.received
    assert mail.message["Subject"] == (
        "[StreamSpace] 3 events: New Session Created, Session Hibernated, New User Created"
    )
    assert (
        mail.message["X-StreamSpace-Events"] == "session.created, session.hibernated, user.created"
    )
    text, html = text_and_html(mail.message)
    assert "3 StreamSpace events" in text
    assert "1. 🚀 New Session Created" in text and "3. 👤 New User Created" in text
    assert "Session ID: s2" in text
    assert html.count("<h2") == 3


async def test_a_digest_goes_to_each_recipient_list_with_only_its_events(
    db: Database, smtp_server: StartServer
) -> None:
    server = smtp_server()
    config = settings(
        server,
        digestWindowSeconds=1,
        recipientsByEvent={"user.deleted": ["security@example.com"]},
        **ALL_ON,
    )
    async with builtin_host(NAME, config) as host:
        await emit(host, "session.created", SESSION)
        await emit(host, "user.deleted", USER)
        await emit(host, "session.deleted", SESSION)
        await until(lambda: len(server.received) == 2)
    by_recipients = {tuple(m.rcpt_tos): m.message for m in server.received}
    everyone = by_recipients[("ops@example.com",)]
    assert everyone["X-StreamSpace-Events"] == "session.created, session.deleted"
    security = by_recipients[("ops@example.com", "security@example.com")]
    assert security["Subject"] == "[StreamSpace] User Deleted: u1"  # one event: a plain message


async def test_a_queued_digest_survives_a_restart(db: Database, smtp_server: StartServer) -> None:
    server = smtp_server()
    config = settings(server, digestWindowSeconds=2, **ALL_ON)
    async with builtin_host(NAME, config) as host:
        await emit(host, "session.created", SESSION)
        await emit(host, "user.created", USER)
    assert server.received == []  # stopped before the window closed
    async with restarted_host():
        await until(lambda: server.received)
    [mail] = server.received
    assert mail.message["X-StreamSpace-Events"] == "session.created, user.created"


async def test_a_digest_stays_queued_while_the_server_is_down(
    db: Database, smtp_server: StartServer
) -> None:
    port = free_port()
    config = {**settings(smtp_server(), digestWindowSeconds=1, **ALL_ON), "smtpPort": port}
    async with builtin_host(NAME, config) as host:
        await emit(host, "session.created", SESSION)
        await until(lambda: PluginLog.filter(plugin=NAME, level="WARNING").exists())
        server = smtp_server(port=port)
        await until(lambda: server.received)
    assert server.received[0].message["X-StreamSpace-Events"] == "session.created"


# -- TLS and AUTH ----------------------------------------------------------------------------


async def test_starttls_with_a_certificate_trusted_through_a_ca_file(
    db: Database, smtp_server: StartServer, certificate: Certificate
) -> None:
    server = smtp_server(tls_context=certificate.server_context(), require_starttls=True)
    config = settings(server, security="starttls", tlsCaFile=str(certificate.cert_file))
    async with builtin_host(NAME, config) as host:
        delivery = await emit(host, "session.created", SESSION)
    assert delivery.status == "SUCCEEDED", delivery.error
    assert server.received[0].tls


async def test_implicit_tls_with_a_certificate_trusted_through_pem_text(
    db: Database, smtp_server: StartServer, certificate: Certificate
) -> None:
    server = smtp_server(ssl_context=certificate.server_context())
    config = settings(server, security="tls", tlsCaPem=certificate.pem)
    async with builtin_host(NAME, config) as host:
        delivery = await emit(host, "session.created", SESSION)
    assert delivery.status == "SUCCEEDED", delivery.error
    assert server.received[0].tls


async def test_an_untrusted_certificate_is_refused(
    db: Database, smtp_server: StartServer, certificate: Certificate
) -> None:
    server = smtp_server(ssl_context=certificate.server_context())
    async with builtin_host(NAME, settings(server, security="tls")) as host:
        first = await first_outcome(host, "session.created", SESSION)
    assert first["status"] == "RETRYING"
    assert "CERTIFICATE_VERIFY_FAILED" in first["error"] or "certificate" in first["error"]
    assert server.received == []


async def test_verification_can_be_turned_off_for_a_trusted_relay(
    db: Database, smtp_server: StartServer, certificate: Certificate
) -> None:
    server = smtp_server(ssl_context=certificate.server_context())
    config = settings(server, security="tls", tlsVerify=False)
    async with builtin_host(NAME, config) as host:
        delivery = await emit(host, "session.created", SESSION)
    assert delivery.status == "SUCCEEDED", delivery.error


async def test_starttls_is_required_when_configured(db: Database, smtp_server: StartServer) -> None:
    server = smtp_server()  # offers no STARTTLS: the plugin must not fall back to plain text
    async with builtin_host(NAME, settings(server, security="starttls")) as host:
        delivery = await emit(host, "session.created", SESSION)
    assert delivery.status == "DEAD"
    assert "STARTTLS" in (delivery.error or "")
    assert server.received == []


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"mailer",
        b"s3cret-pass",
    )
    return AuthResult(success=ok, handled=False)


async def test_smtp_auth_logs_in_with_username_and_password(
    db: Database, smtp_server: StartServer, certificate: Certificate
) -> None:
    server = smtp_server(
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    config = settings(
        server,
        security="starttls",
        tlsCaFile=str(certificate.cert_file),
        username="mailer",
        password="s3cret-pass",
    )
    async with builtin_host(NAME, config) as host:
        delivery = await emit(host, "session.created", SESSION)
        stored = await InstalledPlugin.get(name=NAME)
    assert delivery.status == "SUCCEEDED", delivery.error
    assert server.received[0].authenticated and server.received[0].tls
    assert "password" not in stored.config  # kept encrypted, with the other secrets


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_a_wrong_password_is_final(db: Database, smtp_server: StartServer) -> None:
    server = smtp_server(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    config = settings(server, username="mailer", password="wrong")
    async with builtin_host(NAME, config) as host:
        delivery = await emit(host, "session.created", SESSION)
    assert (delivery.status, delivery.attempts) == ("DEAD", 1)
    assert "SMTP login failed: 535" in (delivery.error or "")


# -- the server's answers as delivery outcomes ------------------------------------------------


async def test_a_refused_recipient_is_final(db: Database, smtp_server: StartServer) -> None:
    server = smtp_server()
    server.recorder.refuse["ops@example.com"] = ["550 5.1.1 No such user"]
    async with builtin_host(NAME, settings(server)) as host:
        delivery = await emit(host, "session.created", SESSION)
    assert (delivery.status, delivery.attempts) == ("DEAD", 1)
    assert "ops@example.com (550 5.1.1 No such user)" in (delivery.error or "")


async def test_some_refused_recipients_are_reported_and_the_rest_served(
    db: Database, smtp_server: StartServer
) -> None:
    server = smtp_server()
    server.recorder.refuse["gone@example.com"] = ["550 5.1.1 No such user"]
    config = settings(server, to=["ops@example.com", "gone@example.com"])
    async with builtin_host(NAME, config) as host:
        delivery = await emit(host, "session.created", SESSION)
    assert delivery.status == "SUCCEEDED"
    assert delivery.result["recipients"] == ["ops@example.com"]
    assert delivery.result["refused"] == {"gone@example.com": "550 5.1.1 No such user"}
    assert server.received[0].rcpt_tos == ["ops@example.com"]


async def test_a_temporary_refusal_is_retried(db: Database, smtp_server: StartServer) -> None:
    server = smtp_server()
    server.recorder.refuse["ops@example.com"] = ["451 4.7.1 Greylisted, try again", "250 OK"]
    async with builtin_host(NAME, settings(server)) as host:
        result = await host.emitter.emit(EmitRequest("session.created", SESSION))
        await until(lambda: all_final(result.event.id))
    delivery = await Delivery.get(event_id=result.event.id)
    assert (delivery.status, delivery.attempts) == ("SUCCEEDED", 2)
    assert len(server.received) == 1


async def first_outcome(host: PluginHost, event_type: str, payload: dict[str, Any]) -> Any:
    """The delivery as its first attempt left it (before any retry)."""
    async with host.hub.subscribe(DELIVERY_CHANNEL) as inbox, asyncio.timeout(10):
        await host.emitter.emit(EmitRequest(event_type, payload))
        while True:
            message = await inbox.get()
            if message.data is not None:
                return message.data["delivery"]


async def test_a_server_that_is_down_is_retried(db: Database, smtp_server: StartServer) -> None:
    config = {**settings(smtp_server()), "smtpPort": free_port()}  # nothing listens there
    async with builtin_host(NAME, config) as host:
        first = await first_outcome(host, "session.created", SESSION)
    assert (first["status"], first["attempts"]) == ("RETRYING", 1)
    assert "could not be reached" in first["error"]


# -- testPlugin and configuration -------------------------------------------------------------


async def test_the_connection_test_sends_a_real_message(
    db: Database, smtp_server: StartServer
) -> None:
    server = smtp_server()
    async with builtin_host(NAME, settings(server)) as host:
        result = await host.test_plugin(NAME)
    assert result is not None and result["ok"] is True
    assert result["recipients"] == ["ops@example.com"]
    [mail] = server.received
    assert mail.message["Subject"] == "[StreamSpace] Test message"
    text, html = text_and_html(mail.message)
    assert "test message" in text and "Test message" in html


async def test_a_failing_connection_test_reports_the_reason(
    db: Database, smtp_server: StartServer
) -> None:
    server = smtp_server()
    server.recorder.refuse["ops@example.com"] = ["550 5.1.1 No such user"]
    async with builtin_host(NAME, settings(server)) as host:
        result = await host.test_plugin(NAME)
    assert result is not None and result["ok"] is False
    assert "550" in result["message"]


async def test_the_configuration_is_checked_against_the_schema(db: Database) -> None:
    from runtime.catalog.installs import PluginSchema
    from runtime.core.errors import BadUserInput

    registry = PluginRegistry()
    discover_builtins(registry)
    spec = registry.get(NAME)
    assert spec is not None
    schema = PluginSchema.of(spec.manifest.raw)
    assert schema.secrets == {"password"}
    assert (schema.defaults["smtpPort"], schema.defaults["security"]) == (587, "starttls")
    bad = {
        **schema.defaults,
        "from": "not-an-address",
        "to": [],
        "security": "ssl",
        "recipientsByEvent": {"session.created": ["nobody"]},
    }
    with pytest.raises(BadUserInput) as caught:
        schema.validated(bad)
    paths = {problem.path for problem in caught.value.fields}
    assert paths == {"from", "to", "security", "smtpHost", "recipientsByEvent.session.created.0"}
