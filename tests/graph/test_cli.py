"""`serve` in-process: the uvicorn configuration it runs with."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from graph import cli, logs
from graph._fast.websocket_frames import FrameWritingProtocol
from graph.transport.header_limits import HeaderLimitedProtocol


def served_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> uvicorn.Config:
    """The uvicorn configuration `serve` runs with (uvicorn itself not run)."""
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
    return configs[0]


def test_serve_runs_uvicorn_with_the_frame_writing_websocket_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = served_config(tmp_path, monkeypatch).ws
    assert isinstance(ws, type) and issubclass(ws, FrameWritingProtocol)


def test_serve_runs_uvicorn_with_the_connection_limits_of_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "STREAMSPACE_MAX_BODY_BYTES": "200000",
        "STREAMSPACE_WS_INIT_MAX_BYTES": "1000",
        "STREAMSPACE_HEADER_TIMEOUT": "3.5",
        "STREAMSPACE_MAX_HEADER_BYTES": "9000",
        "STREAMSPACE_KEEP_ALIVE_TIMEOUT": "7",
        "STREAMSPACE_MAX_CONCURRENCY": "300",
        "STREAMSPACE_SHUTDOWN_TIMEOUT": "12",
    }.items():
        monkeypatch.setenv(name, value)
    config = served_config(tmp_path, monkeypatch)
    http, ws = config.http, config.ws
    assert isinstance(http, type) and issubclass(http, HeaderLimitedProtocol)
    assert (http.header_timeout, http.max_header_bytes) == (3.5, 9000)
    assert isinstance(ws, type) and issubclass(ws, FrameWritingProtocol)
    assert (ws.initial_max_size, config.ws_max_size) == (1000, 200_000)
    assert config.timeout_keep_alive == 7
    assert config.limit_concurrency == 300
    assert config.timeout_graceful_shutdown == 12


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
