"""The ASGI application: GraphQL on /graphql; /healthz, /readyz and /metrics for operators.

Example:
    >>> from runtime.core.settings import Settings
    >>> app = create_app(Settings.load(data_dir="/tmp/streamspace-example"))
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UnsetType

from graph._fast.fanout import WebSocketAdapter
from graph._fast.websocket_frames import lift_max_size
from graph.context import Context, Services
from graph.graphiql import ASSET_PREFIX, graphiql_html, serve_asset
from graph.schema import build_schema
from graph.transport.body_deadline import BodyDeadline
from graph.transport.http_requests import (
    JSON,
    RequestRefused,
    body_too_large,
    content_length,
    error_response,
    limited,
    request_fields,
)
from graph.transport.websocket_handlers import LegacyWS, TransportWS
from graph.validation.integer_inputs import loads_exactly
from models import (
    close_database,
    dialect,
    init_database,
    migrate_database,
)
from models.database import ping_database
from runtime.broadcast.hub import Hub
from runtime.catalog.browse import ViewCounter
from runtime.catalog.builtin import publish_builtins
from runtime.catalog.installs import Installer
from runtime.catalog.repositories import ensure_builtin_repository
from runtime.catalog.sources.fetch import UrlFetcher
from runtime.core.auth import TokenIssuer, bearer_token
from runtime.core.data_dir import create_private_dir
from runtime.core.errors import Unauthenticated
from runtime.core.secrets import SecretBox
from runtime.core.settings import Settings
from runtime.delivery.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from runtime.delivery.retention import Retention
from runtime.hosting.host import HostSettings, PluginHost
from runtime.hosting.loader import PluginCode
from runtime.hosting.registry import PluginRegistry, discover_builtins, discover_entry_points
from runtime.hosting.routes import PluginRoutes

log = logging.getLogger("graph.app")


def _token_from_params(params: dict[str, Any] | None) -> str | None:
    params = params or {}
    for key in ("Authorization", "authorization"):
        if isinstance(params.get(key), str):
            return bearer_token(params[key])
    token = params.get("token")
    return token if isinstance(token, str) and token else None


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI view, with our context and authentication, and a GraphQL error with
    a code for every request it does not run (graph/transport/http_requests.py)."""

    # One handler per protocol (graph/transport/websocket_handlers.py): a connection lives no longer
    # than its token, its operations are limited in number and their errors coded, and
    # subscription messages to many subscribers cost a frame each (graph/_fast/fanout.py).
    websocket_adapter_class = WebSocketAdapter
    graphql_transport_ws_handler_class = TransportWS
    graphql_ws_handler_class = LegacyWS

    def __init__(self, services: Services) -> None:
        settings = services.settings
        super().__init__(
            build_schema(debug=settings.debug, fast_paths=settings.fast_paths),
            connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout),
        )
        self.services = services
        # Read by the WebSocket adapter and handlers (graph/_fast/fanout.py).
        self.fast_paths = settings.fast_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            response = await self._answer(scope, receive, headers)
        except RequestRefused as refused:
            response = refused.response(headers.get("accept"))
        except HTTPException as refused:  # strawberry's own: not JSON, not GET or POST
            allow = {"Allow": "GET, POST"} if refused.status_code == 405 else None
            response = error_response(
                refused.status_code, refused.reason, headers.get("accept"), allow
            )
        await response(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, headers: Headers) -> Response:
        # The body cap is ours here rather than Starlette's, which answers in plain text.
        limit = self.services.settings.max_body_bytes
        declared = content_length(headers)
        if declared is not None and declared > limit:
            raise body_too_large(limit)
        return await self.run(Request(scope, limited(receive, limit)))

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        if request.method != "POST":
            return await super().parse_http_body(request)
        given = request.content_type
        if not given or parse_content_type(given)[0].lower() != JSON:
            raise RequestRefused(
                415, f"a POST body must be {JSON}, not {given or 'without a Content-Type'}"
            )
        fields = request_fields(self.parse_json(await request.get_body()))
        return GraphQLRequestData(
            query=fields.get("query"),
            variables=fields.get("variables"),
            operation_name=fields.get("operationName"),
            extensions=fields.get("extensions"),
        )

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=OperationType.from_http(request_adapter.method),
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as error:
            raise _not_served(error.operation_type, request_adapter.method) from None
        except CannotGetOperationTypeError as error:
            raise RequestRefused(400, error.as_http_error_reason()) from None
        except MissingQueryError:
            raise RequestRefused(400, "the request holds no GraphQL query") from None

    def decode_json(self, data: str | bytes) -> object:
        # Integers beyond 64 bits stay exact, for the operation to be refused naming them.
        return loads_exactly(data)

    def encode_json(self, data: object) -> str:
        # Text, not bytes: WebSocket clients expect text frames for graphql-transport-ws.
        return orjson.dumps(data).decode()

    async def render_graphql_ide(self, request: Request) -> Response:
        """Our GraphiQL page: every script and style from this server (graph/graphiql.py)."""
        return HTMLResponse(graphiql_html())

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        context = Context(services=self.services, request=request, response=response)
        if isinstance(request, Request):
            try:
                token = bearer_token(request.headers.get("authorization"))
                if token:
                    context.authenticate(self.services.tokens.verify(token))
            except Unauthenticated as error:
                # Left unauthenticated: each field that needs a caller says why, with the code.
                context.auth_error = error.message
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        try:
            token = _token_from_params(context.connection_params)
            if token is None:
                raise Unauthenticated("connection_init must carry {'Authorization': 'Bearer …'}")
            context.authenticate(self.services.tokens.verify(token))
        except Unauthenticated as error:
            log.info("websocket refused", extra={"reason": error.message})
            raise ConnectionRejectionError({"message": error.message}) from None
        if isinstance(context.request, WebSocket):
            # Authenticated: messages may now be as large as an HTTP request's body.
            lift_max_size(context.request.scope)
        return await super().on_ws_connect(context)


