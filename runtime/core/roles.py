"""The roles a caller's token may hold.

Apart from runtime.core.auth (which needs PyJWT and cryptography) so that the SDK can check
the role a plugin's route names without importing either.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"
    PLATFORM = "platform"
