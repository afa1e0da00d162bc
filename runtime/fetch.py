"""Reading documents from repository URLs (`https://`, `http://`, `file://`) with size caps.

The transport is an interface so tests and other callers can substitute their own. A
repository's credentials travel as HTTP Basic authentication, never inside the URL, and an
error names the URL without credentials or query string.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiohttp

from runtime.errors import BadUserInput
from runtime.redaction import strip_url_credentials
from runtime.url_credentials import UrlCredentials

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)
_CHUNK = 65536


class Fetcher(Protocol):
    async def fetch(
        self, url: str, *, max_bytes: int, auth: UrlCredentials | None = None
    ) -> bytes: ...


def _too_large(url: str, max_bytes: int) -> BadUserInput:
    return BadUserInput(
        f"{strip_url_credentials(url)} is larger than the limit of {max_bytes} bytes"
    )


class UrlFetcher:
    """Fetches http(s) URLs with aiohttp and file URLs from the local disk."""

    def __init__(self, timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT) -> None:
        self._timeout = timeout

    async def fetch(self, url: str, *, max_bytes: int, auth: UrlCredentials | None = None) -> bytes:
        scheme = urlsplit(url).scheme
        if scheme == "file":
            return self._read_file(url, max_bytes)
        if scheme in {"http", "https"}:
            return await self._download(url, max_bytes, auth)
        shown = strip_url_credentials(url)
        raise BadUserInput(f"{shown}: only https://, http:// and file:// URLs can be read")

    @staticmethod
    def _read_file(url: str, max_bytes: int) -> bytes:
        path = Path(unquote(urlsplit(url).path))
        try:
            # Read one byte past the limit rather than trusting stat: the file may grow.
            with path.open("rb") as handle:
                body = handle.read(max_bytes + 1)
        except OSError as error:
            raise BadUserInput(f"{url} cannot be read: {error.strerror or error}") from None
        if len(body) > max_bytes:
            raise _too_large(url, max_bytes)
        return body

    async def _download(self, url: str, max_bytes: int, auth: UrlCredentials | None) -> bytes:
        headers = {} if auth is None else {"Authorization": auth.basic_authorization}
        shown = strip_url_credentials(url)
        try:
            # aiohttp drops the Authorization header on a redirect to another origin.
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(url, headers=headers) as response,
            ):
                if response.status != 200:
                    raise BadUserInput(f"{shown} answered HTTP {response.status}")
                if response.content_length is not None and response.content_length > max_bytes:
                    raise _too_large(url, max_bytes)
                body = bytearray()
                async for chunk in response.content.iter_chunked(_CHUNK):
                    body += chunk
                    if len(body) > max_bytes:
                        raise _too_large(url, max_bytes)
                return bytes(body)
        except (aiohttp.ClientError, TimeoutError) as error:
            # Some of these (timeouts) have no message of their own.
            reason = strip_url_credentials(str(error)) or type(error).__name__
            raise BadUserInput(f"{shown} cannot be fetched: {reason}") from None


def resolve(base_url: str, relative: str) -> str:
    """`relative` (an archive named by an index) against the folder that holds the index.

    An index served over the network may not name a file on this server's disk.
    """
    scheme = urlsplit(relative).scheme
    if not scheme:
        return base_url.rstrip("/") + "/" + relative.lstrip("/")
    if scheme == "file" and urlsplit(base_url).scheme != "file":
        raise ValueError(f"{relative}: an index served over the network cannot name a file://")
    return relative
