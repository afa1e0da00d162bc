"""The plugin host: loads enabled plugins, keeps their status, and feeds their workers.

`sync_plugin(name)` makes the running state match the database (load, unload or reload);
mutations call it after changing an installed plugin, and start-up calls it for every one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import defaultdict
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from starlette.routing import Router
from tortoise.connection import get_connection

from models import Delivery, InstalledPlugin
from runtime.broadcast.hub import Hub
from runtime.catalog.dependencies import dependency_order
from runtime.catalog.installs import Installer, PluginStatus, manifest_of, overrides_of
from runtime.catalog.run_settings import RunLimits
from runtime.core.address_policy import AddressPolicy
from runtime.core.errors import Conflict, NotFound, PlatformError
from runtime.core.redaction import NO_SECRETS, Redactor
from runtime.db.storable import storable_text
from runtime.delivery.breaker import CircuitBreaker
from runtime.delivery.emitter import DELIVERY_CHANNEL, EmitRequest, Emitter
from runtime.delivery.event_cache import EventCache
from runtime.delivery.event_types import Origin
from runtime.delivery.metrics import RuntimeMetrics
from runtime.delivery.outcomes import OutcomeWriter
from runtime.delivery.retries import DEFAULT_MAX_ATTEMPTS, RetryPolicy
from runtime.delivery.worker import PluginWorker, Reservation
from runtime.hosting.context import (
    HostedContext,
    LogSink,
    PluginEvents,
    PluginLogger,
    PluginScheduler,
    PluginStore,
)
from runtime.hosting.loader import PluginCode
from runtime.hosting.registry import PluginRegistry, PluginSpec
from runtime.hosting.routes import router_for
from runtime.sdk import Plugin
from runtime.sdk.event_catalog import hook_for, permission_for
from runtime.sdk.extensions import Action, ApiRegistry, UiRegistry
from runtime.sdk.hook_runner import DEFAULT_TIMEOUT, PluginHooks, TimedOut, within
from runtime.sdk.outcomes import DeliveryStatus

log = logging.getLogger(__name__)

STATUS_CHANNEL = "plugin-status"
CONTROL_CHANNEL = "plugin-control"
WAKE_CHANNEL = "delivery-wake"
LOG_CHANNEL = "plugin-logs"
# Loaded and taking deliveries (DEGRADED: only probes while its breaker is open).
RUNNING_STATUSES = frozenset({PluginStatus.ACTIVE, PluginStatus.DEGRADED})


@dataclass
class LoadedPlugin:
    spec: PluginSpec
    instance: Plugin
    context: HostedContext
    worker: PluginWorker
    config: dict[str, Any]
    # Deliveries at once and each hook's time: the installation's, the manifest's, the default.
    limits: RunLimits
    status: str = PluginStatus.LOADING
    # The installed version this instance runs: an upgrade or rollback changes it.
    version: str = ""
    router: Router | None = None
    # Built from the plugin's secret values: what leaves its code passes through it.
    redactor: Redactor = NO_SECRETS


@dataclass(frozen=True)
class HostSettings:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_base: float = 2.0
    poll_interval: float = 1.0
    replica: str = "local"
    # Consecutive failures that open a plugin's circuit breaker, and seconds between probes.
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0
    # Deliveries one plugin runs at once when neither its installation nor its manifest
    # sets "concurrency".
    default_concurrency: int = 4
    # False: SQL techniques leaning on a library's internals take its documented way.
    fast_paths: bool = True


class PluginTestFailed(Exception):
    """A plugin's connection test raised; the message is redacted already."""


class PluginActionFailed(Exception):
    """A plugin's action raised something unexpected; the message is redacted already."""


