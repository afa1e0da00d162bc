"""Downloading a plugin version's archive and unpacking it safely into the data dir.

An archive comes from a repository we do not control, so every step distrusts it: its sha256
must match the index, its size and unpacked size are capped (a small gzip can hold gigabytes),
and only plain files and folders inside the target are written, nested at most
`max_depth` deep (a deeper tree would make every recursive walk of it, the standard library's
included, fail). The folder appears by one rename from a temporary folder, so a reader never
sees half an archive, and a refused archive leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import re
import shutil
import tarfile
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import orjson

from runtime.catalog.sources.fetch import Fetcher
from runtime.core.errors import BadUserInput
from runtime.core.url_credentials import UrlCredentials

# (message) → None: the host turns each into a plugin log line and a LOADING status change.
Progress = Callable[[str], Awaitable[None]]
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class ArchiveLimits:
    max_bytes: int = 50 * 1024 * 1024
    max_unpacked_bytes: int = 200 * 1024 * 1024
    max_members: int = 5000
    # Path parts of a member (folders and the file): Python code needs a handful.
    max_depth: int = 32


async def _quiet(message: str) -> None:
    pass


def version_dir(root: Path, name: str, version: str) -> Path:
    """`<root>/<name>/<version>`; both parts are checked so neither can climb out of root."""
    for part in (name, version):
        if not _SAFE_PART.match(part) or part in {".", ".."}:
            raise BadUserInput(f"{part!r} cannot name a plugin folder")
    return root / name / version


def refused(name: str, version: str, why: str) -> BadUserInput:
    return BadUserInput(f"the archive of {name} {version} was refused: {why}")


async def install_archive(
    fetcher: Fetcher,
    url: str,
    sha256: str | None,
    target: Path,
    *,
    name: str,
    version: str,
    limits: ArchiveLimits | None = None,
    progress: Progress = _quiet,
    auth: UrlCredentials | None = None,
) -> Path:
    """Download `url`, check it and unpack it into `target`; an existing target is kept.

    The target's existence means a complete earlier unpacking (it appears by rename only).
    """
    if await asyncio.to_thread(target.is_dir):
        return target
    limits = limits or ArchiveLimits()
    await progress(f"downloading {name} {version} from {url}")
    body = await fetcher.fetch(url, max_bytes=limits.max_bytes, auth=auth)
    await progress(f"downloaded {len(body)} bytes; checking sha256")
    digest = hashlib.sha256(body).hexdigest()
    if sha256 is None:
        # An index that names no digest gives nothing to check the bytes against.
        raise refused(name, version, "the repository gives no sha256 for it")
    if digest != sha256.lower():
        raise refused(name, version, f"sha256 {digest} differs from the index's {sha256.lower()}")
    await progress("extracting")
    files = await asyncio.to_thread(_unpack, body, target, name, version, limits)
    await progress(f"extracted {files} files into {target}")
    return target


def _checked_members(
    archive: tarfile.TarFile, name: str, version: str, limits: ArchiveLimits
) -> list[tarfile.TarInfo]:
    """Every member, refused as soon as one breaks a rule (before reading further)."""
    members: list[tarfile.TarInfo] = []
    unpacked = 0
    # Iterating reads one header at a time: a bomb is refused at the member that crosses the cap,
    # without decompressing what follows.
    for member in archive:
        path = PurePosixPath(member.name)
        if member.name.startswith(("/", "\\")) or path.is_absolute() or ":" in path.parts[0]:
            raise refused(name, version, f"{member.name!r} is an absolute path")
        if ".." in path.parts:
            raise refused(name, version, f"{member.name!r} climbs out of the folder ('..')")
        if len(path.parts) > limits.max_depth:
            raise refused(
                name,
                version,
                f"{_shown(member.name)!r} is nested {len(path.parts)} deep, more than the limit "
                f"of {limits.max_depth}",
            )
        if member.issym() or member.islnk():
            raise refused(name, version, f"{member.name!r} is a link")
        if not (member.isfile() or member.isdir()):
            raise refused(name, version, f"{member.name!r} is a device, fifo or special file")
        unpacked += member.size
        if unpacked > limits.max_unpacked_bytes:
            raise refused(
                name, version, f"it unpacks to more than {limits.max_unpacked_bytes} bytes"
            )
        members.append(member)
        if len(members) > limits.max_members:
            raise refused(name, version, f"it holds more than {limits.max_members} entries")
    return members


def _unpack(body: bytes, target: Path, name: str, version: str, limits: ArchiveLimits) -> int:
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    staging.mkdir(parents=True)
    try:
        try:
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as archive:
                members = _checked_members(archive, name, version, limits)
                # The data filter repeats the checks above in the standard library's own words.
                archive.extractall(staging, members=members, filter="data")
        except (tarfile.TarError, EOFError, OSError, ValueError) as error:
            raise refused(name, version, f"it is not a readable tar.gz ({error})") from None
        # Walked without following links, every entry but a link lies inside the folder.
        for path in walk_tree(staging):
            if path.is_symlink():
                raise refused(name, version, f"{path.name!r} is a link")
        _check_manifest(staging, name, version)
        staging.rename(target)
        return sum(1 for member in members if member.isfile())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_if_empty(target.parent)
        raise


def _shown(member: str, limit: int = 80) -> str:
    return member if len(member) <= limit else f"{member[:limit]}…"


def walk_tree(folder: Path) -> Iterator[Path]:
    """Everything under `folder`, links not followed; iterative, so no depth exhausts the
    interpreter's recursion limit (Path.rglob and os.walk recurse on Python 3.11)."""
    pending = [folder]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                path = Path(entry.path)
                yield path
                if entry.is_dir(follow_symlinks=False):
                    pending.append(path)


def _check_manifest(folder: Path, name: str, version: str) -> None:
    path = folder / "plugin.json"
    if not path.is_file():
        raise refused(name, version, "its root holds no plugin.json")
    try:
        raw = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise refused(name, version, f"plugin.json is not valid JSON ({error})") from None
    if not isinstance(raw, dict) or raw.get("name") != name or raw.get("version") != version:
        raise refused(name, version, "its plugin.json names another plugin or version")


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def remove_versions(
    root: Path, name: str, keep: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """Delete the unpacked versions of `name` except `keep` (the name's folder when empty);
    the versions deleted."""
    folder = root / name
    if not folder.is_dir() or folder.is_symlink():
        return []
    removed = []
    for child in folder.iterdir():
        if child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child.name)
    _remove_if_empty(folder)
    return removed
