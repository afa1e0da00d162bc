"""Keeping secrets out of what leaves a plugin's code: errors, results, log lines, test messages.

A `Redactor` is built per loaded plugin from its decrypted secret values (at any depth of its
configuration). Each value is searched for in the forms a message may carry it: as written,
URL-encoded, JSON-escaped, and, for a URL, its path, query, credentials and token-like path
segments and query values. A secret URL is shown as its scheme and host only. Whatever the
plugin's secrets, any URL in a text loses its `user:pass@` credentials and its query string.

Example:
    >>> redactor = Redactor(["https://hooks.example/T01/B02/XYZ123456"])
    >>> redactor.text("POST https://hooks.example/T01/B02/XYZ123456 failed")
    'POST https://hooks.example/******** failed'
    >>> redactor.text("answered 404 for /T01/B02/XYZ123456")
    'answered 404 for /********'
    >>> Redactor().text("see https://ann:pw@host.example/x?token=1")
    'see https://***@host.example/x?***'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

import orjson

from runtime.catalog.config_schema import MASK

# Shorter values would match ordinary words of every message; they are not searched for.
MIN_SECRET_CHARS = 4
# A part of a secret URL (a path segment, a query value) is searched for on its own when it
# looks like a token: this long with a digit in it, or simply long.
TOKEN_CHARS = 8
LONG_CHARS = 20
# A line of a multi-line secret (a PEM key) this long is searched for on its own.
LINE_CHARS = 16

# scheme://[userinfo@]rest[?query]; a URL ends at whitespace, quotes, angle brackets or a
# backslash (a JSON-escaped quote).
_ESCAPE = re.compile(r"%[0-9A-F]{2}")
_URL = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)"
    r"(?P<userinfo>[^\s/?#@'\"<>\\]*@)?"
    r"(?P<rest>[^\s?#'\"<>\\]*)"
    r"(?P<query>\?[^\s#'\"<>\\]*)?"
)


def looks_like_token(text: str) -> bool:
    """Whether a part of a URL reads as a credential rather than a word (a segment or a
    user name: `T0A1B2C3D4`, `ghp_…`, a long random string)."""
    if len(text) >= LONG_CHARS:
        return True
    return len(text) >= TOKEN_CHARS and any(char.isdigit() for char in text)


def strip_url_credentials(text: str) -> str:
    """Every URL in `text` without its `user:pass@` credentials and its query string."""
    if "://" not in text:
        return text
    return _URL.sub(_stripped_url, text)


def _stripped_url(match: re.Match[str]) -> str:
    userinfo = "***@" if match["userinfo"] else ""
    query = "?***" if match["query"] else ""
    return f"{match['scheme']}{userinfo}{match['rest']}{query}"


def secret_leaves(values: Any) -> Iterator[str]:
    """The text of every scalar secret value in a configuration's secret part, at any depth."""
    if isinstance(values, Mapping):
        for value in values.values():
            yield from secret_leaves(value)
    elif isinstance(values, list | tuple):
        for value in values:
            yield from secret_leaves(value)
    elif isinstance(values, str):
        yield values
    elif isinstance(values, int | float) and not isinstance(values, bool):
        yield str(values)


def _forms(text: str) -> set[str]:
    """`text` as a message may carry it: as written, URL-encoded, JSON-escaped."""
    escaped = orjson.dumps(text).decode()[1:-1]
    return {
        text,
        quote(text, safe=""),
        quote(text),
        quote_plus(text),
        escaped,
        escaped.replace("/", "\\/"),
    }


