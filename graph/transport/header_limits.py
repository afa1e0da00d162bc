"""A time and size limit on an HTTP request's headers, which uvicorn does not have.

uvicorn (httptools) waits for a request's headers without limit: a client may open a
connection and send nothing, or trickle a header a byte at a time, and hold the connection
for as long as it likes (slowloris); and httptools gathers a header line of any length in
memory. Its keep-alive timeout only runs between two requests, and stops at the first byte.
`HeaderLimitedProtocol`, uvicorn's httptools protocol with two additions, bounds both:

- a request's headers must be complete `header_timeout` seconds after the connection opened
  or its first byte arrived, else the client gets 408 and the connection is closed;
- they may be at most about `max_header_bytes` long (counted from what arrives while they
  are incomplete), else the client gets 431 and the connection is closed.

The body has its own limit in the application (graph/transport/body_deadline.py).

Example:
    protocol = HeaderLimitedProtocol.limited(header_timeout=10, max_header_bytes=65536)
    uvicorn.Config(app, http=protocol)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger(__name__)


class HeaderLimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering 408 to slow headers and 431 to long ones."""

    header_timeout = 10.0
    max_header_bytes = 65_536

    @classmethod
    def limited(
        cls, *, header_timeout: float, max_header_bytes: int
    ) -> type[HeaderLimitedProtocol]:
        """This protocol with the given limits (uvicorn takes a class)."""
        limits = {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes}
        return type(cls.__name__, (cls,), limits)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._reading_headers = False
        self._header_bytes = 0
        self._requests_begun = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        counting, begun = self._reading_headers, self._requests_begun
        super().data_received(data)
        # Bytes of a request whose headers began in an earlier read; a read that began a
        # request is not counted (it may hold the end of the one before): one read at most.
        if counting and self._reading_headers and self._requests_begun == begun:
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, "the request's headers are too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._requests_begun += 1
        self._await_headers()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._stop_header_timer()
        super().on_headers_complete()

    def _await_headers(self) -> None:
        self._reading_headers = True
        self._header_bytes = 0
        self._stop_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._reading_headers:
            self._refuse(408, "the request's headers did not arrive in time")

    def _refuse(self, status: int, reason: str) -> None:
        """Answer `status` (unless a response is under way) and close the connection."""
        self._stop_header_timer()
        self._reading_headers = False
        if self.transport.is_closing():
            return
        log.info("request refused", extra={"status": status, "reason": reason})
        if self.cycle is None or self.cycle.response_complete:
            body = reason.encode() + b"\n"
            head = [STATUS_LINE[status], *self._default_header_lines()]
            head.append(b"content-type: text/plain; charset=utf-8\r\n")
            head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
            self.transport.write(b"".join(head) + body)
        self.transport.close()

    def _default_header_lines(self) -> list[bytes]:
        return [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
