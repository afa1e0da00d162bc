"""Testing helpers of the SDK: run a plugin against sample events in-process.

No server, no database, no network: `PluginHarness` builds a `PluginContext` whose services
record what the plugin does (log entries, storage, scheduled jobs, published events, HTTP
requests) and whose HTTP session answers from a queue of canned responses. Hooks run through
the runtime's own hook runner (runtime.sdk.hook_runner) and retry policy, so an outcome here
is the outcome the server would record: the payload as the plugin's permissions show it, the
result as stored, the error redacted, DEAD after the last attempt.

Example:
    >>> import asyncio
    >>> from runtime.sdk import Plugin
    >>> class Greeter(Plugin):
    ...     async def on_session_created(self, ctx, session):
    ...         ctx.log.info("hello", user=session["userId"])
    ...         await ctx.storage.update("seen", lambda n: n + 1, default=0)
    ...         return {"greeted": session["userId"]}
    >>> async def check():
    ...     harness = PluginHarness(Greeter, permissions=["sessions:read"])
    ...     outcome = await harness.emit("session.created", {"user_id": "ann"})
    ...     return outcome.result, harness.logs[0].message, await harness.storage.get("seen")
    >>> asyncio.run(check())
    ({'greeted': 'ann'}, 'hello', 1)
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from runtime.catalog.config_schema import schema_defaults, secret_shape, validate_config
from runtime.catalog.manifest import Manifest, parse_manifest
from runtime.catalog.secret_config import split_secrets
from runtime.core.redaction import NO_SECRETS, Redactor
from runtime.delivery.deadlines import Deadlines
from runtime.delivery.event_types import (
    Origin,
    check_origin,
    check_type,
    normalise_payload,
    publishing_refused,
)
from runtime.delivery.retries import DEFAULT_MAX_ATTEMPTS, RetryPolicy
from runtime.sdk import Event, Plugin, implemented_hooks
from runtime.sdk.context import LEVELS, Job, LogLevel, Network, PluginContext
from runtime.sdk.event_catalog import LIFECYCLE_TYPES, hook_for, permission_for
from runtime.sdk.extensions import ApiRegistry, UiRegistry
from runtime.sdk.hook_runner import DEFAULT_TIMEOUT, PluginHooks, run_hook, within
from runtime.sdk.outcomes import DeliveryStatus, PermanentFailure, RetryLater, Skip

_NOW = "2026-01-01T12:00:00+00:00"
# One payload per lifecycle event, in the shape emitEvent delivers (normalised).
SAMPLE_PAYLOADS: dict[str, dict[str, Any]] = {
    "session.created": {
        "id": "sess-1",
        "user": "ann",
        "template": "firefox",
        "state": "pending",
        "resources": {"memory": "2Gi", "cpu": "1000m"},
        "createdAt": _NOW,
    },
    "session.started": {"id": "sess-1", "user": "ann", "template": "firefox", "state": "running"},
    "session.stopped": {"id": "sess-1", "user": "ann", "template": "firefox", "state": "stopped"},
    "session.hibernated": {
        "id": "sess-1",
        "user": "ann",
        "template": "firefox",
        "state": "hibernated",
    },
    "session.woken": {"id": "sess-1", "user": "ann", "template": "firefox", "state": "running"},
    "session.deleted": {"id": "sess-1", "user": "ann", "template": "firefox", "state": "deleted"},
    "user.created": {
        "id": "user-1",
        "username": "ann",
        "email": "ann@example.com",
        "fullName": "Ann Example",
        "role": "user",
        "tier": "free",
    },
    "user.updated": {
        "id": "user-1",
        "username": "ann",
        "email": "ann@example.com",
        "fullName": "Ann Example",
        "role": "admin",
        "tier": "pro",
    },
    "user.deleted": {"id": "user-1", "username": "ann"},
    "user.login": {"id": "user-1", "username": "ann", "ip": "192.0.2.10"},
    "user.logout": {"id": "user-1", "username": "ann"},
}
assert set(SAMPLE_PAYLOADS) == set(LIFECYCLE_TYPES)


def sample_payload(event_type: str, **overrides: Any) -> dict[str, Any]:
    """A copy of the sample payload of a lifecycle event (normalised), with `overrides`."""
    base = copy.deepcopy(SAMPLE_PAYLOADS.get(event_type, {}))
    base.update(overrides)
    return normalise_payload(event_type, base)


# -- the recording services ---------------------------------------------------------------


@dataclass(frozen=True)
class LogRecord:
    level: str
    message: str
    data: dict[str, Any]


class RecordingLogger:
    """PluginLogger's API; entries are kept in `records`."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []

    def log(self, level: str, message: str, /, **data: Any) -> None:
        level = level.upper()
        if level not in LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
        self.records.append(LogRecord(level, str(message), _json_value(data)))

    def debug(self, message: str, /, **data: Any) -> None:
        self.log(LogLevel.DEBUG, message, **data)

    def info(self, message: str, /, **data: Any) -> None:
        self.log(LogLevel.INFO, message, **data)

    def warning(self, message: str, /, **data: Any) -> None:
        self.log(LogLevel.WARNING, message, **data)

    def error(self, message: str, /, **data: Any) -> None:
        self.log(LogLevel.ERROR, message, **data)


