"""Plugin code that arrives while the server runs: unpacked archives loaded with importlib.

Each unpacked version is imported as a package of its own, `streamspace_plugin_<name>_<version>`,
so two versions never share modules and nothing leaks into (or from) the server's own imports.
The folder's modules import each other relatively (`from . import helpers`).

`PluginCode` answers the host's question "which class runs this installed plugin?": built-in and
entry-point plugins come from the registry; a version from an index or git repository comes from
`<data-dir>/plugins/<name>/<version>/`, downloaded first when this replica does not have it yet.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from models import InstalledPlugin, PluginVersion
from runtime.catalog.archives import ArchiveLimits, install_archive, remove_versions, version_dir
from runtime.catalog.repositories import archive_credentials
from runtime.catalog.sources.fetch import Fetcher, UrlFetcher
from runtime.core.errors import BadUserInput
from runtime.core.secrets import SecretBox
from runtime.hosting.registry import (
    PluginLoadError,
    PluginRegistry,
    PluginSpec,
    class_of,
    read_manifest,
)

MODULE_PREFIX = "streamspace_plugin_"
SOURCE_PREFIX = "archive "
# (plugin, message): how progress reaches the host's logs and status stream.
Reporter = Callable[[str, str], Awaitable[None]]


def module_name(name: str, version: str) -> str:
    """The private package name of one unpacked version."""
    return MODULE_PREFIX + re.sub(r"\W", "_", f"{name}_{version}")


def forget_modules(package: str) -> None:
    """Drop `package` and its submodules from sys.modules, so the next import reads the disk."""
    for loaded in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[loaded]


def requirement_problems(raw: Mapping[str, Any]) -> list[str]:
    """The manifest's Python `requirements` this environment does not satisfy, each explained.

    The server never installs them itself: an operator adds them to its environment.
    """
    requirements = raw.get("requirements") or []
    if not isinstance(requirements, list):
        return ["requirements must be a list of PEP 508 strings"]
    problems = []
    for text in requirements:
        try:
            requirement = Requirement(str(text))
        except InvalidRequirement as error:
            problems.append(f"{text!r} is not a valid requirement ({error})")
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{requirement} is not installed")
            continue
        if requirement.specifier and not requirement.specifier.contains(
            installed, prereleases=True
        ):
            problems.append(f"{requirement} is needed but {installed} is installed")
    return problems


def check_requirements(name: str, raw: Mapping[str, Any]) -> None:
    problems = requirement_problems(raw)
    if problems:
        raise BadUserInput(
            f"{name} needs Python packages this server lacks: {'; '.join(problems)} "
            "(install them into the server's environment; the server never runs pip)"
        )


def load_folder(registry: PluginRegistry, folder: Path) -> PluginSpec:
    """Import the manifest's `entrypoints.python` from `folder` and register it."""
    manifest = read_manifest(folder)
    check_requirements(manifest.name, manifest.raw)
    entrypoint = manifest.entrypoints.get("python", "plugin:Plugin")
    package = module_name(manifest.name, manifest.version)
    forget_modules(package)
    init = folder / "__init__.py"
    spec: importlib.machinery.ModuleSpec | None
    if init.exists():
        spec = importlib.util.spec_from_file_location(
            package, init, submodule_search_locations=[str(folder)]
        )
    else:
        # A folder without __init__.py still becomes a package whose modules live in it.
        spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
    if spec is None:
        raise PluginLoadError(f"{folder} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    try:
        if spec.loader is not None:
            spec.loader.exec_module(module)
        cls = class_of(package, entrypoint)
        return registry.register(cls, manifest, SOURCE_PREFIX + str(folder))
    except PluginLoadError:
        forget_modules(package)
        raise
    except Exception as error:
        forget_modules(package)
        raise PluginLoadError(
            f"{manifest.name} {manifest.version} cannot be loaded: {type(error).__name__}: {error}"
        ) from None


class PluginCode:
    """Where each installed plugin's code comes from, and keeping the unpacked versions."""

    def __init__(
        self,
        registry: PluginRegistry,
        root: Path,
        fetcher: Fetcher | None = None,
        limits: ArchiveLimits | None = None,
        box: SecretBox | None = None,
    ) -> None:
        self.registry = registry
        self.root = root
        # Decrypts a private repository's credentials to download its archives.
        self.box = box
        self.fetcher: Fetcher = fetcher or UrlFetcher()
        self.limits = limits or ArchiveLimits()
        self.reporter: Reporter | None = None

    async def _report(self, name: str, message: str) -> None:
        if self.reporter is not None:
            await self.reporter(name, message)

    @staticmethod
    async def published(catalog_plugin_id: int | None, version: str) -> PluginVersion | None:
        """The repository's record of a version when it ships an archive; else None."""
        if catalog_plugin_id is None:
            return None
        row = await PluginVersion.filter(plugin_id=catalog_plugin_id, version=version).first()
        return row if row is not None and row.archive_url else None

    async def prepare(self, name: str, published: PluginVersion) -> PluginSpec:
        """Have the version's files here (downloading them if needed) and its class loaded."""
        folder = version_dir(self.root, name, published.version)
        current = self.registry.get(name)
        if current is not None and current.source == SOURCE_PREFIX + str(folder):
            return current
        assert published.archive_url is not None

        async def progress(message: str) -> None:
            await self._report(name, message)

        await install_archive(
            self.fetcher,
            published.archive_url,
            published.sha256,
            folder,
            name=name,
            version=published.version,
            limits=self.limits,
            progress=progress,
            auth=await archive_credentials(published.plugin_id, published.archive_url, self.box),
        )
        spec = load_folder(self.registry, folder)
        if spec.name != name or spec.manifest.version != published.version:
            raise PluginLoadError(f"{folder} holds {spec.name} {spec.manifest.version}")
        return spec

    async def spec_for(self, row: InstalledPlugin) -> PluginSpec | None:
        """The class that runs `row`'s installed version (None: no code for it here)."""
        published = await self.published(row.catalog_plugin_id, row.version)
        if published is None:
            return self.registry.get(row.name)
        return await self.prepare(row.name, published)

    def keep_only(self, name: str, versions: set[str]) -> None:
        """Delete unpacked versions of `name` other than `versions` (all when empty)."""
        for version in remove_versions(self.root, name, versions):
            forget_modules(module_name(name, version))  # their code is no longer needed
        if not versions:
            self.forget(name)

    def forget(self, name: str) -> None:
        """Unregister an unpacked plugin's class (a built-in one stays)."""
        spec = self.registry.get(name)
        if spec is not None and spec.source.startswith(SOURCE_PREFIX):
            self.registry.unregister(name)
            forget_modules(module_name(name, spec.manifest.version))
