"""What a plugin's hooks receive: `PluginContext`, and its services as protocols.

The server implements the services (runtime.hosting.context: logs stored and streamed,
storage in the database, jobs on the wall clock, an HTTP session under the address policy);
the testing harness implements them in memory (runtime.sdk.testing). Plugin code sees only
what is declared here, so it runs the same under either, and importing the SDK imports
neither the server nor its database.

Example (inside a plugin):
    async def on_load(self, ctx: PluginContext) -> None:
        ctx.log.info("ready", channel=ctx.config["channel"])
        await ctx.storage.set("loaded", True)
        ctx.scheduler.every(60, self.report, name="report")
        ctx.api.action("ping", self.ping)
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from runtime.sdk.event_catalog import Event
from runtime.sdk.extensions import ActionHandler, ApiRegistry, UiRegistry

if TYPE_CHECKING:
    import socket
    from ipaddress import IPv4Address, IPv6Address
    from types import TracebackType

    from aiohttp import ClientTimeout
    from yarl import URL

# The event whose hook is running, set around each hook call (runtime.sdk.hook_runner); each
# delivery runs in its own task, so each sees its own.
CURRENT_EVENT: contextvars.ContextVar[Event | None] = contextvars.ContextVar(
    "current_event", default=None
)
Job = Callable[[], Awaitable[Any]]


class LogLevel(StrEnum):
    """A plugin log line's level, least severe first; a member is its name as a string."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


LEVELS = tuple(LogLevel)


class Log(Protocol):
    """`ctx.log`: lines stored (the pluginLogs query) and streamed, with JSON data; `level` is
    one of LogLevel."""

    def log(self, level: str, message: str, /, **data: Any) -> None: ...
    def debug(self, message: str, /, **data: Any) -> None: ...
    def info(self, message: str, /, **data: Any) -> None: ...
    def warning(self, message: str, /, **data: Any) -> None: ...
    def error(self, message: str, /, **data: Any) -> None: ...


class Storage(Protocol):
    """`ctx.storage`: JSON values by key, private to the plugin."""

    async def get(self, key: str, default: Any = None) -> Any: ...
    async def set(self, key: str, value: Any) -> None: ...
    async def update(self, key: str, change: Callable[[Any], Any], default: Any = None) -> Any:
        """Replace the value with `change(value)` atomically (even across replicas)."""
        ...

    async def delete(self, key: str) -> bool: ...
    async def keys(self, prefix: str = "") -> list[str]: ...


class Scheduler(Protocol):
    """`ctx.scheduler`: jobs (coroutines without arguments) run once per tick."""

    def every(self, seconds: float, job: Job, *, name: str) -> None: ...
    def cron(self, expression: str, job: Job, *, name: str) -> None: ...
    @property
    def jobs(self) -> list[str]: ...


class Events(Protocol):
    """`ctx.events`: `publish(name, payload)` emits `<plugin>.<name>` (with events:publish)."""

    async def publish(self, name: str, payload: Mapping[str, Any]) -> Any: ...


class Response(Protocol):
    """What plugins read of an HTTP answer (an aiohttp.ClientResponse is one)."""

    @property
    def status(self) -> int: ...
    @property
    def ok(self) -> bool: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    async def read(self) -> bytes: ...
    async def text(self, encoding: str | None = None, errors: str = "strict") -> str: ...
    async def json(self) -> Any: ...
    def raise_for_status(self) -> None: ...


class Request(Protocol):
    """A request under way: awaited, or used with `async with`, it gives the `Response`."""

    def __await__(self) -> Generator[Any, None, Response]: ...
    async def __aenter__(self) -> Response: ...
    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class Http(Protocol):
    """`ctx.http`: outgoing HTTP under the server's address policy (an aiohttp.ClientSession
    is one; aiohttp's own errors and `ClientTimeout` apply)."""

    def request(
        self,
        method: str,
        url: str | URL,
        *,
        data: Any = None,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: ClientTimeout | None = None,
        allow_redirects: bool = True,
    ) -> Request: ...
    def get(
        self,
        url: str | URL,
        *,
        data: Any = None,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: ClientTimeout | None = None,
        allow_redirects: bool = True,
    ) -> Request: ...
    def post(
        self,
        url: str | URL,
        *,
        data: Any = None,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: ClientTimeout | None = None,
        allow_redirects: bool = True,
    ) -> Request: ...
    def put(
        self,
        url: str | URL,
        *,
        data: Any = None,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: ClientTimeout | None = None,
        allow_redirects: bool = True,
    ) -> Request: ...
    def patch(
        self,
        url: str | URL,
        *,
        data: Any = None,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: ClientTimeout | None = None,
        allow_redirects: bool = True,
    ) -> Request: ...
    def delete(
        self,
        url: str | URL,
        *,
        data: Any = None,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: ClientTimeout | None = None,
        allow_redirects: bool = True,
    ) -> Request: ...


class Network(Protocol):
    """`ctx.network`: the address policy, for protocols other than HTTP."""

    def permits(self, address: IPv4Address | IPv6Address) -> bool: ...
    async def connect(self, host: str, port: int) -> socket.socket:
        """A TCP socket connected to an address of `host` the policy allows, or
        AddressRefused."""
        ...


class Api(Protocol):
    """`ctx.api`: HTTP routes under /plugins/<name>/ and actions (the pluginAction mutation)."""

    def route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        methods: Sequence[str] | None = None,
        *,
        role: str | None = None,
        public: bool = False,
    ) -> None: ...
    def action(self, name: str, handler: ActionHandler, *, role: str = "admin") -> None: ...


class Ui(Protocol):
    """`ctx.ui`: extension points the admin UI renders."""

    def add(self, slot: str, component: str, *, title: str | None = None, **props: Any) -> None: ...


def _server_address_policy() -> Network:
    # Imported only for a context built without one: the policy needs aiohttp.
    from runtime.core.address_policy import AddressPolicy

    return AddressPolicy()


@dataclass
class PluginContext:
    """Everything a plugin's hooks may use; one per loaded plugin.

    `config` holds the validated configuration with secrets decrypted. `http` is shared by
    the plugins and reaches only what the server's address policy allows, redirects included;
    `network` is that policy, for other protocols (`await ctx.network.connect(host, port)`
    gives a socket connected to an allowed address, or raises AddressRefused).
    """

    name: str
    config: Mapping[str, Any]
    log: Log
    storage: Storage
    http: Http
    scheduler: Scheduler
    events: Events
    network: Network = field(default_factory=_server_address_policy)
    api: Api = field(default_factory=ApiRegistry)
    ui: Ui = field(default_factory=lambda: UiRegistry(""))

    @property
    def logger(self) -> Log:
        return self.log

    @property
    def event(self) -> Event | None:
        """The event whose hook is running (id, type, occurred_at, attributes), or None.

        Event hooks other than on_event receive only the payload; this gives them the event's
        time and the delivery's id and attempt as well.
        """
        return CURRENT_EVENT.get()