@dataclass
class PluginHost:
    registry: PluginRegistry
    hub: Hub
    installer: Installer
    settings: HostSettings = field(default_factory=HostSettings)
    loaded: dict[str, LoadedPlugin] = field(default_factory=dict)
    # Where installed plugins' code comes from; None: the registry alone (built-ins, tests).
    code: PluginCode | None = None
    # What plugins may reach through ctx.http and ctx.network (by default: public addresses).
    network: AddressPolicy = field(default_factory=AddressPolicy)

    def __post_init__(self) -> None:
        if self.code is not None:
            self.code.reporter = self.report_progress
        self.sink = LogSink(self._publish_log)
        self.metrics = RuntimeMetrics()
        # Events the workers run, kept from the emit that stored them.
        self.events = EventCache()
        self.emitter = Emitter(
            self.hub,
            self.targets,
            self.is_plugin_event,
            self.wake,
            self._count_accepted,
            events=self.events,
            reserve=self.reserve,
            one_trip=self.settings.fast_paths,
        )
        self._http: aiohttp.ClientSession | None = None
        # One lock per plugin: a plugin's code running (or hanging) while it loads holds up
        # changes to that plugin only.
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.outcomes = OutcomeWriter()
        self._followers: list[asyncio.Task[None]] = []
        self._announcements: set[asyncio.Task[bool]] = set()

    # -- start and stop ------------------------------------------------------------------

    async def start(self) -> None:
        self._http = self.network.session(timeout=aiohttp.ClientTimeout(total=30, connect=10))
        self.sink.start()
        if get_connection("default").capabilities.dialect == "sqlite":
            # SQLite means one process: whatever is RUNNING was cut off when it last stopped.
            await Delivery.filter(status=DeliveryStatus.RUNNING).update(
                status=DeliveryStatus.RETRYING,
                lease_expires_at=None,
                next_attempt_at=datetime.now(UTC),
            )
        await self.sync_all()
        if self.hub.shared:
            self._followers = [
                asyncio.create_task(self._follow(CONTROL_CHANNEL), name="follow:control"),
                asyncio.create_task(self._follow(WAKE_CHANNEL), name="follow:wake"),
            ]

    async def sync_all(self) -> None:
        """Make every plugin's running state match the database."""
        rows = await InstalledPlugin.all().order_by("name")
        # Dependencies first, so a plugin's on_load finds the plugins it needs running.
        needs = {row.name: set((await manifest_of(row)).get("dependencies") or {}) for row in rows}
        for name in dependency_order(needs):
            await self.sync_plugin(name)
        for name in sorted(set(self.loaded) - set(needs)):
            await self.sync_plugin(name)

    async def stop(self) -> None:
        for follower in self._followers:
            follower.cancel()
        await asyncio.gather(*self._followers, return_exceptions=True)
        for name in list(self.loaded):
            await self._unload(name, persist=False)
        await self.outcomes.drain()
        await self.sink.stop()
        if self._http is not None:
            await self._http.close()

    # -- what the emitter asks -----------------------------------------------------------

    def targets(self, event_type: str) -> list[tuple[str, str]]:
        """(plugin, hook) for each loaded plugin that wants `event_type` and may see it."""
        wanted = []
        specific = hook_for(event_type)
        permission = permission_for(event_type)
        for name, plugin in sorted(self.loaded.items()):
            if permission and permission not in plugin.spec.manifest.permissions:
                continue
            if event_type.startswith(f"{name}."):
                continue  # a plugin does not receive its own events
            if specific and specific in plugin.spec.hooks:
                wanted.append((name, specific))
            elif "on_event" in plugin.spec.hooks:
                wanted.append((name, "on_event"))
        return wanted

    def reserve(self, plugin: str, wanted: int) -> Reservation | None:
        """Room the plugin's worker here keeps for new deliveries written claimed by it."""
        loaded = self.loaded.get(plugin)
        return None if loaded is None else loaded.worker.reserve(wanted)

    def is_plugin_event(self, event_type: str) -> bool:
        """`<plugin>.<name>` types are accepted for every plugin this process knows."""
        prefix = event_type.rsplit(".", 1)[0]
        return self.registry.get(prefix) is not None

    def router_of(self, name: str) -> Router | None:
        """The HTTP routes of an active plugin (served under /plugins/<name>/)."""
        plugin = self.loaded.get(name)
        if plugin is None or plugin.status not in RUNNING_STATUSES or not plugin.context.api.routes:
            return None
        if plugin.router is None:
            plugin.router = router_for(plugin.context.api.routes)
        return plugin.router

    def wake(self, plugins: set[str], *, announce: bool = True) -> None:
        """Wake the workers of `plugins` here and, with replicas, on every other replica."""
        for name in plugins:
            plugin = self.loaded.get(name)
            if plugin is not None:
                plugin.worker.wake()
        if announce and plugins and self.hub.shared:
            message = {"plugins": sorted(plugins), "origin": self.settings.replica}
            self._announce(WAKE_CHANNEL, message)

    def _announce(self, channel: str, message: dict[str, Any]) -> None:
        # Fire and forget: the rows are written; a lost notice only waits for the next poll.
        task = asyncio.create_task(self.hub.publish(channel, message))
        self._announcements.add(task)
        task.add_done_callback(self._announcements.discard)

    async def apply_change(self, name: str) -> None:
        """Apply an admin's change to `name` here and tell the other replicas to do the same."""
        await self.sync_plugin(name)
        if self.hub.shared:
            self._announce(CONTROL_CHANNEL, {"plugin": name, "origin": self.settings.replica})

    async def _follow(self, channel: str) -> None:
        """Apply what other replicas announce; after a gap, resynchronise everything."""
        async with self.hub.subscribe(channel) as inbox:
            async for message in inbox:
                try:
                    await self._on_announcement(channel, message.data)
                except Exception:
                    log.exception("applying an announcement failed", extra={"channel": channel})

    async def _on_announcement(self, channel: str, data: dict[str, Any] | None) -> None:
        if data is None:
            if channel == CONTROL_CHANNEL:
                await self.sync_all()
            else:
                self.wake(set(self.loaded), announce=False)
            return
        if data.get("origin") == self.settings.replica:
            return
        if channel == CONTROL_CHANNEL:
            await self.sync_plugin(str(data["plugin"]))
        else:
            self.wake({str(name) for name in data.get("plugins", [])}, announce=False)

    # -- loading and unloading ---------------------------------------------------------

    async def sync_plugin(self, name: str) -> None:
        async with self._locks[name]:
            row = await InstalledPlugin.get_or_none(name=name)
            current = self.loaded.get(name)
            if row is None or not row.enabled:
                if current is not None:
                    await self._unload(name, persist=row is not None)
                if row is None and self.code is not None:
                    self.code.keep_only(name, set())  # uninstalled: its files go too
                return
            config = self.installer.full_config(row)
            if (
                current is not None
                and current.config == config
                and current.version == row.version
                and current.limits == self._limits(row, current.spec)
                and current.status != PluginStatus.FAILED
            ):
                return
            if current is not None:
                await self._unload(name, persist=False)
            await self._load(row, config)
            if self.code is not None:
                # The previous version stays for a rollback; older ones go on the next upgrade.
                self.code.keep_only(name, {row.version, row.previous_version or row.version})

    async def _set_status(
        self, name: str, status: str, error: str | None = None, *, persist: bool = True
    ) -> None:
        previous = self.loaded[name].status if name in self.loaded else None
        if name in self.loaded:
            self.loaded[name].status = status
        if persist:
            if previous is None:
                row = await InstalledPlugin.get_or_none(name=name)
                previous = row.status if row is not None else None
            await InstalledPlugin.filter(name=name).update(
                status=status, last_error=None if error is None else storable_text(error)
            )
        await self.hub.publish(
            STATUS_CHANNEL,
            {
                "plugin": name,
                "status": status,
                "previousStatus": previous,
                "error": error,
                "at": datetime.now(UTC).isoformat(),
                "replica": self.settings.replica,
            },
        )

    def _context(
        self, spec: PluginSpec, config: dict[str, Any], redactor: Redactor
    ) -> HostedContext:
        assert self._http is not None, "the host is not started"
        logger = PluginLogger(spec.name, self.sink, redactor)
        return HostedContext(
            name=spec.name,
            config=config,
            log=logger,
            storage=PluginStore(spec.name),
            http=self._http,
            network=self.network,
            scheduler=PluginScheduler(spec.name, logger),
            events=PluginEvents(
                spec.name,
                functools.partial(self._publish_event, spec.name),
                may_publish="events:publish" in spec.manifest.permissions,
            ),
            api=ApiRegistry(),
            ui=UiRegistry(spec.name),
        )

    async def report_progress(self, name: str, message: str) -> None:
        """Progress of fetching a plugin's code: a log line and a LOADING status message."""
        PluginLogger(name, self.sink).info(message)
        row = await InstalledPlugin.get_or_none(name=name)
        await self.hub.publish(
            STATUS_CHANNEL,
            {
                "plugin": name,
                "status": PluginStatus.LOADING,
                "previousStatus": row.status if row is not None else None,
                "error": None,
                "message": message,
                "at": datetime.now(UTC).isoformat(),
                "replica": self.settings.replica,
            },
        )

    async def _spec_for(self, row: InstalledPlugin) -> tuple[PluginSpec | None, str | None]:
        """The class to run and, when there is none, why."""
        if self.code is None:
            spec = self.registry.get(row.name)
        else:
            try:
                spec = await self.code.spec_for(row)
            except PlatformError as error:
                return None, error.message
            except Exception as error:
                log.exception("loading the code of %s failed", row.name)
                return None, f"{type(error).__name__}: {error}"
        if spec is None:
            return None, "the plugin's code is not available on this server"
        return spec, None

    def _limits(self, row: InstalledPlugin, spec: PluginSpec) -> RunLimits:
        """The installation's run settings, else the manifest's, else the server's defaults;
        never the plugin's configuration, whose keys are the plugin's own."""
        chosen = overrides_of(row).over(spec.manifest.run_settings)
        return chosen.in_force(self.settings.default_concurrency)

    async def _load(self, row: InstalledPlugin, config: dict[str, Any]) -> None:
        spec, message = await self._spec_for(row)
        if spec is None:
            message = NO_SECRETS.text(
                message or "the plugin's code is not available on this server"
            )
            await InstalledPlugin.filter(name=row.name).update(
                status=PluginStatus.FAILED, last_error=storable_text(message)
            )
            await self._publish_status_only(
                row.name, PluginStatus.FAILED, message, previous=row.status
            )
            return
        redactor = Redactor.of_secrets(self.installer.secret_values(row))
        context = self._context(spec, config, redactor)
        instance = spec.cls()
        limits = self._limits(row, spec)
        worker = PluginWorker(
            spec.name,
            PluginHooks(instance, context, spec.manifest.permissions),
            self._publish_outcomes,
            lambda change: self._breaker_changed(spec.name, change),
            policy=RetryPolicy(self.settings.max_attempts, self.settings.backoff_base),
            timeout=limits.timeout_seconds,
            concurrency=limits.concurrency,
            poll_interval=self.settings.poll_interval,
            breaker=CircuitBreaker(
                threshold=self.settings.breaker_threshold,
                cooldown=self.settings.breaker_cooldown,
            ),
            outcomes=self.outcomes,
            events=self.events,
            redactor=redactor,
        )
        # The status the row had is the previousStatus of the LOADING change.
        self.loaded[spec.name] = LoadedPlugin(
            spec,
            instance,
            context,
            worker,
            config,
            limits,
            status=row.status,
            version=row.version,
            redactor=redactor,
        )
        await self._set_status(spec.name, PluginStatus.LOADING)
        try:
            await self._bounded(limits, "on_load", instance.on_load(context))
            await self._bounded(limits, "on_enable", instance.on_enable(context))
        except Exception as error:
            message = redactor.text(_described(error))
            context.log.error(f"loading failed: {message}")
            await context.scheduler.cancel_all()
            await self._set_status(spec.name, PluginStatus.FAILED, message)
            del self.loaded[spec.name]
            return
        worker.start()
        await self._set_status(spec.name, PluginStatus.ACTIVE)

    async def _unload(self, name: str, *, persist: bool) -> None:
        plugin = self.loaded.get(name)
        if plugin is None:
            return
        await plugin.worker.stop()
        await plugin.context.scheduler.cancel_all()
        for hook in (plugin.instance.on_disable, plugin.instance.on_unload):
            try:
                await self._bounded(plugin.limits, hook.__name__, hook(plugin.context))
            except Exception as error:
                message = plugin.redactor.text(_described(error))
                plugin.context.log.error(f"{hook.__name__} failed: {message}")
        plugin.context.api.clear()
        plugin.context.ui.clear()
        if persist:
            await self._set_status(name, PluginStatus.DISABLED)
        del self.loaded[name]

    @staticmethod
    async def _bounded(limits: RunLimits, what: str, call: Awaitable[Any]) -> Any:
        """Plugin code outside deliveries, under the plugin's hook timeout."""
        return await within(limits.timeout_seconds, what, call)

    async def _publish_status_only(
        self, name: str, status: str, error: str | None, *, previous: str | None = None
    ) -> None:
        await self.hub.publish(
            STATUS_CHANNEL,
            {
                "plugin": name,
                "status": status,
                "previousStatus": previous,
                "error": error,
                "at": datetime.now(UTC).isoformat(),
                "replica": self.settings.replica,
            },
        )

    async def _breaker_changed(self, name: str, change: str) -> None:
        plugin = self.loaded.get(name)
        if plugin is None or plugin.status not in RUNNING_STATUSES:
            return  # unloaded (or being unloaded) meanwhile: its status is settled elsewhere
        await self._set_status(
            name, PluginStatus.DEGRADED if change == "opened" else PluginStatus.ACTIVE
        )

    # -- publishing ----------------------------------------------------------------------

    def _count_accepted(self, event_type: str) -> None:
        self.metrics.events_accepted.labels(family=event_type.split(".", 1)[0]).inc()

    def live_figures(self) -> dict[str, Any]:
        """This process's figures for /metrics."""
        plugins: dict[str, int] = {}
        for plugin in self.loaded.values():
            plugins[plugin.status] = plugins.get(plugin.status, 0) + 1
        backend = self.hub.backend
        return {
            "subscribers": self.hub.subscriber_count(),
            "reconnects": getattr(backend, "reconnects", 0),
            "plugins": plugins,
        }

    async def _publish_outcomes(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            delivery = message["delivery"]
            self.metrics.delivery_finished(
                delivery["plugin"], delivery["status"], (delivery.get("durationMs") or 0) / 1000
            )
        await self.hub.publish_many(DELIVERY_CHANNEL, messages)

    async def _publish_log(self, entry: dict[str, Any]) -> None:
        await self.hub.publish(LOG_CHANNEL, entry)

    async def _publish_event(self, plugin: str, event_type: str, payload: Mapping[str, Any]) -> Any:
        origin = Origin.of_plugin(plugin)
        return await self.emitter.emit(EmitRequest(event_type, payload, origin=origin))

    # -- operations ----------------------------------------------------------------------

    async def test_plugin(self, name: str) -> Mapping[str, Any] | None:
        """The plugin's connection test, its result and any error it raises redacted."""
        plugin = self.loaded.get(name)
        if plugin is None:
            raise LookupError(name)
        call = plugin.instance.test_connection(plugin.context)
        try:
            result = await self._bounded(plugin.limits, "test_connection", call)
        except Exception as error:
            raise PluginTestFailed(plugin.redactor.text(_described(error))) from None
        if result is None:
            return None
        redacted: dict[str, Any] = plugin.redactor.value(dict(result))
        return redacted

    async def call_action(self, name: str, action: Action, given: Mapping[str, Any]) -> Any:
        """What the action answers; what it raises leaves with the plugin's secrets redacted
        (an error meant for the caller keeps its code)."""
        plugin = self.loaded.get(name)
        redactor = plugin.redactor if plugin is not None else NO_SECRETS
        seconds = plugin.limits.timeout_seconds if plugin is not None else DEFAULT_TIMEOUT
        try:
            result = await within(seconds, f"action {action.name}", action.handler(dict(given)))
        except TimedOut as error:
            raise PlatformError(f"{name}: {error}", timeoutSeconds=seconds) from None
        except PlatformError as error:
            error.message = redactor.text(error.message)
            error.args = (error.message,)
            raise
        except Exception as error:
            shown = redactor.text(f"{type(error).__name__}: {error}")
            raise PluginActionFailed(shown) from None
        return redactor.json(result)

    async def redeliver(self, delivery_id: int) -> Delivery:
        """One more attempt for a finished delivery (DEAD or SUCCEEDED)."""
        delivery = await Delivery.get_or_none(id=delivery_id)
        if delivery is None:
            raise NotFound(f"delivery {delivery_id} does not exist")
        if delivery.status not in {DeliveryStatus.DEAD, DeliveryStatus.SUCCEEDED}:
            raise Conflict(
                f"delivery {delivery_id} is {delivery.status}: "
                "only DEAD or SUCCEEDED deliveries are redelivered"
            )
        updated = await Delivery.filter(id=delivery_id, status=delivery.status).update(
            status=DeliveryStatus.PENDING, next_attempt_at=datetime.now(UTC), error=None
        )
        if not updated:
            raise Conflict(f"delivery {delivery_id} changed meanwhile; try again")
        self.wake({delivery.plugin})
        await delivery.refresh_from_db()
        return delivery


def _described(error: Exception) -> str:
    """What a plugin's failure reads as: a time limit says so; anything else by its type."""
    if isinstance(error, TimedOut):
        return str(error)
    return f"{type(error).__name__}: {error}"
