"""How the runtime runs a plugin: deliveries at once (`concurrency`) and the time each of its
hooks may take (`timeoutSeconds`).

A manifest may set them (top-level keys of plugin.json) and an admin may override them per
installation. A plugin's own configuration never sets them: its keys are its own (the webhook's
`timeoutSeconds` is its HTTP timeout), and a plugin must not loosen the limits it runs under.

Example:
    >>> settings, problems = parse_run_settings({"concurrency": 0, "timeoutSeconds": 30})
    >>> settings.timeout_seconds, [problem.path for problem in problems]
    (30.0, ['concurrency'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runtime.core.errors import BadUserInput, FieldProblem
from runtime.sdk.hook_runner import DEFAULT_TIMEOUT

CONCURRENCY = "concurrency"
TIMEOUT = "timeoutSeconds"
KEYS = (CONCURRENCY, TIMEOUT)
MIN_CONCURRENCY, MAX_CONCURRENCY = 1, 256
MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS = 0.1, 600.0


@dataclass(frozen=True)
class RunSettings:
    """What one source (a manifest, an installation) sets; None where it is silent."""

    concurrency: int | None = None
    timeout_seconds: float | None = None

    def over(self, fallback: RunSettings) -> RunSettings:
        """These values, each one left unset taken from `fallback`."""
        return RunSettings(
            self.concurrency if self.concurrency is not None else fallback.concurrency,
            self.timeout_seconds if self.timeout_seconds is not None else fallback.timeout_seconds,
        )

    def in_force(self, default_concurrency: int) -> RunLimits:
        """The limits a plugin runs under: these values, or the server's defaults."""
        return RunLimits(
            self.concurrency if self.concurrency is not None else default_concurrency,
            self.timeout_seconds if self.timeout_seconds is not None else DEFAULT_TIMEOUT,
        )


@dataclass(frozen=True)
class RunLimits:
    """The limits a loaded plugin runs under."""

    concurrency: int
    timeout_seconds: float


def _concurrency(value: Any, path: str, problems: list[FieldProblem]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(FieldProblem(path, "must be a whole number"))
        return None
    if not MIN_CONCURRENCY <= value <= MAX_CONCURRENCY:
        problems.append(FieldProblem(path, f"must be from {MIN_CONCURRENCY} to {MAX_CONCURRENCY}"))
        return None
    return value


def _timeout(value: Any, path: str, problems: list[FieldProblem]) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.append(FieldProblem(path, "must be a number of seconds"))
        return None
    if not MIN_TIMEOUT_SECONDS <= value <= MAX_TIMEOUT_SECONDS:
        problems.append(
            FieldProblem(
                path, f"must be from {MIN_TIMEOUT_SECONDS:g} to {MAX_TIMEOUT_SECONDS:g} seconds"
            )
        )
        return None
    return float(value)


def parse_run_settings(
    data: Mapping[str, Any], prefix: str = ""
) -> tuple[RunSettings, list[FieldProblem]]:
    """The settings `data` holds (null or absent: unset), and a problem per bad value, each
    named by its path (`prefix` + key)."""
    problems: list[FieldProblem] = []
    settings = RunSettings(
        _concurrency(data.get(CONCURRENCY), prefix + CONCURRENCY, problems),
        _timeout(data.get(TIMEOUT), prefix + TIMEOUT, problems),
    )
    return settings, problems


def override(current: RunSettings, given: Mapping[str, Any]) -> RunSettings:
    """An installation's override after an admin's change: a key left out keeps its value,
    a key set to null goes back to the manifest's (or the server's default)."""
    unknown = sorted(set(given) - set(KEYS))
    problems = [
        FieldProblem(f"settings.{key}", f"is not a setting (known: {', '.join(KEYS)})")
        for key in unknown
    ]
    parsed, bad = parse_run_settings(given, "settings.")
    problems += bad
    if problems:
        raise BadUserInput.from_problems("settings", problems)
    return RunSettings(
        parsed.concurrency if CONCURRENCY in given else current.concurrency,
        parsed.timeout_seconds if TIMEOUT in given else current.timeout_seconds,
    )
