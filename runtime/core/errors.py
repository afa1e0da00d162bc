"""Errors the platform reports to its callers, each with the code clients switch on.

Example:
    >>> raise NotFound("catalog plugin 7 does not exist")
    Traceback (most recent call last):
    runtime.core.errors.NotFound: catalog plugin 7 does not exist
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldProblem:
    """One problem with one field of an input, so a form can show it beside the field."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class PlatformError(Exception):
    """An error whose message is meant for the caller; `code` goes to `extensions.code`."""

    code: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions

    def as_extensions(self) -> dict[str, Any]:
        return {"code": self.code, **self.extensions}


class Unauthenticated(PlatformError):
    code = "UNAUTHENTICATED"


class Forbidden(PlatformError):
    code = "FORBIDDEN"


class NotFound(PlatformError):
    code = "NOT_FOUND"


class Conflict(PlatformError):
    code = "CONFLICT"


class BadUserInput(PlatformError):
    """Input that cannot be accepted; `fields` names every bad path when there are several."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, fields: Sequence[FieldProblem] = (), **extensions: Any):
        super().__init__(message, **extensions)
        self.fields = list(fields)

    def as_extensions(self) -> dict[str, Any]:
        extensions = super().as_extensions()
        if self.fields:
            extensions["fields"] = [problem.as_dict() for problem in self.fields]
        return extensions

    @classmethod
    def from_problems(cls, what: str, problems: Sequence[FieldProblem]) -> BadUserInput:
        summary = "; ".join(f"{p.path or '(root)'}: {p.message}" for p in problems)
        return cls(f"{what} is not valid: {summary}", problems)
