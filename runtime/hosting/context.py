"""The server's side of a plugin's context: the services behind the SDK's protocols.

Logs stored in batches and streamed, storage in the database, jobs on the wall clock claimed
once across replicas, events published through the emitter, and `HostedContext`, the SDK's
`PluginContext` as the host builds it (runtime.sdk.context declares what plugins see).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import aiohttp
import orjson
from croniter import croniter
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models import PluginLog, PluginStorage
from runtime.core.address_policy import AddressPolicy
from runtime.core.redaction import NO_SECRETS, Redactor
from runtime.db.storable import may_hold_nul, nul_path, storable_json, storable_text
from runtime.delivery.event_types import publishing_refused
from runtime.sdk.context import LEVELS, Job, LogLevel, PluginContext
from runtime.sdk.extensions import ApiRegistry, UiRegistry

log = logging.getLogger(__name__)
TICK_MEMORY = timedelta(days=1)


class LogPublisher(Protocol):
    async def __call__(self, entry: dict[str, Any]) -> None: ...


class LogSink:
    """Writes plugin log entries in batches and publishes each; a full buffer drops and counts.

    Logging from a hook must never wait on the database. A failed write is tried again (a
    dropped connection), and a batch the database still refuses while it answers goes entry
    by entry, so only an entry it refuses is lost (and counted in `dropped`).
    """

    retries = 4
    first_backoff = 0.2

    def __init__(self, publish: LogPublisher, capacity: int = 10_000) -> None:
        self._publish = publish
        self._queue: asyncio.Queue[PluginLog] = asyncio.Queue(capacity)
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Future[None] | None = None
        self.dropped = 0

    def put(self, entry: PluginLog) -> None:
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.dropped += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="plugin-log-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._writing is not None:
            # Stopping must not cut a batch off half-written: let it finish first.
            await self._writing
            self._writing = None
        await self._write_logged(self._drain())

    def _drain(self) -> list[PluginLog]:
        batch = []
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get(), *self._drain()]
            self._writing = asyncio.ensure_future(self._write_logged(batch))
            await asyncio.shield(self._writing)
            self._writing = None

    async def _write_logged(self, batch: list[PluginLog]) -> None:
        if not batch:
            return
        for attempt in range(self.retries + 1):
            try:
                await PluginLog.bulk_create(batch)
                break
            except Exception:
                if attempt == self.retries:
                    batch = await self._write_apart(batch)
                    break
                await asyncio.sleep(self.first_backoff * 2**attempt)
        for entry in batch:
            try:
                await self._publish(log_entry_message(entry))
            except Exception:
                log.exception("a plugin log entry could not be published")

    async def _write_apart(self, batch: list[PluginLog]) -> list[PluginLog]:
        """The entries written one by one, once the batch was refused: none while the
        database does not answer."""
        try:
            await PluginLog.exists()
        except Exception:
            log.exception("plugin log entries could not be written", extra={"entries": len(batch)})
            self.dropped += len(batch)
            return []
        written = []
        for entry in batch:
            try:
                await entry.save()
            except Exception:
                log.exception(
                    "a plugin log entry could not be written", extra={"plugin": entry.plugin}
                )
                self.dropped += 1
            else:
                written.append(entry)
        return written


def log_entry_message(entry: PluginLog) -> dict[str, Any]:
    return {
        "plugin": entry.plugin,
        "level": entry.level,
        "message": entry.message,
        "data": entry.data,
        "at": (entry.created_at or datetime.now(UTC)).isoformat(),
    }


_RECORD_KEYS = frozenset(
    {*logging.LogRecord("", 0, "", 0, "", (), None).__dict__, "message", "asctime"}
)


def _json_safe(value: Any) -> Any:
    """`value` as JSON holds it: what JSON cannot hold is written as its text, and a NUL as
    U+FFFD (runtime.db.storable: one line PostgreSQL refuses would fail its whole batch)."""
    encoded = orjson.dumps(value, default=str)
    return storable_json(orjson.loads(encoded), encoded)


def _json_text(value: Any) -> str:
    """A value encoded for a JSON column.

    Tortoise takes a `str` given to a JSONField as JSON text already encoded; encoding every
    value ourselves keeps a plain string a string.
    """
    try:
        encoded = orjson.dumps(value)
    except TypeError as error:
        raise ValueError(f"storage values must be JSON values: {error}") from None
    if may_hold_nul(encoded):
        where = nul_path(value)
        if where is not None:
            at = f" (at {where})" if where else ""
            raise ValueError(f"storage values cannot hold NUL characters (\\u0000){at}")
    return encoded.decode()


class PluginLogger:
    """A plugin's logger: entries are stored (pluginLogs query) and streamed (subscription).

    Each line and its data pass through the plugin's `Redactor` first, so neither the stored
    entry nor the server's own log ever holds one of the plugin's secrets.
    """

    def __init__(self, plugin: str, sink: LogSink, redactor: Redactor = NO_SECRETS) -> None:
        self._plugin = plugin
        self._sink = sink
        self._redactor = redactor
        self._python = logging.getLogger(f"plugins.{plugin}")

    def log(self, level: str, message: str, /, **data: Any) -> None:
        level = level.upper()
        if level not in LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
        text = storable_text(self._redactor.text(str(message)))
        values = self._redactor.value(_json_safe(data)) if data else None
        # Keys a LogRecord owns (message, name, args, ...) would make `extra` raise.
        extra = {key: value for key, value in (values or {}).items() if key not in _RECORD_KEYS}
        self._python.log(logging.getLevelName(level), text, extra={**extra, "plugin": self._plugin})
        entry = PluginLog(
            plugin=self._plugin,
            level=level,
            message=text,
            data=values,
            created_at=datetime.now(UTC),
        )
        self._sink.put(entry)

    def debug(self, message: str, /, **data: Any) -> None:
        self.log(LogLevel.DEBUG, message, **data)

    def info(self, message: str, /, **data: Any) -> None:
        self.log(LogLevel.INFO, message, **data)

    def warning(self, message: str, /, **data: Any) -> None:
        self.log(LogLevel.WARNING, message, **data)

    def error(self, message: str, /, **data: Any) -> None:
        self.log(LogLevel.ERROR, message, **data)


class PluginStore:
    """A plugin's key-value storage (JSON values), invisible to other plugins."""

    def __init__(self, plugin: str) -> None:
        self._plugin = plugin

    async def get(self, key: str, default: Any = None) -> Any:
        row = await PluginStorage.get_or_none(plugin=self._plugin, key=key)
        return row.value if row is not None else default

    async def set(self, key: str, value: Any) -> None:
        encoded = _json_text(value)
        updated = await PluginStorage.filter(plugin=self._plugin, key=key).update(value=encoded)
        if updated:
            return
        row = PluginStorage(plugin=self._plugin, key=key)
        # Set after construction: the constructor would decode the JSON text back to a value.
        row.value = encoded
        try:
            await row.save()
        except IntegrityError:
            # Another task created it in between: ours is the later write.
            await PluginStorage.filter(plugin=self._plugin, key=key).update(value=encoded)

    async def update(self, key: str, change: Callable[[Any], Any], default: Any = None) -> Any:
        """Replace the value with `change(value)` atomically, even across replicas; return it.

        The row is locked while `change` runs, so concurrent updates (counters, windows) never
        lose one another's effect the way a `get` then `set` can.
        """
        if not await PluginStorage.exists(plugin=self._plugin, key=key):
            with contextlib.suppress(IntegrityError):
                row = PluginStorage(plugin=self._plugin, key=key)
                row.value = _json_text(default)
                await row.save()
        async with in_transaction() as connection:
            row = (
                await PluginStorage.filter(plugin=self._plugin, key=key)
                .select_for_update()
                .using_db(connection)
                .get()
            )
            value = change(row.value)
            await (
                PluginStorage.filter(id=row.id).using_db(connection).update(value=_json_text(value))
            )
        return value

    async def delete(self, key: str) -> bool:
        return bool(await PluginStorage.filter(plugin=self._plugin, key=key).delete())

    async def keys(self, prefix: str = "") -> list[str]:
        query = PluginStorage.filter(plugin=self._plugin)
        if prefix:
            query = query.filter(key__startswith=prefix)
        return [str(key) for key in await query.order_by("key").values_list("key", flat=True)]