def _not_served(operation: OperationType, method: str) -> RequestRefused:
    if operation is OperationType.SUBSCRIPTION:
        return RequestRefused(
            400, "subscriptions are served over WebSocket at /graphql (graphql-transport-ws)"
        )
    # GraphQL over HTTP: a mutation over GET is 405, and POST is the method that runs it.
    return RequestRefused(
        405, f"{operation.value}s are not run over {method}: use POST", {"Allow": "POST"}
    )


def build_services(settings: Settings) -> Services:
    registry = PluginRegistry()
    discover_builtins(registry)
    discover_entry_points(registry)
    box = SecretBox(settings.secret_key)
    installer = Installer(box)
    # One address policy for every outgoing request: archives, repositories, plugins.
    network = settings.address_policy()
    # Code installed from repositories while running lives in <data-dir>/plugins/<name>/<version>.
    code = PluginCode(registry, settings.data_dir / "plugins", fetcher=UrlFetcher(network), box=box)
    installer.load_code_with(code)
    host = PluginHost(
        registry,
        Hub(settings.broadcast_url, fast_paths=settings.fast_paths),
        installer,
        HostSettings(
            max_attempts=settings.delivery_max_attempts,
            backoff_base=settings.delivery_backoff_base,
            default_concurrency=settings.workers_dispatch,
            replica=f"{socket.gethostname()}:{os.getpid()}",
            fast_paths=settings.fast_paths,
        ),
        code=code,
        network=network,
    )
    installer.apply_changes_with(host.apply_change)
    return Services(
        settings=settings,
        box=box,
        tokens=TokenIssuer(settings.jwt_secret),
        installer=installer,
        views=ViewCounter(),
        host=host,
    )


READY_PROBE_CHANNEL = "streamspace.readyz"
READY_PROBE_TIMEOUT = 5.0


async def probe_broadcast(hub: Hub) -> None:
    """Raise unless the broadcast link is up and takes a message (a dead Redis refuses it)."""
    if not hub.link_up:
        raise ConnectionError("the broadcast link is down; reconnecting")
    async with asyncio.timeout(READY_PROBE_TIMEOUT):
        if not await hub.publish(READY_PROBE_CHANNEL, {"probe": True}):
            raise ConnectionError("the broadcast backend refused a message")


def create_app(settings: Settings) -> Starlette:
    services = build_services(settings)
    state: dict[str, str | None] = {"not_ready": "starting"}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Whatever started is stopped again, in reverse order, also when a later step fails.
        async with AsyncExitStack() as stack:
            create_private_dir(settings.data_dir)
            applied = await migrate_database(settings.database_url, secret_key=settings.secret_key)
            for name in applied:
                log.info("migration applied", extra={"migration": name})
            await init_database(settings.database_url)
            stack.push_async_callback(close_database)
            await ensure_builtin_repository()
            host = services.host
            await host.hub.connect()
            stack.push_async_callback(host.hub.disconnect)
            await publish_builtins(host.registry)
            await host.start()
            stack.push_async_callback(host.stop)
            retention = Retention(timedelta(days=settings.retention_days))
            retention.start()
            stack.push_async_callback(retention.stop)
            services.views.start()
            stack.push_async_callback(services.views.stop)
            state["not_ready"] = None
            log.info(
                "ready",
                extra={
                    "database": dialect(settings.database_url),
                    "fast_paths": "on" if settings.fast_paths else "off",
                },
            )
            try:
                yield
            finally:
                state["not_ready"] = "shutting down"

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def readiness(status: str, reason: str | None = None) -> Response:
        # Which way requests take shows with every answer: the fast paths, or the libraries'.
        body = {"status": status, "fastPaths": settings.fast_paths}
        if reason is None:
            return JSONResponse(body)
        return JSONResponse({**body, "reason": reason}, 503)

    async def readyz(request: Request) -> Response:
        if state["not_ready"]:
            return readiness("unready", state["not_ready"])
        try:
            await ping_database()
        except Exception as error:  # the reason is the point of this endpoint
            return readiness("unready", f"database: {error}")
        try:
            await probe_broadcast(services.host.hub)
        except Exception as error:
            return readiness("unready", f"broadcast: {error or type(error).__name__}")
        return readiness("ready")

    async def metrics(request: Request) -> Response:
        host = services.host
        try:
            body = await host.metrics.render(host.live_figures)
        except Exception:  # the database went away: still answer with what this process knows
            log.warning("metrics without queue figures", exc_info=True)
            body = generate_latest(host.metrics.registry)
        return Response(body, media_type=METRICS_CONTENT_TYPE)

    graphql = GraphQLApp(services)
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            # Every method reaches the view: it answers those it does not serve in JSON.
            Route("/graphql", graphql),
            Route(ASSET_PREFIX + "/{name}", serve_asset, methods=["GET", "HEAD"]),
            WebSocketRoute("/graphql", graphql),
            Mount(
                "/plugins",
                app=PluginRoutes(services.host.router_of, services.tokens.verify),
                max_body_size=settings.max_body_bytes,
            ),
        ],
        lifespan=lifespan,
        # uvicorn waits for a body without limit; the headers' limit is in serve's protocol.
        middleware=[Middleware(BodyDeadline, seconds=settings.body_timeout)],
    )
    app.state.services = services
    return app