def _url_parts(value: str) -> tuple[str | None, list[str]]:
    """For a URL: what it reads as once redacted (scheme and host), and its secret parts."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return None, []
    if not parts.scheme or not parts.netloc:
        return None, []
    host = parts.netloc.rpartition("@")[2]
    path = parts.path.strip("/")
    found = [part for part in (path, parts.query, parts.username or "") if looks_like_token(part)]
    if parts.password:
        found.append(parts.password)
    found += [segment for segment in parts.path.split("/") if looks_like_token(segment)]
    try:
        query = parse_qsl(parts.query, keep_blank_values=False)
    except ValueError:
        query = []
    found += [item for _, item in query if looks_like_token(item)]
    return f"{parts.scheme}://{host}/{MASK}", found


def _needles(value: str) -> dict[str, str]:
    """What to search for in messages, each with what replaces it."""
    needles: dict[str, str] = {}
    shown, parts = _url_parts(value)
    lines = [line.strip() for line in value.splitlines()]
    for part in [*parts, *(line for line in lines if len(line) >= LINE_CHARS)]:
        if len(part) >= MIN_SECRET_CHARS:
            for form in _forms(part):
                needles.setdefault(form, MASK)
    # The whole value last: it wins over its parts, which it contains.
    for form in _forms(value):
        needles[form] = shown or MASK
    return needles


def _lower_escapes(text: str) -> str:
    return _ESCAPE.sub(lambda match: match.group(0).lower(), text)


def _detectors(needles: Iterable[str]) -> tuple[bytes, ...]:
    """The fewest needles whose presence tells whether any is present: one that contains
    another is found through it. Percent escapes are looked for in either case."""
    candidates = {form.encode() for needle in needles for form in (needle, _lower_escapes(needle))}
    kept: list[bytes] = []
    for needle in sorted(candidates, key=len):
        if not any(shorter in needle for shorter in kept):
            kept.append(needle)
    return tuple(kept)


class Redactor:
    """Replaces one plugin's secret values (and URL credentials) in what it produces."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        needles: dict[str, str] = {}
        for secret in secrets:
            if len(secret) >= MIN_SECRET_CHARS:
                needles.update(_needles(secret))
        # Matched in any case (a host or an escape a library rewrote), looked up lower-cased.
        self._replacements = {needle.lower(): shown for needle, shown in needles.items()}
        # Longest first: where needles overlap, the alternation takes the first that matches.
        ordered = sorted(self._replacements, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE) if ordered else None
        )
        # A result is searched as encoded, in the case the secret has: substring tests in C
        # cost a fraction of a case-blind regular expression on a successful delivery's path.
        self._detectors = _detectors(needles)

    @classmethod
    def of_secrets(cls, values: Any) -> Redactor:
        """The redactor of a plugin whose secret configuration values are `values`."""
        return cls(secret_leaves(values))

    @property
    def has_secrets(self) -> bool:
        return self._pattern is not None

    def _replace(self, match: re.Match[str]) -> str:
        return self._replacements.get(match.group(0).lower(), MASK)

    def secrets_in(self, text: str) -> str:
        """`text` with the plugin's secret values replaced (URL credentials left as they are)."""
        if self._pattern is None:
            return text
        return self._pattern.sub(self._replace, text)

    def text(self, text: str) -> str:
        """`text` with the plugin's secret values and every URL's credentials and query
        replaced: for errors, log lines and test messages."""
        return strip_url_credentials(self.secrets_in(text))

    def value(self, value: Any) -> Any:
        """A JSON value with `text` applied to each of its strings, keys included."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(key)): self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value

    def holds_secret(self, encoded: bytes) -> bool:
        """Whether JSON text (as orjson writes it) holds one of the plugin's secret values,
        as written: a result that holds none costs no walk."""
        return any(needle in encoded for needle in self._detectors)

    def json(self, value: Any) -> Any:
        """`result` applied to a JSON value only when its encoded text holds a secret; a
        value JSON cannot encode is returned as it is."""
        if not self._detectors:
            return value
        try:
            encoded = orjson.dumps(value)
        except TypeError:
            return value
        return self.result(value) if self.holds_secret(encoded) else value

    def result(self, value: Any) -> Any:
        """A hook's result (JSON) with the plugin's secret values replaced in its strings.

        Unlike errors, a result is the plugin's data: URLs in it keep their query strings.
        """
        if isinstance(value, str):
            return self.secrets_in(value)
        if isinstance(value, Mapping):
            return {self.secrets_in(str(key)): self.result(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.result(item) for item in value]
        return value


# What a plugin without secret values gets: URL credentials and queries are still stripped.
NO_SECRETS = Redactor()
