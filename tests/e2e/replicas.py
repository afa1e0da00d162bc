"""Helpers for end-to-end tests of replicas: a Redis server of the test's own, a webhook receiver
on a thread of its own, and a pair of servers sharing one PostgreSQL database and that Redis.

Everything binds 127.0.0.1. Every process started here is ended by its own id.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from tests.e2e.conftest import Server, clean_env, cli_path, data_of, free_port, start_server

WEBHOOK = "streamspace-webhook"
SECRET_KEY = b"replica-signing-key-0123456789ab"
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()
FINAL = {"SUCCEEDED", "DEAD", "SKIPPED"}
# The webhook's hook timeout and its own HTTP timeout: short, so leases run out soon.
HOOK_TIMEOUT = 1
HELD = 0  # `answered` of a request held past the sender's patience: its answer went nowhere

EMIT = """
    mutation Emit($input: EmitEventInput!) {
        emitEvent(input: $input) { event { id } deliveries { id plugin status } }
    }
"""


# -- Redis ---------------------------------------------------------------------------------------


class RedisServer:
    """`redis-server` on a free port of 127.0.0.1, without persistence; stop and start again on
    the same port to simulate a broker restart."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, limit: float = 30.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        log = (self.directory / "redis.log").open("ab")
        options = {"--bind": "127.0.0.1", "--port": str(self.port), "--save": ""}
        options |= {"--appendonly": "no", "--dir": str(self.directory)}
        command = [binary, *(part for pair in options.items() for part in pair)]
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + limit
        while not self.answers():
            if self.process.poll() is not None:
                pytest.fail(f"redis-server exited with {self.process.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not answer in {limit}s: {self.log()}")
            time.sleep(0.05)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM (Redis closes every client connection), SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


# -- the webhook receiver ------------------------------------------------------------------------


@dataclass
class Hit:
    webhook_id: str
    session: str
    signature_ok: bool
    answered: int | None = None  # None while the request is being answered