def _json_value(value: Any) -> Any:
    """What storing `value` as JSON and reading it back gives (as the real services do)."""
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError as error:
        raise ValueError(f"storage values must be JSON values: {error}") from None


class MemoryStore:
    """PluginStore's API (get, set, update, delete, keys) over a dict of JSON values."""

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = {key: _json_value(v) for key, v in (initial or {}).items()}
        self._lock = asyncio.Lock()

    async def get(self, key: str, default: Any = None) -> Any:
        return copy.deepcopy(self.data[key]) if key in self.data else default

    async def set(self, key: str, value: Any) -> None:
        self.data[key] = _json_value(value)

    async def update(self, key: str, change: Callable[[Any], Any], default: Any = None) -> Any:
        async with self._lock:
            current = copy.deepcopy(self.data.get(key, _json_value(default)))
            value = _json_value(change(current))
            self.data[key] = value
        return copy.deepcopy(value)

    async def delete(self, key: str) -> bool:
        if key not in self.data:
            return False
        del self.data[key]
        return True

    async def keys(self, prefix: str = "") -> list[str]:
        return sorted(key for key in self.data if key.startswith(prefix))


@dataclass
class ScheduledJob:
    name: str
    job: Job
    seconds: float | None = None
    cron: str | None = None


class RecordingScheduler:
    """PluginScheduler's API; jobs are recorded, never started. `run(name)` runs one now."""

    def __init__(self) -> None:
        self.scheduled: dict[str, ScheduledJob] = {}

    def every(self, seconds: float, job: Job, *, name: str) -> None:
        if seconds <= 0:
            raise ValueError("an interval job needs a positive number of seconds")
        self._add(ScheduledJob(name, job, seconds=seconds))

    def cron(self, expression: str, job: Job, *, name: str) -> None:
        from croniter import croniter

        if not croniter.is_valid(expression):
            raise ValueError(f"{expression!r} is not a cron expression")
        self._add(ScheduledJob(name, job, cron=expression))

    def _add(self, job: ScheduledJob) -> None:
        if job.name in self.scheduled:
            raise ValueError(f"a job named {job.name!r} is scheduled already")
        self.scheduled[job.name] = job

    @property
    def jobs(self) -> list[str]:
        return sorted(self.scheduled)

    async def run(self, name: str) -> Any:
        return await self.scheduled[name].job()

    async def cancel_all(self, grace: float = 5.0) -> None:
        self.scheduled.clear()


@dataclass(frozen=True)
class PublishedEvent:
    type: str
    payload: dict[str, Any]


class RecordingEvents:
    """PluginEvents' API: `publish(name, payload)` records `<plugin>.<name>`, refused as the
    runtime refuses it (without `events:publish`, or a name no event may take)."""

    def __init__(self, plugin: str, may_publish: bool = True) -> None:
        self.plugin = plugin
        self.may_publish = may_publish
        self.published: list[PublishedEvent] = []

    async def publish(self, name: str, payload: Mapping[str, Any]) -> Any:
        if not self.may_publish:
            raise publishing_refused(self.plugin)
        event_type = f"{self.plugin}.{name}"
        check_origin(event_type, Origin.of_plugin(self.plugin))
        event = PublishedEvent(event_type, _json_value(dict(payload)))
        self.published.append(event)
        return {"id": str(uuid.uuid4()), "type": event.type}


# -- HTTP ---------------------------------------------------------------------------------


