"""The plugin's configuration, read once at load time into typed settings.

The runtime has validated `ctx.config` against the manifest's schema already; what is checked
here is what a schema cannot express: that a CA file can be read and holds certificates.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    security: str  # none | starttls | tls
    sender: str
    sender_name: str
    to: tuple[str, ...]
    by_event: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    username: str | None = None
    password: str | None = None
    include_details: bool = False
    subject_prefix: str = "[StreamSpace]"
    digest_window: int = 0
    timeout: float = 30.0
    tls: ssl.SSLContext | None = None

    def recipients(self, event_type: str) -> list[str]:
        """`to` plus the event type's extra recipients (added, never replacing `to`, so the
        main list always sees everything), without duplicates, in the order configured."""
        extra = self.by_event.get(event_type, ())
        return list(dict.fromkeys(address.strip() for address in (*self.to, *extra)))

    @property
    def send_budget(self) -> float:
        """Seconds one send may take: a little under `timeoutSeconds`, which the manifest's
        hook timeout matches, so a slow server ends in our clear error rather than the runtime's."""
        return max(1.0, min(self.timeout - 1.0, self.timeout * 0.9))


def tls_context(config: Mapping[str, Any]) -> ssl.SSLContext | None:
    """The TLS context for `starttls` and `tls`; None for plain connections.

    A CA file or PEM replaces the system's trust store, which is how a private CA (or a test's
    self-signed certificate) is trusted without turning verification off.
    """
    if config.get("security", "starttls") == "none":
        return None
    ca_file = str(config.get("tlsCaFile") or "") or None
    ca_pem = str(config.get("tlsCaPem") or "") or None
    try:
        context = ssl.create_default_context(cafile=ca_file, cadata=ca_pem)
    except (OSError, ssl.SSLError) as error:
        where = f"tlsCaFile {ca_file!r}" if ca_file else "tlsCaPem"
        raise ValueError(f"{where} could not be read as PEM certificates: {error}") from None
    if not config.get("tlsVerify", True):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def read_settings(config: Mapping[str, Any]) -> Settings:
    username = str(config.get("username") or "") or None
    password = str(config.get("password") or "") or None
    if (username is None) != (password is None):
        raise ValueError("username and password must be set together (or both left empty)")
    by_event = config.get("recipientsByEvent") or {}
    return Settings(
        host=str(config["smtpHost"]).strip(),
        port=int(config.get("smtpPort", 587)),
        security=str(config.get("security", "starttls")),
        sender=str(config["from"]).strip(),
        sender_name=str(config.get("fromName") or ""),
        to=tuple(str(address) for address in config["to"]),
        by_event={
            str(kind): tuple(str(a) for a in addresses) for kind, addresses in by_event.items()
        },
        username=username,
        password=password,
        include_details=bool(config.get("includeDetails", False)),
        subject_prefix=str(config.get("subjectPrefix") or ""),
        digest_window=int(config.get("digestWindowSeconds", 0)),
        timeout=float(config.get("timeoutSeconds", 30)),
        tls=tls_context(config),
    )