@dataclass
class HookReceiver:
    """A Standard Webhooks endpoint on its own thread and event loop, so it serves the module's
    tests whichever loop each test runs on.

    `delay` seconds pass before each answer (a slow receiver); with `hold` > 0 the first request
    of each webhook-id is held that long and recorded as HELD (its sender has given up on it by
    then). Answers are 200 otherwise.
    """

    key: bytes = SECRET_KEY
    delay: float = 0.0
    hold: float = 0.0
    hits: list[Hit] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stopped: asyncio.Event | None = None

    def signature_ok(self, webhook_id: str, timestamp: str, body: str, header: str) -> bool:
        signed = f"{webhook_id}.{timestamp}.{body}".encode()
        expected = base64.b64encode(hmac.new(self.key, signed, hashlib.sha256).digest()).decode()
        return any(
            version == "v1" and hmac.compare_digest(signature, expected)
            for version, _, signature in (c.partition(",") for c in header.split())
        )

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        webhook_id = request.headers.get("webhook-id", "")
        timestamp = request.headers.get("webhook-timestamp", "")
        ok = (
            bool(webhook_id)
            and timestamp.isdigit()
            and abs(time.time() - int(timestamp)) < 300
            and self.signature_ok(
                webhook_id, timestamp, body, request.headers.get("webhook-signature", "")
            )
        )
        session = str(json.loads(body).get("data", {}).get("id", ""))
        hit = Hit(webhook_id, session, ok)
        with self._lock:
            first = all(h.webhook_id != webhook_id for h in self.hits)
            self.hits.append(hit)
        if not ok:
            hit.answered = 401
            return web.Response(status=401, text="bad signature")
        if self.hold and first:
            await asyncio.sleep(self.hold)
            hit.answered = HELD
            return web.Response(status=200, text="too late")
        if self.delay:
            await asyncio.sleep(self.delay)
        hit.answered = 200
        return web.Response(status=200, text="ok")

    def start(self) -> None:
        ready = threading.Event()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/hook"

        async def serve() -> None:
            self._stopped = asyncio.Event()
            app = web.Application()
            app.router.add_post("/hook", self._handle)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            ready.set()
            try:
                await self._stopped.wait()
            finally:
                await runner.cleanup()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(serve())
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="hook-receiver", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            pytest.fail("the webhook receiver did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(30)

    def about(self, prefix: str) -> list[Hit]:
        """The requests for sessions whose id starts with `prefix` (one test's events)."""
        with self._lock:
            return [h for h in self.hits if h.session.startswith(prefix)]


# -- the replicas --------------------------------------------------------------------------------


def platform_token(data_dir: Path) -> str:
    result = subprocess.run(
        [
            cli_path(),
            "token",
            "--role",
            "platform",
            "--subject",
            "core",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@dataclass
class Cluster:
    """Replicas "a" and "b" on one database and one Redis; one data directory's secrets, so a
    token works on either."""

    root: Path
    database_url: str
    redis: RedisServer
    receiver: HookReceiver
    env: dict[str, str]
    servers: dict[str, Server] = field(default_factory=dict)
    retired: list[Server] = field(default_factory=list)
    admin_token: str = ""
    platform_token: str = ""
    plugin_id: str = ""
    problems: list[str] = field(default_factory=list)  # failed emits that were tried again
    _starts: int = 0

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def start(self, label: str) -> Server:
        """Start replica `label` (again), in a directory of its own for its logs."""
        self._starts += 1
        directory = self.root / f"{label}-{self._starts}"
        directory.mkdir()
        (directory / "data").symlink_to(self.data_dir)
        server = start_server(
            directory,
            "postgres",
            self.database_url,
            STREAMSPACE_BROADCAST_URL=self.redis.url,
            **self.env,
        )
        old = self.servers.get(label)
        if old is not None:
            self.retired.append(old)
        self.servers[label] = server
        self.admin_token = self.admin_token or server.admin_token
        server.admin_token = self.admin_token
        return server

    def replica_suffix(self, label: str) -> str:
        return f":{self.servers[label].process.pid}"

    async def db(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """One statement on a fresh connection (pooled ones may be terminated by a test)."""
        connection = await asyncpg.connect(
            self.database_url.replace("postgres://", "postgresql://")
        )
        try:
            rows: list[asyncpg.Record] = await connection.fetch(query, *args)
            return rows
        finally:
            await connection.close()

    async def emit(
        self, http: aiohttp.ClientSession, label: str, session: str, *, attempts: int = 1
    ) -> tuple[int, int]:
        """Emit `session.created` for `session` on replica `label`; (delivery id, failures).

        With `attempts` > 1 a failed request (a dead pooled connection) is tried again.
        """
        server = self.servers[label]
        variables = {
            "input": {
                "type": "session.created",
                "payload": {"id": session, "user_id": "alice", "template_name": "firefox"},
            }
        }
        failures = 0
        while True:
            headers = {"Authorization": f"Bearer {self.platform_token}"}
            try:
                async with http.post(
                    server.graphql_url,
                    json={"query": EMIT, "variables": variables},
                    headers=headers,
                ) as response:
                    document = await response.json(content_type=None)
                    if response.status == 200 and not document.get("errors"):
                        [delivery] = document["data"]["emitEvent"]["deliveries"]
                        assert delivery["plugin"] == WEBHOOK
                        return int(delivery["id"]), failures
                    problem = f"HTTP {response.status}: {document}"
            except (aiohttp.ClientError, ValueError) as error:
                problem = f"{type(error).__name__}: {error}"
            failures += 1
            self.problems.append(f"{label}: {problem}"[:400])
            if failures >= attempts:
                raise AssertionError(f"emitEvent on {label} failed {failures} times: {problem}")
            await asyncio.sleep(0.2)

    async def deliveries(self, ids: set[int]) -> dict[int, asyncpg.Record]:
        rows = await self.db(
            "SELECT id, status, attempts, error FROM deliveries WHERE id = ANY($1::bigint[])",
            sorted(ids),
        )
        return {int(row["id"]): row for row in rows}

    async def wait_final(self, ids: set[int], limit: float) -> dict[int, asyncpg.Record]:
        deadline = time.monotonic() + limit
        while True:
            rows = await self.deliveries(ids)
            if len(rows) == len(ids) and all(r["status"] in FINAL for r in rows.values()):
                return rows
            if time.monotonic() > deadline:
                counts: dict[str, int] = {}
                for row in rows.values():
                    counts[row["status"]] = counts.get(row["status"], 0) + 1
                raise AssertionError(f"deliveries not final after {limit}s: {counts}")
            await asyncio.sleep(0.2)

    async def loaded_everywhere(self, http: aiohttp.ClientSession, limit: float) -> None:
        """Until every running replica reports the plugin loaded and ACTIVE (/metrics)."""
        deadline = time.monotonic() + limit
        for label, server in self.servers.items():
            while True:
                async with http.get(f"{server.base}/metrics") as response:
                    text = await response.text()
                if 'streamspace_plugins_loaded{status="ACTIVE"} 1.0' in text:
                    break
                assert time.monotonic() < deadline, f"{label} never loaded the plugin:\n{text}"
                await asyncio.sleep(0.1)

    async def install_webhook(self, http: aiohttp.ClientSession, **config: Any) -> None:
        server = self.servers["a"]
        found = await data_of(
            http,
            server,
            "query C($s: String) { catalog(filter: {search: $s}) { edges { node { id name } } } }",
            {"s": WEBHOOK},
        )
        [entry] = [e["node"] for e in found["catalog"]["edges"] if e["node"]["name"] == WEBHOOK]
        installed = await data_of(
            http,
            server,
            "mutation I($id: ID!, $config: JSON, $settings: PluginSettingsInput) {"
            " installPlugin(catalogPluginId: $id, config: $config, enable: true,"
            " settings: $settings) { id enabled } }",
            {
                "id": entry["id"],
                "config": self.webhook_config(**config),
                "settings": {"timeoutSeconds": HOOK_TIMEOUT},
            },
        )
        self.plugin_id = str(installed["installPlugin"]["id"])

    def webhook_config(self, **config: Any) -> dict[str, Any]:
        return {
            "url": self.receiver.url,
            "secret": SECRET,
            "timeoutSeconds": HOOK_TIMEOUT,
            **config,
        }


def log_problems(server: Server, after: int = 0) -> list[str]:
    """Log lines (from line `after` on) at ERROR or above, and lines that are not JSON."""
    problems = []
    for line in server.logs().splitlines()[after:]:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            problems.append(f"not JSON: {line[:300]}")
            continue
        if str(record.get("levelname", record.get("level", ""))).upper() in {"ERROR", "CRITICAL"}:
            problems.append(line[:500])
    return problems
