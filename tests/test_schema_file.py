"""schema.graphql at the project root is what the code exports, so clients can trust it."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from graph.schema import schema

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"
FIX = "run `streamspace-plugins schema > schema.graphql` and commit the result"


def test_schema_file_matches_the_code() -> None:
    assert SCHEMA_FILE.exists(), f"{SCHEMA_FILE} is missing: {FIX}"
    exported = schema.as_str().rstrip("\n") + "\n"
    stored = SCHEMA_FILE.read_text(encoding="utf-8").replace("\r\n", "\n").rstrip("\n") + "\n"
    if stored != exported:
        diff = "".join(
            difflib.unified_diff(
                stored.splitlines(keepends=True),
                exported.splitlines(keepends=True),
                "schema.graphql",
                "exported by the code",
                n=1,
            )
        )
        pytest.fail(f"schema.graphql differs from the schema the code exports: {FIX}\n{diff}")
