"""`plugin pack` and `repo index`: deterministic archives and an index the sync reads."""

from __future__ import annotations

import json
import os
import tarfile
import time
from pathlib import Path

import pytest

from runtime.catalog.sources.index import parse_index
from runtime.devkit.packing import build_index, pack_plugin, read_archive_manifest, write_index
from runtime.devkit.scaffold import scaffold


def test_the_archive_holds_the_manifest_and_code_at_its_root(tmp_path: Path) -> None:
    folder = scaffold("hello", tmp_path)
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "plugin.cpython-311.pyc").write_bytes(b"junk")
    (folder / "helpers").mkdir()
    (folder / "helpers" / "text.py").write_text("X = 1\n")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref")
    packed = pack_plugin(folder, tmp_path / "dist")
    assert packed.path.name == "hello-0.1.0.tar.gz"
    with tarfile.open(packed.path) as archive:
        names = archive.getnames()
        assert names[:3] == ["README.md", "helpers", "helpers/text.py"]
        assert "plugin.json" in names and "plugin.py" in names and "helpers/text.py" in names
        assert not any("__pycache__" in n or ".pyc" in n or ".git" in n for n in names)
        assert {member.mtime for member in archive.getmembers()} == {315532800}
        assert {member.uid for member in archive.getmembers()} == {0}
    assert read_archive_manifest(packed.path)["name"] == "hello"


def test_packing_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    folder = scaffold("hello", tmp_path)
    first = pack_plugin(folder, tmp_path / "a")
    later = time.time() + 3600
    for path in folder.iterdir():
        os.utime(path, (later, later))
    second = pack_plugin(folder, tmp_path / "b")
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()


def test_packing_into_the_plugin_folder_skips_its_own_output(tmp_path: Path) -> None:
    folder = scaffold("hello", tmp_path)
    pack_plugin(folder, folder / "dist")
    again = pack_plugin(folder, folder / "dist")
    assert not any(name.startswith("dist") for name in again.files)


def test_the_index_groups_versions_and_parses(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    folder = scaffold("hello", tmp_path)
    progress: list[str] = []
    for version in ("0.1.0", "0.10.0", "0.2.0", "1.0.0-rc.1"):
        manifest = json.loads((folder / "plugin.json").read_text())
        manifest["version"] = version
        (folder / "plugin.json").write_text(json.dumps(manifest))
        pack_plugin(folder, dist)
    pack_plugin(scaffold("other", tmp_path), dist)
    index = write_index(dist, name="Mine", progress=progress.append)
    assert index["apiVersion"] == 1 and index["name"] == "Mine"
    assert [p["name"] for p in index["plugins"]] == ["hello", "other"]
    versions = [v["version"] for v in index["plugins"][0]["versions"]]
    assert versions == ["1.0.0-rc.1", "0.10.0", "0.2.0", "0.1.0"]
    for version in index["plugins"][0]["versions"]:
        assert version["archive"] == f"hello-{version['version']}.tar.gz"
        assert len(version["sha256"]) == 64 and version["publishedAt"].endswith("Z")
        assert version["manifest"]["version"] == version["version"]
    assert any("[5/5]" in line for line in progress)
    offered, errors = parse_index((dist / "index.json").read_bytes(), dist.as_uri() + "/")
    assert errors == []
    assert {plugin.name for plugin in offered} == {"hello", "other"}


def test_reindexing_keeps_published_times(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    pack_plugin(scaffold("hello", tmp_path), dist)
    first = write_index(dist)
    time.sleep(1.1)
    second = build_index(dist)
    assert first == second


def test_an_archive_without_a_manifest_is_refused(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    with tarfile.open(dist / "broken-1.0.0.tar.gz", "w:gz") as archive:
        archive.add(__file__, arcname="code.py")
    with pytest.raises(ValueError, match=r"no plugin\.json"):
        build_index(dist)
