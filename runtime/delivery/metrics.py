"""Prometheus metrics of the runtime, in a registry of the process's own.

Counters and histograms are updated where things happen (emitter, dispatcher, broadcast); the
queue figures are read from the database when Prometheus scrapes, because the queue is shared
by every replica and only the database knows it whole.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from tortoise.functions import Count, Min

from models import Delivery
from runtime.sdk.outcomes import DeliveryStatus

CONTENT_TYPE = CONTENT_TYPE_LATEST
QUEUED = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.RUNNING)


class RuntimeMetrics:
    """The instruments; one per process (tests build their own)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_accepted = Counter(
            "streamspace_events_accepted",
            "Events accepted by emitEvent, by type family.",
            ["family"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "streamspace_deliveries",
            "Delivery attempts finished, by plugin and resulting status.",
            ["plugin", "status"],
            registry=self.registry,
        )
        self._finished: dict[tuple[str, str], Counter] = {}
        self._timers: dict[str, Histogram] = {}
        self.hook_seconds = Histogram(
            "streamspace_hook_duration_seconds",
            "Time plugin hooks took, by plugin.",
            ["plugin"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "streamspace_queue_depth",
            "Deliveries waiting or running, by status (all replicas).",
            ["status"],
            registry=self.registry,
        )
        self.oldest_pending = Gauge(
            "streamspace_oldest_pending_seconds",
            "Age of the oldest delivery due and not yet run (all replicas).",
            registry=self.registry,
        )
        self.subscribers = Gauge(
            "streamspace_subscribers",
            "Subscription inboxes open in this process.",
            registry=self.registry,
        )
        self.broadcast_reconnects = Gauge(
            "streamspace_broadcast_reconnects",
            "Times this process re-established its broadcast link.",
            registry=self.registry,
        )
        self.plugins_loaded = Gauge(
            "streamspace_plugins_loaded",
            "Plugins loaded in this process, by status.",
            ["status"],
            registry=self.registry,
        )

    def delivery_finished(self, plugin: str, status: str, seconds: float) -> None:
        # Called for every delivery: the labelled children are looked up once.
        counter = self._finished.get((plugin, status))
        if counter is None:
            counter = self._finished[plugin, status] = self.deliveries.labels(plugin, status)
        timer = self._timers.get(plugin)
        if timer is None:
            timer = self._timers[plugin] = self.hook_seconds.labels(plugin)
        counter.inc()
        timer.observe(seconds)

    async def render(self, live: Callable[[], dict[str, Any]]) -> bytes:
        """The exposition text; `live` supplies this process's gauges at scrape time."""
        figures = live()
        self.subscribers.set(figures.get("subscribers", 0))
        self.broadcast_reconnects.set(figures.get("reconnects", 0))
        self.plugins_loaded.clear()
        for status, count in figures.get("plugins", {}).items():
            self.plugins_loaded.labels(status=status).set(count)
        await self._read_queue()
        return generate_latest(self.registry)

    async def _read_queue(self) -> None:
        rows = (
            await Delivery.filter(status__in=list(QUEUED))
            .annotate(count=Count("id"), oldest=Min("next_attempt_at"))
            .group_by("status")
            .values("status", "count", "oldest")
        )
        by_status = {row["status"]: row for row in rows}
        for status in QUEUED:
            self.queue_depth.labels(status=status).set(by_status.get(status, {}).get("count", 0))
        due = [
            row["oldest"]
            for row in rows
            if row["status"] != DeliveryStatus.RUNNING and row["oldest"]
        ]
        oldest = min(due) if due else None
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        self.oldest_pending.set(max(0.0, age))
