"""Importing the SDK imports neither the server, its database nor their libraries: plugin code
(and, later, a plugin's own process) can import it alone."""

from __future__ import annotations

import subprocess
import sys

import pytest

# The ORM and its drivers, our models, the ASGI framework, the GraphQL server.
SERVER_SIDE = ("tortoise", "models", "starlette", "asyncpg", "aiosqlite", "graph", "strawberry")


def imported_after(statement: str) -> set[str]:
    """The top-level modules a fresh interpreter holds after running `statement`."""
    listing = "import sys\nprint(' '.join({m.split('.')[0] for m in sys.modules}))"
    probe = f"{statement}\n{listing}"
    answer = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(answer.stdout.split())


def test_importing_the_sdk_imports_nothing_of_the_server_nor_aiohttp() -> None:
    loaded = imported_after("from runtime.sdk import Plugin, PluginContext, SessionPayload")
    assert loaded & {*SERVER_SIDE, "aiohttp", "croniter"} == set()


@pytest.mark.parametrize("module", ["runtime.sdk.testing", "runtime.sdk.hook_runner"])
def test_the_sdks_other_modules_import_nothing_of_the_server(module: str) -> None:
    assert imported_after(f"import {module}") & set(SERVER_SIDE) == set()


def test_naming_the_address_policy_still_imports_it() -> None:
    loaded = imported_after(
        "from runtime.sdk import AddressPolicy\nassert AddressPolicy.__name__ == 'AddressPolicy'"
    )
    assert "aiohttp" in loaded and loaded & set(SERVER_SIDE) == set()
