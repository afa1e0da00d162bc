"""Idempotency keys: a key names one event, the way Stripe's name one request.

A retry with the same key, type and payload answers with the first event (`duplicate: true`)
and delivers nothing again. The same key with another type or payload is a mistake on the
caller's side (two events under one name), answered with CONFLICT naming the first event
rather than a silent duplicate that would swallow the second. A blank key would name every
event that carries it, so it is refused.

Example:
    >>> same_json({"n": 1, "ok": True}, {"ok": True, "n": 1.0})
    True
    >>> same_json({"ok": True}, {"ok": 1})
    False
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runtime.core.errors import BadUserInput, Conflict, FieldProblem
from runtime.db.storable import NUL, nul_refused
from runtime.delivery.records import EventRecord

# The column's width: a longer key would fail the transaction the whole batch shares.
MAX_KEY_LENGTH = 255


def check_key(key: str | None, field: str) -> None:
    """Refuse a key no event could be told apart by: blank, too long or holding a NUL."""
    if key is None:
        return
    if not key.strip():
        raise BadUserInput(
            f"{field} is blank: leave it out, or give each event a key of its own",
            [FieldProblem(field, "blank")],
        )
    if len(key) > MAX_KEY_LENGTH:
        raise BadUserInput(
            f"{field} is {len(key)} characters, more than the limit of {MAX_KEY_LENGTH}",
            [FieldProblem(field, f"longer than {MAX_KEY_LENGTH} characters")],
        )
    if NUL in key:
        raise nul_refused(field)


def same_json(left: Any, right: Any) -> bool:
    """Whether two JSON values are equal as JSON: numbers by value (a stored 1.0 may read back
    as 1), booleans only equal booleans, objects whatever their key order."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(same_json(left[k], right[k]) for k in left)
    if _is_array(left) and _is_array(right):
        return len(left) == len(right) and all(map(same_json, left, right))
    return type(left) is type(right) and bool(left == right)


def _is_array(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def same_event(event_type: str, payload: Mapping[str, Any], event: EventRecord) -> bool:
    """Whether a request (its payload normalised) repeats the stored `event`."""
    return event_type == event.type and same_json(payload, event.payload)


def reused_for_another_event(field: str, first: EventRecord) -> Conflict:
    return Conflict(
        f"{field} was first used by event {first.id} ({first.type}) with another type or "
        "payload: an idempotency key names one event; give a new event a new key",
        eventId=str(first.id),
        fields=[FieldProblem(field, f"used by event {first.id}").as_dict()],
    )


def reused_in_batch(field: str, first_field: str) -> Conflict:
    return Conflict(
        f"{field} is the key of {first_field} with another type or payload: an idempotency "
        "key names one event; give a new event a new key",
        fields=[FieldProblem(field, f"the key of {first_field}").as_dict()],
    )
