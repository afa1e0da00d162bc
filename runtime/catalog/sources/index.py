"""Repositories laid out as an `index.json` over HTTP(S) or in a folder (`file://`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from runtime.catalog.manifest import parse_manifest
from runtime.catalog.sources.fetch import Fetcher, resolve
from runtime.catalog.sources.offers import OfferedPlugin, OfferedVersion, SyncError, version_key
from runtime.core.errors import BadUserInput
from runtime.core.url_credentials import UrlCredentials

INDEX_FILE = "index.json"
MAX_INDEX_BYTES = 8 * 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def _published_at(value: Any) -> datetime | None:
    if not value:
        return None
    if not isinstance(value, str):
        raise ValueError("publishedAt must be an ISO 8601 date and time")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_version(entry_name: str, base_url: str, data: Any) -> OfferedVersion:
    if not isinstance(data, Mapping):
        raise ValueError("each version must be an object")
    manifest = parse_manifest(data.get("manifest"))
    if manifest.name != entry_name:
        raise ValueError(f"manifest name {manifest.name!r} differs from the entry name")
    if data.get("version", manifest.version) != manifest.version:
        raise ValueError(f"version {data.get('version')!r} differs from the manifest's")
    sha256 = data.get("sha256")
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.match(sha256)):
        raise ValueError("sha256 must be 64 hexadecimal digits")
    archive = data.get("archive")
    return OfferedVersion(
        manifest=manifest,
        archive_url=resolve(base_url, str(archive)) if archive else None,
        sha256=sha256.lower() if isinstance(sha256, str) else None,
        published_at=_published_at(data.get("publishedAt")),
    )


def parse_index(document: bytes, base_url: str) -> tuple[list[OfferedPlugin], list[SyncError]]:
    """The plugins of an index.json; a malformed document raises BadUserInput."""
    try:
        data = orjson.loads(document)
    except orjson.JSONDecodeError as error:
        raise BadUserInput(f"index.json is not valid JSON: {error}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("plugins"), list):
        raise BadUserInput("index.json must be an object with a 'plugins' list")
    if data.get("apiVersion", 1) != 1:
        raise BadUserInput(f"index.json apiVersion {data.get('apiVersion')!r} is not supported (1)")
    plugins: list[OfferedPlugin] = []
    errors: list[SyncError] = []
    seen: set[str] = set()
    for position, entry in enumerate(data["plugins"]):
        name = str(entry.get("name", "")) if isinstance(entry, Mapping) else ""
        label = name or f"plugins[{position}]"
        try:
            if not name or not isinstance(entry.get("versions"), list) or not entry["versions"]:
                raise ValueError("an entry needs a name and a non-empty 'versions' list")
            if name in seen:
                raise ValueError("the index lists this plugin twice")
            seen.add(name)
            plugins.append(OfferedPlugin(name, _parse_versions(name, base_url, entry["versions"])))
        except BadUserInput as error:
            errors.append(SyncError(label, error.message))
        except (ValueError, TypeError) as error:
            errors.append(SyncError(label, str(error)))
    return plugins, errors


def _parse_versions(name: str, base_url: str, items: list[Any]) -> list[OfferedVersion]:
    """The versions of one entry, oldest first; a version listed twice is refused."""
    versions = [_parse_version(name, base_url, item) for item in items]
    numbers = [offered.manifest.version for offered in versions]
    twice = sorted({number for number in numbers if numbers.count(number) > 1})
    if twice:
        raise ValueError(f"versions listed twice: {', '.join(twice)}")
    return sorted(versions, key=lambda offered: version_key(offered.manifest.version))


def index_location(url: str) -> tuple[str, str]:
    """(folder, index URL) of a repository URL naming either the folder or its index.json."""
    if urlsplit(url).path.endswith(".json"):
        return url.rsplit("/", 1)[0], url
    return url, resolve(url, INDEX_FILE)


async def read_index(
    url: str, fetcher: Fetcher, credentials: UrlCredentials | None
) -> tuple[list[OfferedPlugin], list[SyncError]]:
    """The plugins of the index at (or in the folder at) `url`."""
    base_url, index_url = index_location(url)
    document = await fetcher.fetch(index_url, max_bytes=MAX_INDEX_BYTES, auth=credentials)
    return parse_index(document, base_url)
