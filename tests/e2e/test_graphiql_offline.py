"""GraphiQL at GET /graphql works with no internet: every file comes from the server.

The page is loaded in headless Chromium (Debian's `chromium`, which .ci/run installs), driven
over the Chrome DevTools Protocol: a query is typed into the editor, run with the run button and
read back from the result pane, while every request the page makes is recorded and must go to
127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from graph.graphiql import ASSET_DIR, SCRIPTS, STYLES, assets
from tests.e2e.conftest import Server, check_clean_exit, free_port, start_server

pytestmark = pytest.mark.e2e

MAX_VENDORED_BYTES = 5 * 1024 * 1024
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-sync",
    "--metrics-recording-only",
)


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def test_vendored_files_match_their_integrity_and_licences() -> None:
    listed = assets()
    assert set(listed) == set(SCRIPTS) | set(STYLES)
    total = 0
    for name, entry in listed.items():
        data = (ASSET_DIR / name).read_bytes()
        total += len(data)
        assert sri(data) == entry["integrity"], f"{name} changed since it was vendored"
        assert re.fullmatch(r"\d+\.\d+\.\d+", entry["version"]), entry  # pinned, no ranges
        assert entry["license"] == "MIT"
        licence = (ASSET_DIR / entry["licenseFile"]).read_text()
        assert "Permission is hereby granted" in licence
    assert total < MAX_VENDORED_BYTES
    packages = {entry["package"] for entry in listed.values()}
    assert {"graphiql", "@graphiql/plugin-explorer", "react", "react-dom"} <= packages


@pytest.fixture(scope="module")
def graphiql_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("graphiql"), "sqlite")
    try:
        yield running
    finally:
        check_clean_exit(running, running.stop())


async def test_page_references_only_local_files_with_integrity(graphiql_server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(graphiql_server.graphql_url, headers={"Accept": "text/html"}) as page:
            assert page.status == 200
            html = await page.text()
        references = re.findall(r'(?:src|href)="([^"]+)" integrity="([^"]+)"', html)
        assert {url.rsplit("/", 1)[-1] for url, _ in references} == set(SCRIPTS) | set(STYLES)
        assert "http://" not in html and "https://" not in html, "no absolute URL in the page"
        for url, integrity in references:
            assert url.startswith("/graphiql-assets/")
            async with http.get(graphiql_server.base + url) as asset:
                assert asset.status == 200
                assert sri(await asset.read()) == integrity
        async with http.get(graphiql_server.base + "/graphiql-assets/LICENSE.graphiql") as lic:
            assert lic.status == 200
        async with http.get(graphiql_server.base + "/graphiql-assets/..%2Fgraphiql.py") as bad:
            assert bad.status == 404


# -- headless Chromium over the DevTools protocol ----------------------------------------------


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class DevTools:
    """One page target's DevTools session: commands, and the events seen so far."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.socket:
            data = json.loads(message.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.append(data)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[number] = future
        await self.socket.send_json({"id": number, "method": method, "params": params})
        answer = await asyncio.wait_for(future, 30)
        assert "error" not in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    async def evaluate(self, expression: str) -> Any:
        answer = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in answer, answer
        return answer["result"].get("value")

    async def wait_for(self, expression: str, limit: float = 30.0) -> Any:
        deadline = time.monotonic() + limit
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expression}")
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        await self.socket.close()
        self.reader.cancel()


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """Headless Chromium with its DevTools on a free port of 127.0.0.1."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium package)")
    port = free_port()
    errors = tmp_path / "chromium.err"
    with errors.open("wb") as stderr:
        process = subprocess.Popen(
            [
                executable,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={tmp_path / 'profile'}",
                f"--remote-debugging-port={port}",
                "--remote-debugging-address=127.0.0.1",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield process, port, errors
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def browser(
    chromium: tuple[subprocess.Popen[bytes], int, Path],
) -> AsyncIterator[DevTools]:
    process, port, errors = chromium
    async with aiohttp.ClientSession() as http:
        targets: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while not targets:
            try:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as answer:
                    targets = [t for t in await answer.json() if t.get("type") == "page"]
            except aiohttp.ClientError:
                pass
            if not targets:
                assert process.poll() is None, errors.read_text()
                assert time.monotonic() < deadline, "chromium's DevTools did not answer"
                await asyncio.sleep(0.2)
        socket = await http.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=0)
        devtools = DevTools(socket)
        try:
            yield devtools
        finally:
            await devtools.close()


async def test_a_query_runs_through_the_ui_without_leaving_the_machine(
    graphiql_server: Server, browser: DevTools
) -> None:
    await browser.send("Network.enable")
    await browser.send("Page.enable")
    await browser.send("Runtime.enable")
    await browser.send("Page.navigate", url=graphiql_server.graphql_url)
    await browser.wait_for("!!document.querySelector('.graphiql-query-editor .CodeMirror')")
    # The explorer plugin loaded and sits in the sidebar.
    assert await browser.evaluate("typeof GraphiQLPluginExplorer.explorerPlugin === 'function'")
    assert await browser.wait_for(
        "document.querySelectorAll('.graphiql-sidebar button').length >= 3"
    )

    token = json.dumps(graphiql_server.admin_token)
    await browser.evaluate(f"document.getElementById('auth-token').value = {token}; true")
    query = json.dumps("query FromTheUi { viewer { subject roles } }")
    await browser.evaluate(
        "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
        f".setValue({query}); true"
    )
    await browser.evaluate("document.querySelector('.graphiql-execute-button').click(); true")
    shown = await browser.wait_for(
        "(() => { const pane = document.querySelector('.graphiql-response .CodeMirror');"
        " const text = pane && pane.CodeMirror.getValue();"
        " return text && text.includes('subject') ? text : null; })()"
    )
    result = json.loads(shown)
    # The token typed into the page's field was sent: the viewer is the admin.
    assert result["data"]["viewer"]["subject"] == "admin", result
    assert "admin" in result["data"]["viewer"]["roles"], result

    urls = [
        event["params"]["request"]["url"]
        for event in browser.events
        if event["method"] == "Network.requestWillBeSent"
    ]
    assert any(url.endswith("/graphiql-assets/graphiql.min.js") for url in urls), urls
    assert any(url == graphiql_server.graphql_url for url in urls), urls
    local = f"http://127.0.0.1:{graphiql_server.port}/"
    outside = [u for u in urls if not u.startswith((local, "data:", "blob:", "about:"))]
    assert outside == [], f"requests left the machine: {outside}"
    failed = [e for e in browser.events if e["method"] == "Network.loadingFailed"]
    assert failed == [], failed
