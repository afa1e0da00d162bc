"""A time limit on an HTTP request's body, which uvicorn does not have.

uvicorn hands the application a body as it arrives and waits for the rest without limit, so a
client sending a byte now and then holds its request, and whatever the application holds for
it, as long as it likes. `BodyDeadline` gives the whole body `seconds` from the moment the
request reaches the application (its headers complete): past that, the client gets 408 with
`connection: close` (or, should a response have begun, the connection is dropped) and the
application is told the client left (`http.disconnect`). What it then raises is its own
business and is not reported. The headers' limit is in graph/transport/header_limits.py.

Example:
    Starlette(routes=..., middleware=[Middleware(BodyDeadline, seconds=30)])
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

REQUEST_TIMEOUT: Message = {
    "type": "http.response.start",
    "status": 408,
    "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")],
}
REQUEST_TIMEOUT_BODY: Message = {
    "type": "http.response.body",
    "body": b"the request's body did not arrive in time\n",
}


class BodyDeadline:
    """ASGI middleware answering 408 to a request whose body is not all there in time."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        reading = _BodyReading(receive, send, deadline)
        try:
            await self.app(scope, reading.receive, reading.send)
        except Exception:
            if not reading.timed_out:
                raise


class _BodyReading:
    """One request's receive and send, with the body's deadline."""

    def __init__(self, receive: Receive, send: Send, deadline: float) -> None:
        self._receive = receive
        self._send = send
        self._deadline = deadline
        self._body_complete = False
        self._response_started = False
        self.timed_out = False

    async def receive(self) -> Message:
        if self.timed_out:
            return {"type": "http.disconnect"}
        if self._body_complete:
            return await self._receive()
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            await self._time_out()
            return {"type": "http.disconnect"}
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._body_complete = True
        return message

    async def send(self, message: Message) -> None:
        if self.timed_out:
            return  # the 408 was the response; an unfinished one is dropped with the connection
        if message["type"] == "http.response.start":
            self._response_started = True
        await self._send(message)

    async def _time_out(self) -> None:
        self.timed_out = True
        log.info("request refused", extra={"status": 408, "reason": "body too slow"})
        if not self._response_started:
            await self._send(REQUEST_TIMEOUT)
            await self._send(REQUEST_TIMEOUT_BODY)
