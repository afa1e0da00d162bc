"""Text and JSON as both databases can store them: no NUL characters.

PostgreSQL refuses a NUL (U+0000) in `text` and in `jsonb` alike ("unsupported Unicode escape
sequence"), where SQLite takes it. Rows are written in batches, so one plugin's result, error
or log line holding a NUL would fail the whole batch: every plugin's outcomes in it, every
log line in it. What plugins produce is therefore stored with each NUL replaced by U+FFFD
(the replacement character), on both backends alike; what callers hand in (an event's payload,
its idempotency key) is refused with the path of the first NUL instead (`nul_path`).

Example:
    storable_text("a\\x00b")             # 'a\\ufffdb'
    storable_json({"k\\x00": ["\\x00"]})  # {'k\\ufffd': ['\\ufffd']}
    nul_path({"a": [1, "x\\x00"]})        # 'a.1'
"""

from __future__ import annotations

from typing import Any

from runtime.core.errors import BadUserInput, FieldProblem

NUL = "\x00"
REPLACEMENT = "\ufffd"


def storable_text(text: str) -> str:
    return text.replace(NUL, REPLACEMENT) if NUL in text else text


def may_hold_nul(encoded: bytes) -> bool:
    """Whether JSON text (as orjson writes it) may hold a NUL: a cheap test before a walk."""
    return b"\\u0000" in encoded


def storable_json(value: Any, encoded: bytes | None = None) -> Any:
    """`value` (JSON: dicts, lists, scalars) with every NUL in its strings and keys replaced;
    the same object when it holds none. `encoded`, its JSON text if at hand, spares the walk
    of a value that holds none."""
    if encoded is not None and not may_hold_nul(encoded):
        return value
    if nul_path(value) is None:
        return value
    return _replaced(value)


def _replaced(value: Any) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(str(k)): _replaced(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replaced(item) for item in value]
    return value


def nul_path(value: Any, path: str = "") -> str | None:
    """Where the first NUL of `value` is, as a dotted path (keys and list indexes; the key
    itself when the NUL is in a key); None when it holds none."""
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if NUL in str(key):
                return here
            found = nul_path(item, here)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


def nul_refused(field: str) -> BadUserInput:
    """The error for input whose `field` holds a NUL: no backend may be asked to store it."""
    return BadUserInput(
        f"{field} holds a NUL character (\\u0000), which cannot be stored",
        [FieldProblem(field, "holds a NUL character")],
    )
