"""Who the caller is."""

from __future__ import annotations

import strawberry


@strawberry.type
class Viewer:
    """The subject and roles the caller's token carries."""

    subject: str
    roles: list[str]
