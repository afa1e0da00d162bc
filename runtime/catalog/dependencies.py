"""Dependencies between plugins: a manifest's `{"streamspace-email": ">=1.2,<2"}`.

Specifiers are PEP 440 (`packaging`), so `>=1.2,<2`, `~=1.4` and `==1.*` mean what pip means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from models import InstalledPlugin
from runtime.core.errors import BadUserInput


@dataclass(frozen=True)
class Unmet:
    """A dependency the installed plugins do not satisfy."""

    name: str
    specifier: str
    installed: str | None  # the version installed, None when the plugin is not installed

    def describe(self) -> str:
        wanted = f"{self.name} {self.specifier}".strip()
        if self.installed is None:
            return f"{wanted} (not installed)"
        return f"{wanted} ({self.installed} is installed)"


def specifier_of(name: str, text: str) -> SpecifierSet:
    try:
        return SpecifierSet(text or "")
    except InvalidSpecifier:
        raise BadUserInput(f"dependency {name}: {text!r} is not a PEP 440 specifier") from None


def satisfies(version: str, specifier: SpecifierSet) -> bool:
    try:
        return specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def dependencies_of(manifest: Mapping[str, Any]) -> dict[str, str]:
    value = manifest.get("dependencies") or {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


async def unmet(dependencies: Mapping[str, str]) -> list[Unmet]:
    """The dependencies no installed plugin satisfies, by name."""
    problems = []
    for name, text in sorted(dependencies.items()):
        specifier = specifier_of(name, text)
        row = await InstalledPlugin.get_or_none(name=name)
        if row is None or not satisfies(row.version, specifier):
            problems.append(Unmet(name, text, row.version if row else None))
    return problems


def dependency_order(needs: Mapping[str, set[str]]) -> list[str]:
    """Names with each one's dependencies before it (a cycle is broken in name order)."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str) -> None:
        if state.get(name):
            return  # done, or on the current path (a cycle)
        state[name] = "visiting"
        for dependency in sorted(needs.get(name, set())):
            if dependency in needs:
                visit(dependency)
        state[name] = "done"
        order.append(name)

    for name in sorted(needs):
        visit(name)
    return order
