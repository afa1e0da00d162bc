"""The client examples of docs/graphql.md ("Clients") run against the server process.

Each ```python example=NAME and ```js example=NAME block is written to a file and run as a
program (.venv's python; node with graphql-ws and ws installed by npm into a temporary folder),
with STREAMSPACE_URL and STREAMSPACE_TOKEN set as the docs tell a reader to. The webhook plugin
POSTs to a receiver on 127.0.0.1, so an event the examples emit or watch really goes somewhere.

Nothing here asserts how fast anything is: waits are bounded by deadlines only.
"""

from __future__ import annotations

import asyncio
import base64
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.e2e.conftest import (
    Server,
    check_clean_exit,
    clean_env,
    cli_path,
    data_of,
    start_server,
)
from tests.local_http import serve

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "graphql.md"
BLOCK = re.compile(r"^```(python|js) example=([\w-]+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# The JavaScript client, pinned; graphql is graphql-ws's peer dependency.
NPM_PACKAGES = ("graphql-ws@6.4.2", "ws@8.23.0", "graphql@16.15.0")
WEBHOOK = "streamspace-webhook"
SECRET = "whsec_" + base64.b64encode(b"docs-examples-key-0123456789abcd").decode()
SESSION_ID = "admin-firefox-abc123"  # the session the emit example reports
DEADLINE = 30.0  # a safety limit for anything that hangs, never an expectation


def example(language: str, name: str) -> str:
    """The one block of docs/graphql.md marked ```<language> example=<name>."""
    found = [
        code
        for lang, label, code in BLOCK.findall(DOC.read_text())
        if (lang, label) == (language, name)
    ]
    assert len(found) == 1, f"docs/graphql.md has {len(found)} ```{language} example={name} blocks"
    return found[0]


def test_the_clients_section_has_every_example() -> None:
    labels = {(lang, label) for lang, label, _ in BLOCK.findall(DOC.read_text())}
    assert labels == {
        ("python", "emit"),
        ("python", "admin-ui"),
        ("python", "dashboard"),
        ("js", "dashboard"),
    }


# -- the server, its tokens, a webhook receiver ------------------------------------------------


def mint(server: Server, role: str, subject: str) -> str:
    result = subprocess.run(
        [
            cli_path(),
            "token",
            "--role",
            role,
            "--subject",
            subject,
            "--data-dir",
            str(server.data_dir),
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@dataclass
class Running:
    server: Server
    admin: str
    platform: str


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    server = start_server(tmp_path_factory.mktemp("docs-clients"), "sqlite")
    try:
        yield Running(server, mint(server, "admin", "ui"), mint(server, "platform", "core"))
    finally:
        check_clean_exit(server, server.stop())


@dataclass
class Receiver:
    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        assert request.headers.get("webhook-signature", "").startswith("v1,")
        self.bodies.append(await request.json())
        return web.Response(text="ok")

    def sessions(self) -> list[str]:
        return [body.get("data", {}).get("id") for body in self.bodies]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    async with serve(found.handle) as url:
        found.url = url
        yield found


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


async def installed_webhook(http: aiohttp.ClientSession, running: Running) -> dict[str, Any] | None:
    found = await data_of(
        http,
        running.server,
        "query P($n: String) { installedPlugin(name: $n) { id status } }",
        {"n": WEBHOOK},
        running.admin,
    )
    plugin: dict[str, Any] | None = found["installedPlugin"]
    return plugin


async def wait_active(http: aiohttp.ClientSession, running: Running) -> None:
    deadline = time.monotonic() + DEADLINE
    while (plugin := await installed_webhook(http, running)) is None or plugin[
        "status"
    ] != "ACTIVE":
        assert time.monotonic() < deadline, f"{WEBHOOK} did not become ACTIVE: {plugin}"
        await asyncio.sleep(0.05)


async def point_webhook(http: aiohttp.ClientSession, running: Running, url: str) -> None:
    """Install or reconfigure the webhook plugin to POST to `url`, and wait until it is ACTIVE."""
    config = {"url": url, "secret": SECRET, "timeoutSeconds": 5}
    plugin = await installed_webhook(http, running)
    if plugin is None:
        entries = await data_of(
            http,
            running.server,
            "query C($s: String) { catalog(filter: {search: $s}) { edges { node { id name } } } }",
            {"s": WEBHOOK},
            running.admin,
        )
        [entry] = [e["node"] for e in entries["catalog"]["edges"] if e["node"]["name"] == WEBHOOK]
        await data_of(
            http,
            running.server,
            "mutation I($id: ID!, $c: JSON) {"
            " installPlugin(catalogPluginId: $id, config: $c, enable: true) { id } }",
            {"id": entry["id"], "c": config},
            running.admin,
        )
    else:
        await data_of(
            http,
            running.server,
            "mutation U($id: ID!, $c: JSON) { updatePlugin(id: $id, config: $c, enabled: true)"
            " { id } }",
            {"id": plugin["id"], "c": config},
            running.admin,
        )
    await wait_active(http, running)


async def emit(http: aiohttp.ClientSession, running: Running, session_id: str) -> str:
    found = await data_of(
        http,
        running.server,
        "mutation E($input: EmitEventInput!) { emitEvent(input: $input) { event { id } } }",
        {"input": {"type": "session.created", "payload": {"id": session_id, "user": "ops"}}},
        running.platform,
    )
    return str(found["emitEvent"]["event"]["id"])


async def subscriber_count(http: aiohttp.ClientSession, server: Server) -> int:
    async with http.get(f"{server.base}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("streamspace_subscribers "):
            return int(float(line.split()[1]))
    raise AssertionError(f"no streamspace_subscribers in /metrics:\n{text}")


# -- running the examples ----------------------------------------------------------------------


def example_env(running: Running, token: str, **extra: str) -> dict[str, str]:
    return clean_env(STREAMSPACE_URL=running.server.graphql_url, STREAMSPACE_TOKEN=token, **extra)


async def start(program: list[str], env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *program,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
        cwd=cwd,
    )


async def finish(process: asyncio.subprocess.Process, what: str) -> str:
    """Wait for the example to exit; return its output, or fail with what it printed."""
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), DEADLINE)
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
        pytest.fail(f"{what} did not exit in {DEADLINE}s:\n{stdout.decode()}\n{stderr.decode()}")
    assert process.returncode == 0, f"{what} exited with {process.returncode}:\n{stderr.decode()}"
    return stdout.decode()


def python_example(name: str, directory: Path) -> list[str]:
    script = directory / f"{name}.py"
    script.write_text(example("python", name))
    return [sys.executable, str(script)]


@pytest.fixture(scope="session")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with graphql-ws and ws installed, once per test session."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("the JavaScript example needs Node.js 20 or later with npm on PATH")
    prefix = tmp_path_factory.mktemp("graphql-ws-client")
    try:
        installed = subprocess.run(
            [
                npm,
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(prefix),
                *NPM_PACKAGES,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"npm install {' '.join(NPM_PACKAGES)} did not finish in 180s")
    if installed.returncode != 0:
        pytest.fail(
            f"npm install {' '.join(NPM_PACKAGES)} failed (is the npm registry reachable?):\n"
            f"{installed.stderr}"
        )
    return prefix


async def watch_and_emit(
    http: aiohttp.ClientSession, running: Running, program: list[str], cwd: Path, what: str
) -> tuple[str, str]:
    """Start a dashboard example, emit one event once it subscribed; its output and the event."""
    before = await subscriber_count(http, running.server)
    process = await start(program, example_env(running, running.admin), cwd)
    deadline = time.monotonic() + DEADLINE
    while await subscriber_count(http, running.server) <= before:
        if process.returncode is not None or time.monotonic() > deadline:
            await finish(process, what)  # fails with what it printed
            pytest.fail(f"{what} exited before it subscribed")
        await asyncio.sleep(0.05)
    event_id = await emit(http, running, "dashboard-session")
    return await finish(process, what), event_id


def check_dashboard_output(output: str, event_id: str) -> None:
    lines = output.strip().splitlines()
    assert lines, "the dashboard printed nothing"
    assert all(line.startswith(f"{WEBHOOK} event {event_id} (session.created): ") for line in lines)
    assert lines[-1].endswith("SUCCEEDED after 1 attempt(s)"), output


# -- the examples ------------------------------------------------------------------------------


async def test_the_admin_ui_example_installs_then_reconfigures_the_webhook(
    http: aiohttp.ClientSession, running: Running, receiver: Receiver, tmp_path: Path
) -> None:
    plugin = await installed_webhook(http, running)
    if plugin is not None:  # so the example takes its install path first
        await data_of(
            http,
            running.server,
            "mutation U($id: ID!) { uninstallPlugin(id: $id) }",
            {"id": plugin["id"]},
            running.admin,
        )
    program = python_example("admin-ui", tmp_path)
    # Installed first with one URL, then reconfigured to another: an updatePlugin(enabled: true)
    # that changes nothing leaves the status at INSTALLED though the plugin still runs (a server
    # bug, reported), which would hide whether the reconfiguration took.
    env = example_env(running, running.admin, WEBHOOK_SECRET=SECRET)
    env["WEBHOOK_URL"] = f"{receiver.url}?first"

    first = await finish(await start(program, env, tmp_path), "the admin UI example")
    assert f"{WEBHOOK} 1.0.0: Webhook (available)" in first, first
    assert f"configured {WEBHOOK} 1.0.0 as plugin " in first, first
    assert "'url': '********'" in first and "'secret': '********'" in first, first
    assert f"  {WEBHOOK}: enabled=True" in first, first

    env["WEBHOOK_URL"] = receiver.url
    second = await finish(await start(program, env, tmp_path), "the admin UI example")
    assert f"{WEBHOOK} 1.0.0: Webhook (installed)" in second, second

    # What the UI configured works: an event reaches the receiver, signed with the secret.
    await wait_active(http, running)
    await emit(http, running, "admin-ui-session")
    deadline = time.monotonic() + DEADLINE
    while "admin-ui-session" not in receiver.sessions():
        assert time.monotonic() < deadline, "the webhook never reached the receiver"
        await asyncio.sleep(0.05)


async def test_the_platform_example_emits_an_event_that_the_webhook_delivers(
    http: aiohttp.ClientSession, running: Running, receiver: Receiver, tmp_path: Path
) -> None:
    await point_webhook(http, running, receiver.url)
    program = python_example("emit", tmp_path)
    output = await finish(
        await start(program, example_env(running, running.platform), tmp_path),
        "the platform example",
    )
    assert re.match(r"event \d+ \(session\.created\)\n", output), output
    assert f"  {WEBHOOK} on_event: SUCCEEDED" in output, output
    assert SESSION_ID in receiver.sessions()  # wait: true answered after the delivery


async def test_the_python_dashboard_example_prints_outcomes_until_the_first_final_one(
    http: aiohttp.ClientSession, running: Running, receiver: Receiver, tmp_path: Path
) -> None:
    await point_webhook(http, running, receiver.url)
    program = python_example("dashboard", tmp_path)
    output, event_id = await watch_and_emit(
        http, running, program, tmp_path, "the Python dashboard example"
    )
    check_dashboard_output(output, event_id)


async def test_the_javascript_dashboard_example_prints_outcomes_until_the_first_final_one(
    http: aiohttp.ClientSession, running: Running, receiver: Receiver, node_modules: Path
) -> None:
    await point_webhook(http, running, receiver.url)
    # Beside node_modules, where node resolves "graphql-ws" and "ws" from.
    script = node_modules / "dashboard.mjs"
    script.write_text(example("js", "dashboard"))
    node = shutil.which("node")
    assert node is not None
    output, event_id = await watch_and_emit(
        http, running, [node, str(script)], node_modules, "the JavaScript dashboard example"
    )
    check_dashboard_output(output, event_id)
