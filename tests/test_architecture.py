"""The layers stay as ARCHITECTURE.md draws them, and it names every module.

Dependencies point one way: `graph` → `runtime` → `models`; built-in plugins import only the
SDK. A module that is not in ARCHITECTURE.md's table of its folder is a module a newcomer
cannot find.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("graph", "runtime", "models", "plugins")


def modules(layer: str) -> list[Path]:
    return sorted(path for path in (ROOT / layer).rglob("*.py") if "static" not in path.parts)


def every_import(path: Path) -> Iterator[str]:
    """Every module `path` imports, lazy imports inside functions too."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def imported(path: Path) -> Iterator[str]:
    """Every module `path` imports that is one of ours, lazy imports inside functions too."""
    yield from (name for name in every_import(path) if name.split(".")[0] in OURS)


def offences(layer: str, allowed: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(layer)
        for name in imported(path)
        if not (name == layer or name.startswith(f"{layer}.") or name.startswith(allowed))
    ]


def test_models_import_nothing_of_ours() -> None:
    assert offences("models", ()) == []


def test_the_runtime_never_imports_graphql() -> None:
    assert offences("runtime", ("models",)) == []


def test_built_in_plugins_import_only_the_sdk() -> None:
    assert offences("plugins", ("runtime.sdk",)) == []


# What plugin code must be able to do without: the ORM and its drivers, our models, the
# server's hosting of plugins, the ASGI framework, the GraphQL layer.
SERVER_SIDE = (
    "models",
    "graph",
    "runtime.hosting",
    "tortoise",
    "starlette",
    "asyncpg",
    "aiosqlite",
)


def test_the_sdk_imports_nothing_of_the_server() -> None:
    """What each SDK module names itself; tests/runtime/sdk/test_sdk_imports.py checks what
    importing it brings along."""
    found = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "runtime" / "sdk").rglob("*.py"))
        for name in every_import(path)
        if any(name == banned or name.startswith(f"{banned}.") for banned in SERVER_SIDE)
    ]
    assert found == []


def documented() -> set[str]:
    """`folder/module.py` for every row of ARCHITECTURE.md's module tables."""
    names: set[str] = set()
    folder = None
    for line in (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^#{2,3} `?([\w/]+)/`?$", line)
        if heading:
            folder = heading.group(1)
        row = re.match(r"^\| `([^`]+)` \|", line)
        if row and folder:
            names.add(f"{folder}/{row.group(1)}")
    return names


@pytest.mark.parametrize("layer", ["graph", "runtime", "models"])
def test_architecture_names_every_module(layer: str) -> None:
    listed = documented()
    missing = [
        str(path.relative_to(ROOT))
        for path in modules(layer)
        if (path.name != "__init__.py" or path.parent.name in {"sdk", "models"})
        and str(path.relative_to(ROOT)) not in listed
        and f"{path.parent.relative_to(ROOT)}/*.py" not in listed
    ]
    assert missing == [], "add these to ARCHITECTURE.md, in their folder's table"
