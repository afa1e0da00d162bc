"""`serve` in-process: the uvicorn configuration it runs with."""

from __future__ import annotations

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
    assert cli.main(["serve", "--data-dir", str(tmp_path), "--port", "0"]) == 0
    assert configs[0].ws is FrameWritingProtocol
