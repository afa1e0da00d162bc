"""Bearer tokens: who a caller is and which roles it holds.

Example:
    >>> issuer = TokenIssuer("a-long-shared-secret-of-the-data-directory")
    >>> token = issuer.issue(Role.ADMIN, "alice")
    >>> issuer.verify(token).subject
    'alice'
"""

from __future__ import annotations

import functools
import math
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import jwt

from runtime.core.errors import BadUserInput, Unauthenticated
from runtime.core.roles import Role as Role

ISSUER = "streamspace-plugins"
ALGORITHM = "HS256"
VERIFIED_TOKENS = 1024
_TTL = re.compile(r"^(\d+)([smhdw])$")
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# An admin may do whatever a user may: browse and rate as well as manage.
IMPLIED_ROLES = {Role.ADMIN: {Role.ADMIN, Role.USER}, Role.USER: {Role.USER}}


@dataclass(frozen=True)
class Principal:
    """The verified caller of one request."""

    subject: str
    roles: frozenset[Role] = field(default_factory=frozenset)
    # Seconds since the epoch (the token's `exp`): a WebSocket is closed then (graph/app.py).
    expires_at: float = math.inf

    def has(self, role: Role) -> bool:
        return role in self.roles


def parse_ttl(text: str) -> timedelta:
    """`30s`, `15m`, `1h`, `7d`, `2w` → a duration."""
    match = _TTL.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise BadUserInput(f"ttl {text!r} is not a duration such as 30m, 1h, 7d")
    return timedelta(seconds=int(match.group(1)) * _TTL_UNITS[match.group(2)])


def check_subject(subject: str) -> str:
    """`subject`, unless it is empty or blank: a token must name who holds it."""
    if not subject.strip():
        raise BadUserInput("the subject is empty: name who the token is for, e.g. alice")
    return subject


class TokenIssuer:
    """Issues and verifies HS256 JWTs signed with the server's secret."""

    def __init__(self, secret: str) -> None:
        # Anyone could sign tokens with an empty key.
        if not secret:
            raise ValueError("the token secret (STREAMSPACE_JWT_SECRET) must not be empty")
        self._secret = secret
        # A client sends the same token with every request; checking its signature (and
        # PyJWT preparing the key) each time costs more than a small request's own work.
        self._checked = functools.lru_cache(maxsize=VERIFIED_TOKENS)(self._check_signature)

    def issue(self, role: Role, subject: str, ttl: timedelta = timedelta(hours=1)) -> str:
        check_subject(subject)
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "roles": [role.value],
            "iat": now,
            "exp": now + int(ttl.total_seconds()),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        principal, expires = self._checked(token)
        # A token verified earlier is remembered, so its expiry is checked on every use.
        if time.time() >= expires:
            raise Unauthenticated("the token has expired")
        return principal

    def _check_signature(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.InvalidTokenError as error:
            raise Unauthenticated(f"the token is not valid: {error}") from None
        subject = claims["sub"]
        # A blank subject names nobody: audit trails and per-user data would all share it.
        if not isinstance(subject, str) or not subject.strip():
            raise Unauthenticated("the token is not valid: its subject is empty")
        expires = float(claims["exp"])
        principal = Principal(
            subject=subject, roles=_roles(claims.get("roles")), expires_at=expires
        )
        return principal, expires


def _roles(names: Any) -> frozenset[Role]:
    """The known roles a token claims, with those they imply; anything else grants nothing."""
    # A bare string would otherwise be read letter by letter.
    if not isinstance(names, list):
        return frozenset()
    roles: set[Role] = set()
    for name in names:
        try:
            role = Role(name)
        except ValueError:
            continue
        roles |= IMPLIED_ROLES.get(role, {role})
    return frozenset(roles)


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header (the scheme is case-insensitive)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()
