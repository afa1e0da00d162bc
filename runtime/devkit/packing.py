"""`plugin pack` and `repo index`: a plugin's archive and a repository's index.json.

An archive is a tar.gz whose root holds plugin.json and the plugin's code. It is built
deterministically (sorted entries, fixed times and owners, no caches), so packing the same
folder twice gives the same bytes and the same sha256.

Example:
    >>> import tempfile
    >>> from runtime.devkit.scaffold import scaffold
    >>> work = Path(tempfile.mkdtemp())
    >>> packed = pack_plugin(scaffold("hello", work), work / "dist")
    >>> packed.path.name
    'hello-0.1.0.tar.gz'
    >>> pack_plugin(work / "hello", work / "dist").sha256 == packed.sha256
    True
    >>> index = write_index(work / "dist")
    >>> [v["archive"] for v in index["plugins"][0]["versions"]]
    ['hello-0.1.0.tar.gz']
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from runtime.catalog.manifest import parse_manifest
from runtime.devkit.validate import manifest_path
from runtime.hosting.registry import MANIFEST_FILES

# 1980-01-01, the earliest time every archive format holds.
FIXED_MTIME = 315532800
SKIPPED_DIRS = frozenset(
    {"__pycache__", ".git", ".hg", ".venv", "venv", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
)
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".tar.gz", ".tgz")
Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


@dataclass(frozen=True)
class Packed:
    path: Path
    sha256: str
    name: str
    version: str
    files: list[str]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _members(folder: Path, skip: set[Path]) -> Iterator[Path]:
    """Files and folders below `folder`, sorted, without caches, VCS data or archives."""
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if path.resolve() in skip or path.name.startswith("."):
            continue
        if path.is_dir():
            if path.name in SKIPPED_DIRS:
                continue
            yield path
            yield from _members(path, skip)
        elif path.is_file() and not path.name.endswith(SKIPPED_SUFFIXES):
            yield path


def _info(
    name: str, *, directory: bool, size: int = 0, executable: bool = False
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = size
        info.mode = 0o755 if executable else 0o644
    return info


def pack_plugin(folder: Path, out: Path, progress: Progress = _quiet) -> Packed:
    """Write `out/<name>-<version>.tar.gz` from the plugin in `folder`."""
    found = manifest_path(folder)
    if found is None:
        raise ValueError(f"no plugin.json in {folder}")
    manifest = parse_manifest(orjson.loads(found.read_bytes()))
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{manifest.name}-{manifest.version}.tar.gz"
    members = list(_members(folder, {out.resolve(), target.resolve()}))
    progress(f"packing {len(members)} entries of {manifest.name} {manifest.version}")
    raw = io.BytesIO()
    names: list[str] = []
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in members:
            name = path.relative_to(folder).as_posix()
            if path.is_dir():
                archive.addfile(_info(name, directory=True))
                continue
            data = path.read_bytes()
            executable = bool(path.stat().st_mode & 0o111)
            archive.addfile(
                _info(name, directory=False, size=len(data), executable=executable),
                io.BytesIO(data),
            )
            names.append(name)
            progress(f"  added {name} ({len(data)} bytes)")
    with (
        target.open("wb") as stream,
        gzip.GzipFile(
            filename="", mode="wb", fileobj=stream, mtime=0, compresslevel=9
        ) as compressed,
    ):
        compressed.write(raw.getvalue())
    return Packed(target, sha256_of(target), manifest.name, manifest.version, names)


def read_archive_manifest(archive: Path) -> dict[str, Any]:
    """The plugin.json at the root of an archive."""
    with tarfile.open(archive, mode="r:gz") as opened:
        for filename in MANIFEST_FILES:
            try:
                member = opened.getmember(filename)
            except KeyError:
                continue
            extracted = opened.extractfile(member)
            if extracted is None:
                break
            data = orjson.loads(extracted.read())
            if not isinstance(data, dict):
                raise ValueError(f"{archive.name}: {filename} is not a JSON object")
            return data
    raise ValueError(f"{archive.name} has no plugin.json at its root")


_NUMBERS = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?")


def _version_key(version: str) -> tuple[Any, ...]:
    """Semantic-version order: a release sorts after its pre-releases."""
    match = _NUMBERS.match(version)
    if match is None:
        return (0, 0, 0, 0, ())
    major, minor, patch, pre = match.groups()
    parts = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in (pre or "").split(".")
    )
    return (int(major), int(minor), int(patch), 0 if pre else 1, parts if pre else ())


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def build_index(
    folder: Path, *, name: str | None = None, progress: Progress = _quiet
) -> dict[str, Any]:
    """index.json's content for the archives in `folder` (newest version first per plugin).

    A version already in `folder/index.json` with the same sha256 keeps its publishedAt.
    """
    previous: dict[tuple[str, str], dict[str, Any]] = {}
    existing = folder / "index.json"
    old: dict[str, Any] = {}
    if existing.exists():
        try:
            old = orjson.loads(existing.read_bytes())
            for plugin in old.get("plugins", []):
                for version in plugin.get("versions", []):
                    previous[(str(version.get("archive")), str(version.get("sha256")))] = version
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            old = {}
    archives = sorted(path for path in folder.glob("*.tar.gz") if path.is_file())
    progress(f"indexing {len(archives)} archive(s) in {folder}")
    plugins: dict[str, list[dict[str, Any]]] = {}
    for number, archive in enumerate(archives, 1):
        data = read_archive_manifest(archive)
        manifest = parse_manifest(data)
        digest = sha256_of(archive)
        earlier = previous.get((archive.name, digest), {})
        plugins.setdefault(manifest.name, []).append(
            {
                "version": manifest.version,
                "manifest": data,
                "archive": archive.name,
                "sha256": digest,
                "publishedAt": earlier.get("publishedAt") or _now(),
            }
        )
        progress(f"  [{number}/{len(archives)}] {manifest.name} {manifest.version}")
    entries = []
    for plugin_name in sorted(plugins):
        versions = plugins[plugin_name]
        seen = [v["version"] for v in versions]
        duplicates = sorted({v for v in seen if seen.count(v) > 1})
        if duplicates:
            raise ValueError(f"{plugin_name}: more than one archive of version {duplicates[0]}")
        versions.sort(key=lambda v: _version_key(v["version"]), reverse=True)
        entries.append({"name": plugin_name, "versions": versions})
    title = name or old.get("name") or folder.resolve().name
    return {"apiVersion": 1, "name": title, "plugins": entries}


def write_index(
    folder: Path, *, name: str | None = None, progress: Progress = _quiet
) -> dict[str, Any]:
    index = build_index(folder, name=name, progress=progress)
    (folder / "index.json").write_bytes(orjson.dumps(index, option=orjson.OPT_INDENT_2) + b"\n")
    return index
