"""Delivery figures of a plugin, aggregated in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.functions import Avg, Count, Max

from models import Delivery
from runtime.sdk.outcomes import DeliveryStatus


@dataclass(frozen=True)
class DeliveryStats:
    delivered: int = 0
    failing: int = 0
    dead: int = 0
    avg_duration_ms: float | None = None
    last_delivery_at: datetime | None = None


async def delivery_stats(plugin: str) -> DeliveryStats:
    """Succeeded, currently retrying and dead deliveries; mean duration of the succeeded."""
    rows = (
        await Delivery.filter(
            plugin=plugin,
            status__in=[DeliveryStatus.SUCCEEDED, DeliveryStatus.RETRYING, DeliveryStatus.DEAD],
        )
        .annotate(count=Count("id"), mean=Avg("duration_ms"), last=Max("updated_at"))
        .group_by("status")
        .values("status", "count", "mean", "last")
    )
    by_status = {row["status"]: row for row in rows}
    succeeded = by_status.get(DeliveryStatus.SUCCEEDED, {})
    finished = [
        row["last"] for row in rows if row["status"] != DeliveryStatus.RETRYING and row["last"]
    ]
    return DeliveryStats(
        delivered=int(succeeded.get("count") or 0),
        failing=int(by_status.get(DeliveryStatus.RETRYING, {}).get("count") or 0),
        dead=int(by_status.get(DeliveryStatus.DEAD, {}).get("count") or 0),
        avg_duration_ms=float(succeeded["mean"]) if succeeded.get("mean") is not None else None,
        last_delivery_at=max(finished) if finished else None,
    )
