"""Sending a message over SMTP, with the server's answers mapped to the runtime's outcomes.

Transient (retried by the runtime): no connection, timeouts, a dropped connection, a failed
TLS handshake and every 4xx reply (SMTP's "try again later": 421, 450, 451, greylisting).
Permanent (DEAD): 5xx replies (535 authentication failed, 550 mailbox unavailable, 554 ...),
a server that lacks what the configuration demands (STARTTLS, AUTH) and a server the address
policy refuses (a loopback or private address not allowed): retrying cannot change any.

The connection is opened through the server's address policy (`ctx.network`), to an address
it checked, and handed to aiosmtplib, which keeps the host name for TLS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from runtime.sdk import AddressRefused, Network, PermanentFailure, RetryLater

from .settings import Settings


@dataclass(frozen=True)
class Sent:
    recipients: list[str]
    refused: dict[str, str]
    reply: str


def _is_transient(code: int) -> bool:
    # Codes outside 4xx/5xx (aiosmtplib uses -1 for "no reply") are treated as transient.
    return not 500 <= code < 600


def outcome_of(error: Exception) -> RetryLater | PermanentFailure:
    """The runtime outcome for an error raised while talking to the SMTP server."""
    if isinstance(error, AddressRefused):
        return PermanentFailure(f"the SMTP server may not be reached: {error}")
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        refusals = ", ".join(f"{r.recipient} ({r.code} {r.message})" for r in error.recipients)
        message = f"the SMTP server refused every recipient: {refusals}"
        if any(_is_transient(r.code) for r in error.recipients):
            return RetryLater(message)
        return PermanentFailure(message)
    if isinstance(error, aiosmtplib.SMTPAuthenticationError):
        # 535: wrong credentials; 454: the server cannot check them just now.
        message = f"SMTP login failed: {error.code} {error.message}"
        return RetryLater(message) if _is_transient(error.code) else PermanentFailure(message)
    if isinstance(error, aiosmtplib.SMTPResponseException):
        message = f"the SMTP server answered {error.code} {error.message}"
        return RetryLater(message) if _is_transient(error.code) else PermanentFailure(message)
    if isinstance(error, TimeoutError):
        return RetryLater(f"the SMTP server did not answer in time: {error or 'timed out'}")
    if isinstance(error, OSError):
        # Connection refused or reset, a dropped connection, TLS handshake failures
        # (certificate problems included: a renewed certificate or a corrected CA setting
        # makes the next attempt succeed).
        return RetryLater(f"the SMTP server could not be reached: {type(error).__name__}: {error}")
    if isinstance(error, aiosmtplib.SMTPException):
        # aiosmtplib raises the bare class (or SMTPNotSupported) only for what the server
        # lacks: no STARTTLS when `starttls` is configured, no AUTH when a login is.
        return PermanentFailure(f"the SMTP server cannot do what the settings require: {error}")
    return RetryLater(f"sending failed: {type(error).__name__}: {error}")


async def send(
    settings: Settings, message: EmailMessage, recipients: Sequence[str], network: Network
) -> Sent:
    """Deliver `message` to `recipients` (the envelope; the To header may list the same)."""
    try:
        async with asyncio.timeout(settings.send_budget):
            connection = await network.connect(settings.host, settings.port)
            try:
                refused, reply = await aiosmtplib.send(
                    message,
                    sender=settings.sender,
                    recipients=list(recipients),
                    hostname=settings.host,
                    sock=connection,
                    username=settings.username,
                    password=settings.password,
                    use_tls=settings.security == "tls",
                    # False, not None: None would upgrade opportunistically on a `none` setting,
                    # True refuses to go on in plain text when the server offers no STARTTLS.
                    start_tls=settings.security == "starttls",
                    tls_context=settings.tls,
                    timeout=settings.send_budget,
                )
            except BaseException:
                connection.close()  # aiosmtplib may have failed before it took the socket
                raise
            # Sent: the socket is its transport's, which closes it once a TLS session's
            # closing handshake is done. Closing it here would leave that transport unclosed.
    except (aiosmtplib.SMTPException, OSError) as error:
        raise outcome_of(error) from None
    return Sent(
        recipients=[r for r in recipients if r not in refused],
        refused={address: f"{answer.code} {answer.message}" for address, answer in refused.items()},
        reply=reply,
    )
