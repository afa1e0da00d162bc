"""Credentials written into a repository URL (`https://user:token@host/...`), kept apart.

The URL is stored and shown without them; they are stored encrypted (`SecretBox`) and handed
to the transport only when the repository is read: as HTTP Basic authentication to the
repository's own host, and to git through a credential helper that reads them from its
environment, never from its command line or its configuration.

Example:
    >>> url, found = split_credentials("https://deploy:s3cret@git.example/plugins.git")
    >>> url, found
    ('https://git.example/plugins.git', UrlCredentials(username='deploy', password='s3cret'))
    >>> found.shown_username, same_origin(url, "https://git.example:443/a.tar.gz")
    ('deploy', True)
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from runtime.catalog.config_schema import MASK
from runtime.core.redaction import Redactor, looks_like_token
from runtime.core.secrets import SecretBox

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class UrlCredentials:
    username: str
    password: str

    def __repr__(self) -> str:
        # A log line or traceback that shows the object shows no password.
        return f"UrlCredentials(username={self.shown_username!r}, password={self._shown!r})"

    @property
    def _shown(self) -> str:
        return MASK if self.password else ""

    @property
    def shown_username(self) -> str:
        """The user name as an admin sees it: masked when it reads as a token (GitHub and
        GitLab take a token as the user name)."""
        return MASK if looks_like_token(self.username) else self.username

    @property
    def basic_authorization(self) -> str:
        """The HTTP Basic `Authorization` header value (RFC 7617)."""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def redactor(self) -> Redactor:
        """What hides these credentials in errors about the repository."""
        hidden = [self.password, self.basic_authorization.removeprefix("Basic ")]
        if looks_like_token(self.username):
            hidden.append(self.username)
        return Redactor(value for value in hidden if value)

    def seal(self, box: SecretBox) -> str:
        return box.encrypt({"username": self.username, "password": self.password})

    @classmethod
    def unseal(cls, box: SecretBox, sealed: str | None) -> UrlCredentials | None:
        if not sealed:
            return None
        values: dict[str, Any] = box.decrypt(sealed)
        return cls(str(values.get("username") or ""), str(values.get("password") or ""))


def split_credentials(url: str) -> tuple[str, UrlCredentials | None]:
    """The URL without `user:pass@`, and the credentials it held (None when it held none)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    public = urlunsplit(parts._replace(netloc=host))
    return public, UrlCredentials(unquote(username), unquote(password))


def same_origin(first: str, second: str) -> bool:
    """Whether two URLs name the same scheme, host and port: credentials for one are sent to
    the other only then."""
    a, b = urlsplit(first), urlsplit(second)
    try:
        ports = (
            a.port or _DEFAULT_PORTS.get(a.scheme),
            b.port or _DEFAULT_PORTS.get(b.scheme),
        )
    except ValueError:
        return False
    return (
        a.scheme == b.scheme
        and (a.hostname or "") == (b.hostname or "")
        and ports[0] == ports[1]
        and bool(a.hostname)
    )