@dataclass
class FakeResponse:
    """What an aiohttp response offers plugins: status, headers, text(), json(), read()."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    url: str = ""
    method: str = ""

    @classmethod
    def of(
        cls,
        status: int = 200,
        json: Any = None,
        text: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> FakeResponse:
        body = orjson.dumps(json) if json is not None else text.encode()
        all_headers = dict(headers or {})
        if json is not None:
            all_headers.setdefault("Content-Type", "application/json")
        return cls(status, body, all_headers)

    @property
    def ok(self) -> bool:
        return self.status < 400

    async def read(self) -> bytes:
        return self.body

    async def text(self, encoding: str | None = None, errors: str = "strict") -> str:
        return self.body.decode(encoding or "utf-8", errors)

    async def json(self, **_: Any) -> Any:
        return orjson.loads(self.body) if self.body else None

    def raise_for_status(self) -> None:
        if self.status >= 400:
            # aiohttp's own error, as a real response raises it; imported only then.
            import aiohttp
            from multidict import CIMultiDict, CIMultiDictProxy
            from yarl import URL

            request = aiohttp.RequestInfo(
                url=URL(self.url),
                method=self.method,
                headers=CIMultiDictProxy(CIMultiDict()),
                real_url=URL(self.url),
            )
            raise aiohttp.ClientResponseError(
                request,
                (),
                status=self.status,
                message=f"HTTP {self.status}",
                headers=None,
            )

    def release(self) -> None:
        pass

    async def __aenter__(self) -> FakeResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    json: Any
    params: Any

    def json_body(self) -> Any:
        """The body decoded as JSON (whether it was sent with json= or data=)."""
        if self.json is not None:
            return self.json
        return orjson.loads(self.body) if self.body else None


class _RequestContext:
    """`session.post(...)` is both awaitable and an async context manager, as in aiohttp."""

    def __init__(self, respond: Callable[[], Awaitable[FakeResponse]]) -> None:
        self._respond = respond
        self._response: FakeResponse | None = None

    def __await__(self) -> Generator[Any, None, FakeResponse]:
        return self._respond().__await__()

    async def __aenter__(self) -> FakeResponse:
        self._response = await self._respond()
        return self._response

    async def __aexit__(self, *exc: object) -> None:
        return None


Answer = FakeResponse | BaseException | Callable[[RecordedRequest], FakeResponse]


class FakeHttp:
    """An aiohttp.ClientSession stand-in: records each request, answers from a queue.

    `queue(...)` adds a response (or an exception to raise, e.g. TimeoutError); with the queue
    empty, requests get `default` (200, empty body).
    """

    def __init__(self, default: FakeResponse | None = None) -> None:
        self.requests: list[RecordedRequest] = []
        self._answers: deque[Answer] = deque()
        self.default = default or FakeResponse()
        self.closed = False

    def queue(
        self,
        status: int = 200,
        *,
        json: Any = None,
        text: str = "",
        headers: Mapping[str, str] | None = None,
        error: BaseException | None = None,
    ) -> None:
        self._answers.append(
            error if error is not None else FakeResponse.of(status, json, text, headers or {})
        )

    def queue_answer(self, answer: Answer) -> None:
        self._answers.append(answer)

    def request(self, method: str, url: Any, **kwargs: Any) -> _RequestContext:
        data = kwargs.get("data")
        if isinstance(data, str):
            data = data.encode()
        elif data is not None and not isinstance(data, bytes):
            data = orjson.dumps(data)
        recorded = RecordedRequest(
            method=method.upper(),
            url=str(url),
            headers={str(k): str(v) for k, v in (kwargs.get("headers") or {}).items()},
            body=data,
            json=kwargs.get("json"),
            params=kwargs.get("params"),
        )

        async def respond() -> FakeResponse:
            self.requests.append(recorded)
            answer: Answer = self._answers.popleft() if self._answers else self.default
            if isinstance(answer, BaseException):
                raise answer
            response = answer(recorded) if callable(answer) else answer
            response.url, response.method = recorded.url, recorded.method
            return response

        return _RequestContext(respond)

    def get(self, url: Any, **kwargs: Any) -> _RequestContext:
        return self.request("GET", url, **kwargs)

    def post(self, url: Any, **kwargs: Any) -> _RequestContext:
        return self.request("POST", url, **kwargs)

    def put(self, url: Any, **kwargs: Any) -> _RequestContext:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: Any, **kwargs: Any) -> _RequestContext:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: Any, **kwargs: Any) -> _RequestContext:
        return self.request("DELETE", url, **kwargs)

    async def close(self) -> None:
        self.closed = True


# -- the harness --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How a delivery would end: SUCCEEDED (with `result`), SKIPPED, RETRYING, DEAD, or
    NOT_DELIVERED (the plugin has no hook for the type or lacks the permission).

    `result` and `error_message` are the delivery's `result` and `error` as the server would
    store them; `error` is what the hook raised.
    """

    status: DeliveryStatus | Literal["NOT_DELIVERED"]
    result: Any = None
    error: BaseException | None = None
    hook: str | None = None
    retry_after: float | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == DeliveryStatus.SUCCEEDED


