"""The Python examples of the docs run: every ```python runnable block of docs/*.md.

Blocks of one file run in order in one namespace, so a later block may use an earlier one's
names.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```python runnable\n(.*?)^```", re.MULTILINE | re.DOTALL)
FILES = sorted(path for path in DOCS.rglob("*.md") if BLOCK.search(path.read_text()))


def test_every_built_in_plugin_has_its_page() -> None:
    plugins = DOCS.parent / "plugins"
    built_in = sorted(path.parent.name for path in plugins.glob("*/plugin.json"))
    assert len(built_in) == 6
    missing = [name for name in built_in if not (DOCS / "plugins" / f"{name}.md").exists()]
    assert missing == [], "write docs/plugins/<name>.md, in the shape of slack.md"


def test_the_plugin_guide_has_runnable_examples() -> None:
    assert DOCS / "plugin-guide.md" in FILES
    assert len(BLOCK.findall((DOCS / "plugin-guide.md").read_text())) >= 3


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(DOCS)))
def test_examples_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem.replace('-', '_')}"}
    for number, block in enumerate(BLOCK.findall(path.read_text()), 1):
        code = compile(block, f"{path.name} (example {number})", "exec")
        exec(code, namespace)
