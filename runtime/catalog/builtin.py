"""The builtin repository's catalog entries, taken from the registered plugins' manifests."""

from __future__ import annotations

from runtime.catalog.repositories import SyncResult, apply_offer, ensure_builtin_repository
from runtime.catalog.sources.offers import OfferedPlugin, OfferedVersion
from runtime.hosting.registry import PluginRegistry


async def publish_builtins(registry: PluginRegistry) -> SyncResult:
    """Make the builtin repository list exactly the plugins this process can run."""
    repository = await ensure_builtin_repository()
    offered = [
        OfferedPlugin(
            name=spec.name,
            versions=[
                OfferedVersion(spec.manifest, archive_url=None, sha256=None, published_at=None)
            ],
        )
        for spec in registry.all()
    ]
    result = SyncResult(repository=repository)
    await apply_offer(repository, offered, result)
    return result
