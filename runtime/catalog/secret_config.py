"""A configuration's secret values at any depth: split out, merged back, masked, kept.

The secret part mirrors the configuration's structure and holds only the secret values (an
object holds its secret keys, an array one entry per item, null where an item holds none),
so merging it back into the public part restores the configuration. A client keeps a secret
it cannot see by sending the mask it was shown, or by leaving the secret out of an object it
sends; items of an array are matched by position, and only while the array keeps its length.

Example:
    >>> from runtime.catalog.config_schema import secret_shape
    >>> shape = secret_shape({"type": "object", "properties": {"servers": {"type": "array",
    ...     "items": {"type": "object", "properties": {"password": {"writeOnly": True}}}}}})
    >>> config = {"servers": [{"host": "a", "password": "pw-1"}, {"host": "b"}]}
    >>> public, secret = split_secrets(config, shape)
    >>> public, secret
    ({'servers': [{'host': 'a'}, {'host': 'b'}]}, {'servers': [{'password': 'pw-1'}, None]})
    >>> merge_secrets(public, secret) == config
    True
    >>> mask_secrets(config, shape)["servers"][0]
    {'host': 'a', 'password': '********'}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.catalog.config_schema import MASK, SecretShape
from runtime.core.errors import FieldProblem


class _Absent:
    """What a position holds when nothing is there (None is a value a configuration holds)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


class MaskWithoutSecret(ValueError):
    """A mask sent where no secret is stored: the client must send the value itself."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.problem = FieldProblem(
            path, f"holds the mask {MASK} but no secret is stored here: send the value itself"
        )


def split_secrets(
    config: Mapping[str, Any], shape: SecretShape | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public part, secret part) of a configuration; the secret part is empty when it has
    no secret values."""
    if shape is None:
        return dict(config), {}
    public, secret = _split(config, shape)
    return public, (secret if secret is not ABSENT else {})


def _split(value: Any, shape: SecretShape) -> tuple[Any, Any]:
    if shape.whole:
        return ABSENT, value
    if isinstance(value, Mapping):
        public: dict[str, Any] = {}
        secret: dict[str, Any] = {}
        for key, item in value.items():
            child = shape.child(key)
            shown, hidden = (item, ABSENT) if child is None else _split(item, child)
            if shown is not ABSENT:
                public[key] = shown
            if hidden is not ABSENT:
                secret[key] = hidden
        return public, (secret if secret else ABSENT)
    if isinstance(value, list) and shape.items is not None:
        pairs = [_split(item, shape.items) for item in value]
        if all(hidden is ABSENT for _, hidden in pairs):
            return value, ABSENT
        return (
            [None if shown is ABSENT else shown for shown, _ in pairs],
            [None if hidden is ABSENT else hidden for _, hidden in pairs],
        )
    return value, ABSENT


def merge_secrets(public: Mapping[str, Any], secret: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration: the secret part merged back into the public part."""
    merged: dict[str, Any] = _merge(dict(public), dict(secret))
    return merged


def _merge(public: Any, secret: Any) -> Any:
    if public is ABSENT:
        return secret
    if isinstance(public, Mapping) and isinstance(secret, Mapping):
        merged = dict(public)
        for key, item in secret.items():
            merged[key] = _merge(public.get(key, ABSENT), item)
        return merged
    if isinstance(public, list) and isinstance(secret, list):
        merged_items = []
        for index in range(max(len(public), len(secret))):
            shown = public[index] if index < len(public) else None
            hidden = secret[index] if index < len(secret) else None
            # In an array, null in the secret part marks an item without secrets.
            merged_items.append(shown if hidden is None else _merge(shown, hidden))
        return merged_items
    return secret


def mask_secrets(config: Mapping[str, Any], shape: SecretShape | None) -> dict[str, Any]:
    """The configuration as shown to clients: each secret that is set appears as the mask."""
    if shape is None:
        return dict(config)
    masked: dict[str, Any] = _mask(config, shape)
    return masked


def _mask(value: Any, shape: SecretShape) -> Any:
    if shape.whole:
        return value if value is None or value == "" else MASK
    if isinstance(value, Mapping):
        masked = {}
        for key, item in value.items():
            child = shape.child(key)
            masked[key] = item if child is None else _mask(item, child)
        return masked
    if isinstance(value, list) and shape.items is not None:
        return [_mask(item, shape.items) for item in value]
    return value


def mask_leaves(secret: Any) -> Any:
    """A secret part with each value that is set replaced by the mask: what is stored as
    secret is never shown, whatever the schema of the moment says."""
    if isinstance(secret, Mapping):
        return {key: mask_leaves(item) for key, item in secret.items()}
    if isinstance(secret, list):
        return [mask_leaves(item) for item in secret]
    return secret if secret is None or secret == "" else MASK


def keep_secrets(given: Any, stored: Any, shape: SecretShape | None, path: str) -> Any:
    """`given` (a client's new value at `path`) with the stored secrets it keeps: where it
    holds the mask, and where it leaves a secret out of an object it sends. Raises
    MaskWithoutSecret for a mask where nothing is stored."""
    if shape is None:
        return given
    return _keep(given, stored, shape, path)


def _keep(given: Any, stored: Any, shape: SecretShape, path: str) -> Any:
    if shape.whole:
        if given != MASK:
            return given
        if stored is ABSENT:
            raise MaskWithoutSecret(path)
        return stored
    if isinstance(given, Mapping):
        before = stored if isinstance(stored, Mapping) else {}
        kept = {}
        for key, item in given.items():
            child = shape.child(key)
            where = f"{path}.{key}" if path else str(key)
            kept[key] = (
                item if child is None else _keep(item, before.get(key, ABSENT), child, where)
            )
        for key, item in before.items():
            child = shape.child(key)
            # A secret left out of an object sent stays; an object left out goes.
            if key not in given and child is not None and child.whole:
                kept[key] = item
        return kept
    if isinstance(given, list) and shape.items is not None:
        # Items are matched by position only while the array keeps its length: after an
        # item is added or removed, a position names another item.
        same = isinstance(stored, list) and len(stored) == len(given)
        return [
            _keep(item, stored[index] if same else ABSENT, shape.items, f"{path}.{index}")
            for index, item in enumerate(given)
        ]
    return given
