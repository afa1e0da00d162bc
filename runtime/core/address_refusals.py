"""What the address policy raises, apart from the policy (which needs aiohttp) so that the SDK
and plugin code can tell a refusal without importing aiohttp."""

from __future__ import annotations

import errno


class AddressRefused(OSError):
    """A host the policy refuses. An OSError, so aiohttp reports it as a connection error."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class PathRefused(ValueError):
    """A file:// URL naming a file outside the policy's roots."""
