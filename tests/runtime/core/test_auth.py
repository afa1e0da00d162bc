"""Bearer tokens: issuing, verifying, roles, durations and the Authorization header."""

import time
from datetime import timedelta

import jwt
import pytest

from runtime.core.auth import ALGORITHM, ISSUER, Role, TokenIssuer, bearer_token, parse_ttl
from runtime.core.errors import BadUserInput, Unauthenticated

SECRET = "a-long-shared-secret-of-the-data-directory"
ISSUER_OF_TESTS = TokenIssuer(SECRET)


def test_a_token_verifies_to_its_subject_and_role() -> None:
    principal = ISSUER_OF_TESTS.verify(ISSUER_OF_TESTS.issue(Role.PLATFORM, "core"))
    assert principal.subject == "core"
    assert principal.roles == {Role.PLATFORM}
    assert not principal.has(Role.ADMIN)


def test_an_admin_may_do_what_a_user_may() -> None:
    principal = ISSUER_OF_TESTS.verify(ISSUER_OF_TESTS.issue(Role.ADMIN, "alice"))
    assert principal.has(Role.ADMIN) and principal.has(Role.USER)
    assert not principal.has(Role.PLATFORM)


def test_a_user_is_not_an_admin() -> None:
    principal = ISSUER_OF_TESTS.verify(ISSUER_OF_TESTS.issue(Role.USER, "bob"))
    assert principal.roles == {Role.USER}


def test_an_expired_token_is_refused_as_expired() -> None:
    token = ISSUER_OF_TESTS.issue(Role.ADMIN, "alice", ttl=timedelta(seconds=-10))
    with pytest.raises(Unauthenticated, match="expired"):
        ISSUER_OF_TESTS.verify(token)


def test_a_remembered_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    token = ISSUER_OF_TESTS.issue(Role.ADMIN, "alice", ttl=timedelta(seconds=60))
    assert ISSUER_OF_TESTS.verify(token).subject == "alice"
    later = time.time() + 61
    monkeypatch.setattr("runtime.core.auth.time.time", lambda: later)
    with pytest.raises(Unauthenticated, match="expired"):
        ISSUER_OF_TESTS.verify(token)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = TokenIssuer("another-secret-of-another-server-0123456").issue(Role.ADMIN, "eve")
    with pytest.raises(Unauthenticated, match="not valid: Signature verification failed"):
        ISSUER_OF_TESTS.verify(token)


@pytest.mark.parametrize("garbage", ["", "garbage", "a.b.c", "Bearer x"])
def test_garbage_is_refused_as_unauthenticated(garbage: str) -> None:
    with pytest.raises(Unauthenticated, match="the token is not valid") as raised:
        ISSUER_OF_TESTS.verify(garbage)
    assert raised.value.as_extensions() == {"code": "UNAUTHENTICATED"}


def test_a_token_of_another_issuer_is_refused() -> None:
    token = jwt.encode({"iss": "someone", "sub": "x", "exp": 2**40}, SECRET, algorithm=ALGORITHM)
    with pytest.raises(Unauthenticated, match="issuer"):
        ISSUER_OF_TESTS.verify(token)


@pytest.mark.parametrize("subject", ["", " ", "\t\n"])
def test_a_token_is_never_issued_for_an_empty_or_blank_subject(subject: str) -> None:
    with pytest.raises(BadUserInput, match="the subject is empty"):
        ISSUER_OF_TESTS.issue(Role.ADMIN, subject)


@pytest.mark.parametrize("subject", ["", "   "])
def test_a_token_whose_subject_is_empty_or_blank_is_refused(subject: str) -> None:
    claims = {"iss": ISSUER, "sub": subject, "roles": ["admin"], "exp": 2**40}
    token = jwt.encode(claims, SECRET, algorithm=ALGORITHM)
    with pytest.raises(Unauthenticated, match="subject is empty") as raised:
        ISSUER_OF_TESTS.verify(token)
    assert raised.value.as_extensions() == {"code": "UNAUTHENTICATED"}


def test_a_token_without_a_subject_is_refused() -> None:
    claims = {"iss": ISSUER, "roles": ["admin"], "exp": 2**40}
    token = jwt.encode(claims, SECRET, algorithm=ALGORITHM)
    with pytest.raises(Unauthenticated, match="sub"):
        ISSUER_OF_TESTS.verify(token)


def test_a_verified_caller_carries_the_expiry_of_its_token() -> None:
    before = time.time()
    principal = ISSUER_OF_TESTS.verify(
        ISSUER_OF_TESTS.issue(Role.USER, "bob", timedelta(minutes=5))
    )
    assert before + 299 <= principal.expires_at <= time.time() + 300


def test_unknown_or_malformed_roles_grant_nothing() -> None:
    claims = {"iss": ISSUER, "sub": "x", "exp": 2**40}
    for roles in (["root"], "admin", [{"admin": 1}]):
        token = jwt.encode({**claims, "roles": roles}, SECRET, algorithm=ALGORITHM)
        assert ISSUER_OF_TESTS.verify(token).roles == frozenset()


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        TokenIssuer("")


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        (" 1h ", timedelta(hours=1)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_parse_ttl_reads_a_number_and_a_unit(text: str, duration: timedelta) -> None:
    assert parse_ttl(text) == duration


@pytest.mark.parametrize("text", ["", "0h", "1", "h", "1y", "-1h", "1.5h"])
def test_parse_ttl_refuses_anything_else(text: str) -> None:
    with pytest.raises(BadUserInput, match="is not a duration"):
        parse_ttl(text)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("BEARER x.y", "x.y"),
    ],
)
def test_bearer_token_reads_the_authorization_header(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "abc"])
def test_bearer_token_refuses_other_schemes_and_empty_tokens(header: str) -> None:
    with pytest.raises(Unauthenticated, match="'Bearer <token>'"):
        bearer_token(header)
