"""Reading documents from repository URLs (`https://`, `http://`, `file://`) with size caps.

Both obey the server's address policy (runtime/core/address_policy.py): http(s) connections only to
allowed addresses, redirects included, and files only under the allowed folders. A failure
says the URL "could not be fetched" without saying why (refused connection, reset, timeout):
those would tell a closed port from an open one to whoever chooses the URL. An answer from an
HTTP server is told with its status; the detail of a failure is logged at DEBUG.

A repository's credentials travel as HTTP Basic authentication, never inside the URL, and an
error or a log line names the URL without credentials or query string. The transport is an
interface so tests and other callers can substitute their own.
"""

from __future__ import annotations

import logging
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp

from runtime.core.address_policy import AddressPolicy, AddressRefused, PathRefused
from runtime.core.errors import BadUserInput
from runtime.core.redaction import strip_url_credentials
from runtime.core.url_credentials import UrlCredentials

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)
_CHUNK = 65536


class Fetcher(Protocol):
    async def fetch(
        self, url: str, *, max_bytes: int, auth: UrlCredentials | None = None
    ) -> bytes: ...


def shown_url(url: str) -> str:
    """`url` without its user name, password and query string, fit for an error or a log
    line."""
    return strip_url_credentials(url)


def _too_large(url: str, max_bytes: int) -> BadUserInput:
    return BadUserInput(f"{shown_url(url)} is larger than the limit of {max_bytes} bytes")


def refusal_of(error: BaseException) -> AddressRefused | None:
    """The policy's refusal behind an aiohttp error (a refused redirect included), if any."""
    if isinstance(error, AddressRefused):
        return error
    if isinstance(error, aiohttp.ClientConnectorError) and isinstance(
        error.os_error, AddressRefused
    ):
        return error.os_error
    return None


def could_not_fetch(url: str, error: BaseException) -> BadUserInput:
    """The error a caller sees for a failed fetch: the policy's refusal, or no reason at all."""
    shown = shown_url(url)
    refused = refusal_of(error)
    if refused is not None:
        return BadUserInput(f"{shown}: {strip_url_credentials(refused.message)}")
    # Some errors (timeouts) have no message of their own; no URL's password or query stays in.
    detail = strip_url_credentials(str(error)) or type(error).__name__
    log.debug("fetch failed", extra={"url": shown, "error": type(error).__name__, "detail": detail})
    return BadUserInput(f"{shown} could not be fetched")


class UrlFetcher:
    """Fetches http(s) URLs with aiohttp and file URLs from the local disk, as `policy` allows
    (by default: public addresses only, no files)."""

    def __init__(
        self,
        policy: AddressPolicy | None = None,
        *,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.policy = policy or AddressPolicy()
        self._timeout = timeout

    async def fetch(self, url: str, *, max_bytes: int, auth: UrlCredentials | None = None) -> bytes:
        scheme = urlsplit(url).scheme
        if scheme == "file":
            return self._read_file(url, max_bytes)
        if scheme in {"http", "https"}:
            return await self._download(url, max_bytes, auth)
        raise BadUserInput(f"{shown_url(url)}: only https://, http:// and file:// URLs can be read")

    def _read_file(self, url: str, max_bytes: int) -> bytes:
        try:
            path = self.policy.local_path(url)
            # Read one byte past the limit rather than trusting stat: the file may grow.
            with path.open("rb") as handle:
                body = handle.read(max_bytes + 1)
        except PathRefused as error:
            raise BadUserInput(str(error)) from None
        except OSError as error:
            raise BadUserInput(f"{url} cannot be read: {error.strerror or error}") from None
        if len(body) > max_bytes:
            raise _too_large(url, max_bytes)
        return body

    async def _download(self, url: str, max_bytes: int, auth: UrlCredentials | None) -> bytes:
        headers = {} if auth is None else {"Authorization": auth.basic_authorization}
        shown = shown_url(url)
        try:
            self.policy.check_host(urlsplit(url).hostname or "")
            # aiohttp drops the Authorization header on a redirect to another origin; each
            # redirect's connection is checked by the policy's session like the first.
            async with (
                self.policy.session(timeout=self._timeout) as session,
                session.get(url, headers=headers) as response,
            ):
                if response.status != 200:
                    # An HTTP server answered, at an address the policy allows.
                    raise BadUserInput(f"{shown} answered HTTP {response.status}")
                if response.content_length is not None and response.content_length > max_bytes:
                    raise _too_large(url, max_bytes)
                body = bytearray()
                async for chunk in response.content.iter_chunked(_CHUNK):
                    body += chunk
                    if len(body) > max_bytes:
                        raise _too_large(url, max_bytes)
                return bytes(body)
        except (AddressRefused, aiohttp.ClientError, TimeoutError) as error:
            raise could_not_fetch(url, error) from None


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
