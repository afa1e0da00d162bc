"""The data directory is its owner's alone: made so, and closed when found open."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.core.data_dir import Tightened, create_private_dir, tighten_data_dir


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """The usual umask of a shell, under which directories are created readable by everyone."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_missing_data_directory_is_created_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "parent" / "data"
    create_private_dir(data)
    assert mode(data) == 0o700
    create_private_dir(data)  # again: nothing to do
    assert mode(data) == 0o700


def test_an_existing_directory_is_left_to_tighten_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    create_private_dir(data)
    assert mode(data) == 0o755


def test_an_open_data_directory_and_its_entries_are_closed_and_each_change_told(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "jwt-secret").write_text("s")
    (data / "jwt-secret").chmod(0o644)
    (data / "streamspace.db").write_bytes(b"")
    (data / "streamspace.db").chmod(0o640)
    (data / "plugins").mkdir()
    (data / "plugins").chmod(0o775)
    (data / "plugins" / "deeper").mkdir(mode=0o755)
    (data / "private").write_text("p")
    (data / "private").chmod(0o600)
    outside = tmp_path / "outside"
    outside.write_text("not ours")
    outside.chmod(0o644)
    (data / "link").symlink_to(outside)

    changes = tighten_data_dir(data)

    assert changes == [
        Tightened(data, 0o755, 0o700),
        Tightened(data / "jwt-secret", 0o644, 0o600),
        Tightened(data / "plugins", 0o775, 0o700),
        Tightened(data / "streamspace.db", 0o640, 0o600),
    ]
    assert mode(data / "private") == 0o600
    assert mode(outside) == 0o644  # a link's target is left alone
    assert mode(data / "plugins" / "deeper") == 0o755  # unreachable now that plugins/ is closed
    assert tighten_data_dir(data) == []


def test_a_missing_data_directory_has_nothing_to_tighten(tmp_path: Path) -> None:
    assert tighten_data_dir(tmp_path / "missing") == []
