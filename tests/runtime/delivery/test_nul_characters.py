"""A NUL character from a plugin is stored as U+FFFD, so it fails no batch it shares.

PostgreSQL refuses NUL in text and JSON; outcomes and log lines are written in batches, so
before this one plugin's NUL failed every plugin's outcomes in its batch, again and again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from models import Delivery, PluginLog
from runtime.delivery.emitter import EmitRequest
from runtime.sdk import Plugin, PluginContext
from tests.conftest import Database
from tests.runtime.hosts import running_host, until


class Quiet(Plugin):
    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        return None


class Nul(Plugin):
    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> Any:
        ctx.log.info("saw \x00 here", detail={"k\x00": "v\x00"})
        return {"text": "a\x00b"}


class NulFailure(Plugin):
    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        raise RuntimeError("broke \x00 here")


async def test_results_errors_and_log_lines_keep_their_text_with_nul_replaced(
    db: Database,
) -> None:
    plugins = {"quiet": Quiet, "nul": Nul, "failing": NulFailure}
    async with running_host(plugins) as host:
        result = await host.emitter.emit(EmitRequest("session.created", {"id": "s", "user": "u"}))
        await until(lambda: _settled(result.event.id))
        await until(lambda: PluginLog.filter(plugin="nul").exists())
    rows = {d.plugin: d for d in await Delivery.filter(event_id=result.event.id)}
    assert rows["quiet"].status == "SUCCEEDED"
    assert (rows["nul"].status, rows["nul"].result) == ("SUCCEEDED", {"text": "a\ufffdb"})
    assert rows["failing"].status in {"RETRYING", "DEAD"}
    assert rows["failing"].error == "RuntimeError: broke \ufffd here"
    line = await PluginLog.get(plugin="nul")
    assert (line.message, line.data) == ("saw \ufffd here", {"detail": {"k\ufffd": "v\ufffd"}})


async def _settled(event_id: int) -> bool:
    statuses = await Delivery.filter(event_id=event_id).values_list("status", flat=True)
    return len(statuses) == 3 and "RUNNING" not in statuses and "PENDING" not in statuses


async def test_a_storage_value_with_nul_is_refused_naming_where(db: Database) -> None:
    async with running_host({"quiet": Quiet}) as host:
        store = host.loaded["quiet"].context.storage
        with pytest.raises(ValueError, match=r"NUL characters \(\\u0000\) \(at a\.0\)"):
            await store.set("k", {"a": ["x\x00"]})
        assert await store.get("k") is None
