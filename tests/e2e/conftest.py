"""The real server as a separate process, talked to over HTTP and WebSocket on 127.0.0.1.

`server` starts `streamspace-plugins serve` once per backend per test module (SQLite in its
data directory; PostgreSQL in a database of its own, created and dropped here), waits for
/readyz, and at the end stops it with SIGTERM and checks it exited cleanly.

Process management is synchronous; test bodies are async and use aiohttp as the client.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from runtime.core.address_policy import LOOPBACK_NETWORKS
from tests.conftest import create_database, drop_database, require_postgres, run_apart

# Safety limits for a process that hangs; nothing asserts how fast anything is.
START_LIMIT = 90.0
STOP_LIMIT = 60.0


def cli_path() -> str:
    """The console script of the environment running the tests."""
    beside = Path(sys.executable).with_name("streamspace-plugins")
    if beside.exists():
        return str(beside)
    found = shutil.which("streamspace-plugins")
    if found is None:
        pytest.fail("the streamspace-plugins console script is not installed (pip install -e .)")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without STREAMSPACE_* settings (CI may set some), plus extra."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("STREAMSPACE_")}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


async def run_cli(*args: str, env: dict[str, str] | None = None) -> CliResult:
    """Run the command line as a subprocess and collect what it printed."""
    process = await asyncio.create_subprocess_exec(
        cli_path(),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env if env is not None else clean_env(),
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return CliResult(process.returncode, stdout.decode(), stderr.decode())


@dataclass
class Server:
    backend: str
    port: int
    data_dir: Path
    database_url: str | None
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    admin_token: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.base}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def logs(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/readyz", timeout=5) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_LIMIT
        while not self._ready():
            if self.process.poll() is not None:
                pytest.fail(
                    f"the server exited with {self.process.returncode} before it was ready:\n"
                    f"{self.output()}\n{self.logs()}"
                )
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"the server was not ready in {START_LIMIT}s:\n{self.logs()}")
            time.sleep(0.1)
        for line in self.output().splitlines():
            # Printed on the first start of a data directory only (or when asked).
            if line.strip().startswith("admin token (24h):"):
                self.admin_token = line.rsplit(" ", 1)[-1].strip()

    def stop(self) -> int:
        """SIGTERM, as a process manager stops it; return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_LIMIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"the server ignored SIGTERM for {STOP_LIMIT}s:\n{self.logs()}")
        return self.process.returncode


def start_server(
    directory: Path,
    backend: str,
    database_url: str | None = None,
    *,
    allowed_networks: str | None = LOOPBACK_NETWORKS,
    file_roots: Sequence[Path] = (),
    flags: Sequence[str] = (),
    **env: str,
) -> Server:
    """Start `serve` in `directory`. Its address policy allows `allowed_networks` (by default
    the loopback networks where tests' receivers and vendors listen; None: the server's own
    default, none) and file:// repositories under `file_roots`."""
    data_dir = directory / "data"
    port = free_port()
    args = [cli_path(), "serve", "--port", str(port), "--data-dir", str(data_dir), *flags]
    if database_url:
        args += ["--database-url", database_url]
    if allowed_networks is not None:
        args += ["--allowed-networks", allowed_networks]
    if file_roots:
        args += ["--file-repository-roots", ":".join(str(root) for root in file_roots)]
    stdout_path, stderr_path = directory / "serve.out", directory / "serve.err"
    environment = clean_env(**env)
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            args, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=environment
        )
    server = Server(
        backend, port, data_dir, database_url, process, stdout_path, stderr_path, env=environment
    )
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def check_clean_exit(server: Server, status: int) -> None:
    logs = server.logs()
    assert status == 0, f"the server exited with {status} on SIGTERM:\n{logs}"
    assert "Traceback" not in logs, logs
    for line in logs.splitlines():
        if line.strip():
            json.loads(line)  # every log line is one JSON object


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A running server on each backend, shared by the tests of one module."""
    directory = tmp_path_factory.mktemp(f"serve-{request.param}")
    database: str | None = None
    url: str | None = None
    if request.param == "postgres":
        require_postgres()
        database = f"ssp_e2e_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        url = run_apart(create_database(database))
    try:
        running = start_server(
            directory,
            request.param,
            url,
            # Tests add file:// repositories from their own tmp_path, all under the run's.
            file_roots=[tmp_path_factory.getbasetemp()],
            STREAMSPACE_MAX_BODY_BYTES=str(256 * 1024),
        )
        try:
            yield running
        finally:
            check_clean_exit(running, running.stop())
    finally:
        if database is not None:
            run_apart(drop_database(database))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


async def graphql(
    http: aiohttp.ClientSession,
    server: Server,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """POST one operation; return the whole response document."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(
        server.graphql_url, json={"query": query, "variables": variables or {}}, headers=headers
    ) as response:
        assert response.status == 200, await response.text()
        document: dict[str, Any] = await response.json()
        return document


async def data_of(
    http: aiohttp.ClientSession,
    server: Server,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """The data of an operation that must succeed."""
    document = await graphql(http, server, query, variables, token or server.admin_token)
    assert "errors" not in document, document["errors"]
    data: dict[str, Any] = document["data"]
    return data


def error_codes(document: dict[str, Any]) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in document.get("errors", [])]