# What a hook raises to say how its delivery ended, rather than because it failed.
_OUTCOMES = (Skip, RetryLater, PermanentFailure)


def _unrestricted() -> Network:
    # The policy needs aiohttp: imported only for a harness that was given none.
    from runtime.core.address_policy import AddressPolicy

    return AddressPolicy.unrestricted()


def _load_manifest(manifest: Manifest | Mapping[str, Any] | str | Path) -> Manifest:
    if isinstance(manifest, Manifest):
        return manifest
    if isinstance(manifest, str | Path):
        path = Path(manifest)
        if path.is_dir():
            path = path / "plugin.json"
        return parse_manifest(orjson.loads(path.read_bytes()))
    return parse_manifest(manifest)


class PluginHarness:
    """One plugin instance with a recording context; `emit` runs a hook as the runtime would.

    `plugin` is a Plugin subclass or instance. `manifest` (a Manifest, a mapping, a plugin.json
    path or its folder) supplies the name, permissions and configuration defaults; without it,
    `name` and `permissions` do. `config` is validated against the manifest's configSchema.
    `network` is the address policy `ctx.network` applies; the harness allows every address
    unless given one (its HTTP is fake, and a test's stand-in servers listen on 127.0.0.1).
    `timeout` is the seconds each hook may run (on_load, tests and actions included: past it
    they raise TimedOut), the manifest's `timeoutSeconds` or the server's default unless given;
    `max_attempts` the attempts a delivery gets, the server's default unless given.
    """

    def __init__(
        self,
        plugin: type[Plugin] | Plugin,
        *,
        config: Mapping[str, Any] | None = None,
        manifest: Manifest | Mapping[str, Any] | str | Path | None = None,
        name: str | None = None,
        permissions: list[str] | None = None,
        storage: Mapping[str, Any] | None = None,
        network: Network | None = None,
        timeout: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.plugin = plugin() if isinstance(plugin, type) else plugin
        self.manifest = _load_manifest(manifest) if manifest is not None else None
        settings = dict(config or {})
        # What the server's redactor would hide: the values the configSchema marks secret.
        self.redactor = NO_SECRETS
        if self.manifest is not None:
            schema = self.manifest.config_schema
            settings = {
                **schema_defaults(schema),
                **self.manifest.default_config,
                **settings,
            }
            problems = validate_config(schema, settings)
            if problems:
                listed = "; ".join(f"{p.path}: {p.message}" for p in problems)
                raise ValueError(f"the configuration does not fit configSchema: {listed}")
            _, secrets = split_secrets(settings, secret_shape(schema))
            self.redactor = Redactor.of_secrets(secrets)
        self.name = name or (self.manifest.name if self.manifest else "test-plugin")
        if permissions is not None:
            self.permissions = list(permissions)
        elif self.manifest is not None:
            self.permissions = list(self.manifest.permissions)
        else:
            self.permissions = ["sessions:read", "users:read"]
        self.log = RecordingLogger()
        self.storage = MemoryStore(storage)
        self.http = FakeHttp()
        self.scheduler = RecordingScheduler()
        self.events = RecordingEvents(self.name, "events:publish" in self.permissions)
        self.api = ApiRegistry()
        self.ui = UiRegistry(self.name)
        self.ctx = PluginContext(
            name=self.name,
            config=settings,
            log=self.log,
            storage=self.storage,
            http=self.http,
            scheduler=self.scheduler,
            events=self.events,
            network=network or _unrestricted(),
            api=self.api,
            ui=self.ui,
        )
        self.hooks = implemented_hooks(type(self.plugin))
        manifest_timeout = self.manifest.run_settings.timeout_seconds if self.manifest else None
        self.timeout = timeout or manifest_timeout or DEFAULT_TIMEOUT
        self.retry_policy = RetryPolicy(max_attempts=max_attempts)
        self._call_hook = PluginHooks(self.plugin, self.ctx, self.permissions)
        self.loaded = False

    # What was recorded, by the names tests read.
    @property
    def logs(self) -> list[LogRecord]:
        return self.log.records

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.http.requests

    @property
    def published(self) -> list[PublishedEvent]:
        return self.events.published

    @property
    def jobs(self) -> list[str]:
        return self.scheduler.jobs

    def log_messages(self, level: str | None = None) -> list[str]:
        return [r.message for r in self.log.records if level is None or r.level == level.upper()]

    # State hooks: loading and unloading.
    async def load(self) -> None:
        """on_load then on_enable, as the host does when a plugin is installed and enabled;
        each under the timeout, as on the server (where a hook past it leaves the plugin
        FAILED), raising TimedOut."""
        await within(self.timeout, "on_load", self.plugin.on_load(self.ctx))
        await within(self.timeout, "on_enable", self.plugin.on_enable(self.ctx))
        self.loaded = True

    async def unload(self) -> None:
        """on_disable then on_unload, each under the timeout; scheduled jobs are cancelled."""
        await within(self.timeout, "on_disable", self.plugin.on_disable(self.ctx))
        await within(self.timeout, "on_unload", self.plugin.on_unload(self.ctx))
        await self.scheduler.cancel_all()
        self.api.clear()
        self.ui.clear()
        self.loaded = False

    async def __aenter__(self) -> PluginHarness:
        await self.load()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.unload()

    def hook_for(self, event_type: str) -> str | None:
        """The hook the runtime would call for `event_type`, or None if none would run."""
        permission = permission_for(event_type)
        if permission and permission not in self.permissions:
            return None
        specific = hook_for(event_type)
        if specific and specific in self.hooks:
            return specific
        return "on_event" if "on_event" in self.hooks else None

    async def emit(
        self,
        event_type: str,
        payload: Mapping[str, Any] | None = None,
        *,
        attempt: int = 1,
        event_id: str | None = None,
        raise_errors: bool = False,
    ) -> Outcome:
        """Deliver one event as attempt `attempt`: the outcome the server would record.

        `payload` defaults to the type's sample payload; it is normalised as emitEvent does.
        With `raise_errors`, an unexpected exception propagates instead of becoming RETRYING.
        """
        check_type(event_type, lambda t: t.startswith(f"{self.name}."))
        body = normalise_payload(
            event_type, payload if payload is not None else sample_payload(event_type)
        )
        hook = self.hook_for(event_type)
        if hook is None:
            return Outcome("NOT_DELIVERED")
        event = Event(
            id=event_id or str(uuid.uuid4()),
            type=event_type,
            payload=body,
            occurred_at=datetime.now(UTC),
            attributes={"deliveryId": str(uuid.uuid4()), "attempt": attempt},
        )
        deadlines = Deadlines(self.timeout)
        try:
            ran = await run_hook(
                self._call_hook,
                hook,
                body,
                event,
                time_limit=self.timeout,
                deadline=deadlines.watch(),
                redactor=self.redactor,
            )
        finally:
            deadlines.cancel()
        if raise_errors and ran.raised is not None and not isinstance(ran.raised, _OUTCOMES):
            raise ran.raised
        return Outcome(
            self.retry_policy.settle(ran.status, attempt),
            result=ran.result,
            error=ran.raised,
            hook=hook,
            retry_after=ran.retry_after,
            error_message=ran.error,
        )

    async def call_action(self, name: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Run an action the plugin registered with ctx.api.action (as pluginAction does)."""
        action = self.api.actions[name]
        return await within(self.timeout, f"action {name}", action.handler(dict(arguments or {})))

    async def test_connection(self) -> Any:
        """What the testPlugin mutation runs, under the timeout."""
        return await within(self.timeout, "test_connection", self.plugin.test_connection(self.ctx))

    async def run_job(self, name: str) -> Any:
        """Run a scheduled job now, once."""
        return await self.scheduler.run(name)


__all__ = [
    "SAMPLE_PAYLOADS",
    "FakeHttp",
    "FakeResponse",
    "LogRecord",
    "MemoryStore",
    "Outcome",
    "PluginHarness",
    "PublishedEvent",
    "RecordedRequest",
    "RecordingEvents",
    "RecordingLogger",
    "RecordingScheduler",
    "sample_payload",
]