class PluginScheduler:
    """Interval and cron jobs of one plugin; all cancelled when the plugin is disabled.

    Ticks fall on the wall clock (an interval of 60 s ticks at each whole minute), so every
    replica computes the same tick; the first replica to claim a tick in the database runs it,
    the others skip it. A job runs once per tick however many replicas there are.
    """

    def __init__(self, plugin: str, logger: PluginLogger) -> None:
        self._plugin = plugin
        self._log = logger
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Claims live beside the plugin's storage, under a scope its own keys() never sees.
        self._claims = f"{plugin}#ticks"

    def every(self, seconds: float, job: Job, *, name: str) -> None:
        if seconds <= 0:
            raise ValueError("an interval job needs a positive number of seconds")

        def next_tick() -> datetime:
            now = datetime.now(UTC).timestamp()
            return datetime.fromtimestamp((now // seconds + 1) * seconds, UTC)

        self._start(name, job, next_tick)

    def cron(self, expression: str, job: Job, *, name: str) -> None:
        if not croniter.is_valid(expression):
            raise ValueError(f"{expression!r} is not a cron expression")

        def next_tick() -> datetime:
            upcoming: datetime = croniter(expression, datetime.now(UTC)).get_next(datetime)
            return upcoming

        self._start(name, job, next_tick)

    @property
    def jobs(self) -> list[str]:
        return sorted(self._tasks)

    def _start(self, name: str, job: Job, next_tick: Callable[[], datetime]) -> None:
        if name in self._tasks:
            raise ValueError(f"a job named {name!r} is scheduled already")
        self._tasks[name] = asyncio.create_task(
            self._loop(name, job, next_tick), name=f"{self._plugin}:{name}"
        )

    async def _claim(self, name: str, tick: datetime) -> bool:
        """True for the one replica that claims this tick first."""
        try:
            await PluginStorage.create(
                plugin=self._claims, key=f"{name}@{tick.isoformat()}", value=_json_text(True)
            )
        except IntegrityError:
            return False
        await PluginStorage.filter(
            plugin=self._claims, key__startswith=f"{name}@", updated_at__lt=tick - TICK_MEMORY
        ).delete()
        return True

    async def _loop(self, name: str, job: Job, next_tick: Callable[[], datetime]) -> None:
        while True:
            tick = next_tick()
            await asyncio.sleep(max(0.0, (tick - datetime.now(UTC)).total_seconds()))
            try:
                if await self._claim(name, tick):
                    await job()
            except Exception as error:
                self._log.error(f"scheduled job {name} failed: {error}", job=name)

    async def cancel_all(self, grace: float = 5.0) -> None:
        """Cancel every job; a job that swallows its cancellation is abandoned after `grace`."""
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, stuck = await asyncio.wait(tasks, timeout=grace)
        for task in stuck:
            self._log.error(f"scheduled job {task.get_name()} did not stop within {grace:g}s")


class EventPublisher(Protocol):
    async def __call__(self, event_type: str, payload: Mapping[str, Any]) -> Any: ...


@dataclass(frozen=True)
class PluginEvents:
    """Publishes `<plugin>.<name>` events, delivered like any other to plugins that want them;
    only for a plugin whose manifest holds the `events:publish` permission."""

    plugin: str
    emit: EventPublisher
    may_publish: bool = False

    async def publish(self, name: str, payload: Mapping[str, Any]) -> Any:
        if not self.may_publish:
            raise publishing_refused(self.plugin)
        return await self.emit(f"{self.plugin}.{name}", payload)


@dataclass
class HostedContext(PluginContext):
    """The context the host builds: the SDK's, its services typed as the host's own classes,
    through which the host reaches what plugins never call (jobs cancelled, routes cleared)."""

    log: PluginLogger
    storage: PluginStore
    http: aiohttp.ClientSession
    scheduler: PluginScheduler
    events: PluginEvents
    network: AddressPolicy = field(default_factory=AddressPolicy)
    api: ApiRegistry = field(default_factory=ApiRegistry)
    ui: UiRegistry = field(default_factory=lambda: UiRegistry(""))
