"""The data directory holds the signing secret, the encryption key, the SQLite database and
plugin code: it is its owner's alone.

`create_private_dir` makes it (0700) where it is missing; `tighten_data_dir` takes group and
other permissions away from a data directory found open (one made by an earlier version, or
by hand) and from its entries, and says what it changed, so that `serve` can log it.

Example:
    >>> create_private_dir(Path("/tmp/streamspace-example"))
    >>> tighten_data_dir(Path("/tmp/streamspace-example"))
    []
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

PRIVATE_DIR = 0o700
OPEN_BITS = 0o077  # group and other


@dataclass(frozen=True)
class Tightened:
    """A path whose group and other permissions were taken away."""

    path: Path
    was: int
    now: int


def create_private_dir(path: Path) -> None:
    """Create `path` owner-only where it is missing (its missing parents as the umask says)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        return
    # mkdir's mode passes through the umask, which may have cleared owner bits too.
    os.chmod(path, PRIVATE_DIR)


def tighten_data_dir(path: Path) -> list[Tightened]:
    """Take group and other permissions from `path` and its entries (not deeper: with the
    directory closed, nothing under it can be reached); what was changed."""
    if not path.is_dir():
        return []
    changed = [_tighten(path)]
    for entry in sorted(path.iterdir()):
        if not entry.is_symlink():  # a link's target is not ours to change
            changed.append(_tighten(entry))
    return [change for change in changed if change is not None]


def _tighten(path: Path) -> Tightened | None:
    mode = stat.S_IMODE(path.lstat().st_mode)
    if not mode & OPEN_BITS:
        return None
    os.chmod(path, mode & ~OPEN_BITS)
    return Tightened(path, mode, mode & ~OPEN_BITS)
