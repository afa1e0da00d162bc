"""Types shared by every connection and error payload."""

from __future__ import annotations

import strawberry


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class FieldError:
    """One problem with one input field (also carried in extensions.fields)."""

    path: str
    message: str
