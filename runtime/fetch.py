"""Reading documents from repository URLs (`https://`, `http://`, `file://`) with size caps.

The transport is an interface so tests and other callers can substitute their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiohttp

from runtime.errors import BadUserInput

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)


class Fetcher(Protocol):
    async def fetch(self, url: str, *, max_bytes: int) -> bytes: ...


class UrlFetcher:
    """Fetches http(s) URLs with aiohttp and file URLs from the local disk."""

    def __init__(self, timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT) -> None:
        self._timeout = timeout

    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        scheme = urlsplit(url).scheme
        if scheme == "file":
            return self._read_file(url, max_bytes)
        if scheme in {"http", "https"}:
            return await self._download(url, max_bytes)
        raise BadUserInput(f"{url}: only https://, http:// and file:// URLs can be read")

    @staticmethod
    def _read_file(url: str, max_bytes: int) -> bytes:
        path = Path(unquote(urlsplit(url).path))
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise BadUserInput(f"{url} is {size} bytes, more than the limit of {max_bytes}")
            return path.read_bytes()
        except OSError as error:
            raise BadUserInput(f"{url} cannot be read: {error.strerror}") from None

    async def _download(self, url: str, max_bytes: int) -> bytes:
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(url) as response,
            ):
                if response.status != 200:
                    raise BadUserInput(f"{url} answered HTTP {response.status}")
                body = bytearray()
                async for chunk in response.content.iter_chunked(65536):
                    body += chunk
                    if len(body) > max_bytes:
                        raise BadUserInput(f"{url} is larger than the limit of {max_bytes} bytes")
                return bytes(body)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise BadUserInput(
                f"{url} cannot be fetched: {error or type(error).__name__}"
            ) from None


def resolve(base_url: str, relative: str) -> str:
    """`relative` (an archive named by an index) against the folder that holds the index."""
    if urlsplit(relative).scheme:
        return relative
    return base_url.rstrip("/") + "/" + relative.lstrip("/")
