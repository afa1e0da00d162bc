"""`serve` in-process: the uvicorn configuration it runs with."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from graph import cli, logs
from graph.websocket_frames import FrameWritingProtocol


def test_serve_runs_uvicorn_with_the_frame_writing_websocket_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs: list[uvicorn.Config] = []

    class Server:
        started = True

        def __init__(self, config: uvicorn.Config) -> None:
            configs.append(config)

        def run(self, *args: Any) -> None:
            pass

    monkeypatch.setattr(uvicorn, "Server", Server)
    monkeypatch.setattr(logs, "configure_logging", lambda *args: None)  # the root logger untouched
    monkeypatch.setattr(cli, "tune_collector", lambda: None)  # this process's collector untouched
    assert cli.main(["serve", "--data-dir", str(tmp_path), "--port", "0"]) == 0
    assert isinstance(configs[0].ws, type) and issubclass(configs[0].ws, FrameWritingProtocol)


def test_the_server_collects_young_garbage_less_often_and_freezes_what_start_up_made() -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    try:
        cli.tune_collector()
        assert gc.get_threshold() == (cli.GC_YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
