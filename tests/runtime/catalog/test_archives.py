"""Archives from repositories are checked and unpacked safely, or refused leaving nothing."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from runtime.catalog.archives import ArchiveLimits, install_archive, version_dir, walk_tree
from runtime.catalog.sources.fetch import UrlFetcher
from runtime.core.address_policy import AddressPolicy
from runtime.core.errors import BadUserInput
from tests.local_http import local_network, serve

MANIFEST = json.dumps({"name": "demo", "version": "1.0.0"}).encode()


def archive(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


async def unpack(
    tmp_path: Path, body: bytes, *, sha256: str | None = None, limits: ArchiveLimits | None = None
) -> Path:
    source = tmp_path / "demo-1.0.0.tar.gz"
    source.write_bytes(body)
    target = version_dir(tmp_path / "plugins", "demo", "1.0.0")
    messages: list[str] = []

    async def progress(message: str) -> None:
        messages.append(message)

    await install_archive(
        UrlFetcher(local_network(tmp_path)),
        source.as_uri(),
        sha256 or hashlib.sha256(body).hexdigest(),
        target,
        name="demo",
        version="1.0.0",
        limits=limits,
        progress=progress,
    )
    assert messages[0].startswith("downloading demo 1.0.0")
    return target


def nothing_left(tmp_path: Path) -> bool:
    return not (tmp_path / "plugins" / "demo").exists()


async def test_a_good_archive_is_unpacked(tmp_path: Path) -> None:
    body = archive(file("plugin.json", MANIFEST), file("pkg/mod.py", b"X = 1\n"))
    target = await unpack(tmp_path, body)
    assert (target / "pkg" / "mod.py").read_text() == "X = 1\n"
    assert [p.name for p in target.parent.iterdir()] == ["1.0.0"]  # no staging left


async def test_a_sha256_mismatch_is_refused(tmp_path: Path) -> None:
    body = archive(file("plugin.json", MANIFEST))
    with pytest.raises(BadUserInput, match=r"sha256 .* differs from the index's"):
        await unpack(tmp_path, body, sha256="0" * 64)
    assert nothing_left(tmp_path)


BAD: dict[str, tuple[Callable[[], bytes], str]] = {
    "traversal": (
        lambda: archive(file("plugin.json", MANIFEST), file("../../evil.py", b"x")),
        r"climbs out of the folder \('..'\)",
    ),
    "absolute": (
        lambda: archive(file("plugin.json", MANIFEST), file("/etc/evil", b"x")),
        "is an absolute path",
    ),
    "symlink": (
        lambda: archive(file("plugin.json", MANIFEST), special("link", tarfile.SYMTYPE, "/etc")),
        "'link' is a link",
    ),
    "hardlink": (
        lambda: archive(
            file("plugin.json", MANIFEST), special("hard", tarfile.LNKTYPE, "plugin.json")
        ),
        "'hard' is a link",
    ),
    "device": (
        lambda: archive(file("plugin.json", MANIFEST), special("dev", tarfile.CHRTYPE)),
        "device, fifo or special file",
    ),
    "no manifest": (lambda: archive(file("other.py", b"x")), "no plugin.json"),
    "other plugin": (
        lambda: archive(
            file("plugin.json", json.dumps({"name": "x", "version": "1.0.0"}).encode())
        ),
        "names another plugin or version",
    ),
    "not a tar": (lambda: gzip.compress(b"not a tar at all" * 100), "not a readable tar.gz"),
}


@pytest.mark.parametrize("case", sorted(BAD))
async def test_unsafe_archives_are_refused_leaving_nothing(tmp_path: Path, case: str) -> None:
    build, reason = BAD[case]
    (tmp_path / "plugins").mkdir()
    with pytest.raises(BadUserInput, match=reason):
        await unpack(tmp_path, build())
    assert nothing_left(tmp_path)
    assert not (tmp_path / "evil.py").exists() and not (tmp_path.parent / "evil.py").exists()


async def test_an_oversize_archive_is_refused(tmp_path: Path) -> None:
    body = archive(file("plugin.json", MANIFEST), file("big.bin", os.urandom(5000)))
    with pytest.raises(BadUserInput, match="larger than the limit of 1000 bytes"):
        await unpack(tmp_path, body, limits=ArchiveLimits(max_bytes=1000))
    assert nothing_left(tmp_path)


async def test_a_decompression_bomb_is_refused(tmp_path: Path) -> None:
    # 64 MiB of zeros compress to about 64 KiB: small to download, large to unpack.
    body = archive(file("plugin.json", MANIFEST), file("zeros.bin", bytes(64 * 1024 * 1024)))
    assert len(body) < 200_000
    with pytest.raises(BadUserInput, match="unpacks to more than 1048576 bytes"):
        await unpack(tmp_path, body, limits=ArchiveLimits(max_unpacked_bytes=1024 * 1024))
    assert nothing_left(tmp_path)


async def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    body = archive(file("plugin.json", MANIFEST), *(file(f"f{i}", b"") for i in range(20)))
    with pytest.raises(BadUserInput, match="more than 10 entries"):
        await unpack(tmp_path, body, limits=ArchiveLimits(max_members=10))
    assert nothing_left(tmp_path)


def test_folder_names_cannot_climb() -> None:
    with pytest.raises(BadUserInput):
        version_dir(Path("/data"), "..", "1.0.0")
    with pytest.raises(BadUserInput):
        version_dir(Path("/data"), "demo", "../1")


async def test_an_archive_the_address_policy_refuses_is_not_downloaded(tmp_path: Path) -> None:
    body = archive(file("plugin.json", MANIFEST))
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "demo-1.0.0.tar.gz").write_bytes(body)
    target = version_dir(tmp_path / "plugins", "demo", "1.0.0")
    digest = hashlib.sha256(body).hexdigest()
    asked: list[str] = []

    async def download(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(body=body)

    async with serve(download, "/demo-1.0.0.tar.gz", method="GET") as url:
        for fetcher, where, message in (
            (UrlFetcher(), url, "127.0.0.1 is a loopback address"),
            (
                UrlFetcher(AddressPolicy().allowing("", tmp_path / "plugins")),
                (tmp_path / "served" / "demo-1.0.0.tar.gz").as_uri(),
                "STREAMSPACE_FILE_REPOSITORY_ROOTS",
            ),
        ):
            with pytest.raises(BadUserInput, match=message):
                await install_archive(fetcher, where, digest, target, name="demo", version="1.0.0")
            assert nothing_left(tmp_path)
        assert asked == []
        await install_archive(
            UrlFetcher(local_network()), url, digest, target, name="demo", version="1.0.0"
        )
        assert asked == ["/demo-1.0.0.tar.gz"]


def folder(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info, None


def nested(depth: int, *, with_folders: bool) -> bytes:
    """A plugin whose one module lies `depth` folders down."""
    parts = ["d"] * depth
    folders = [folder("/".join(parts[: i + 1])) for i in range(depth)] if with_folders else []
    return archive(file("plugin.json", MANIFEST), *folders, file("/".join(parts) + "/m.py", b""))


@pytest.mark.parametrize("with_folders", [True, False], ids=["folder-entries", "file-only"])
async def test_an_archive_nested_2000_folders_deep_is_refused_by_its_depth(
    tmp_path: Path, with_folders: bool
) -> None:
    (tmp_path / "plugins").mkdir()
    with pytest.raises(BadUserInput, match=r"is nested \d+ deep, more than the limit of 32"):
        await unpack(tmp_path, nested(2000, with_folders=with_folders))
    assert nothing_left(tmp_path)


def test_a_tree_deeper_than_the_recursion_limit_is_walked_without_recursing(
    tmp_path: Path,
) -> None:
    depth = sys.getrecursionlimit() + 200
    deepest = tmp_path / "tree"
    deepest.mkdir()
    for _ in range(depth):
        deepest = deepest / "d"
        deepest.mkdir()  # one at a time: os.makedirs recurses too
    (deepest / "m.py").write_bytes(b"")
    try:
        found = list(walk_tree(tmp_path / "tree"))
        assert len(found) == depth + 1
        assert found[-1] == deepest / "m.py"
    finally:
        remove_deep(tmp_path / "tree")


def remove_deep(root: Path) -> None:
    """Remove a tree deepest first, without recursing (shutil.rmtree recurses on 3.11)."""
    folders = [root]
    index = 0
    while index < len(folders):
        for child in folders[index].iterdir():
            if child.is_dir() and not child.is_symlink():
                folders.append(child)
            else:
                child.unlink()
        index += 1
    for path in reversed(folders):
        path.rmdir()
