"""The server of the baselines: the production app, plus two no-op endpoints.

It builds the app exactly as `streamspace-plugins serve` does (`graph.app.create_app` with
`Settings.load(...)`, the same logging and uvicorn configuration) and adds:

- `POST /noop`: a raw Starlette JSON endpoint (reads the JSON body, answers a constant);
- `POST /noop-graphql`: a separate Strawberry schema, `mutation { noop }`, with the same schema
  class and extensions as `graph.schema.build_schema` and the same view (authentication and
  context included) as `/graphql`.

The production schema is not touched.

    python -m bench.baseline_server --data-dir DIR --port 9101 [--database-url URL]
        [--broadcast-url URL]
"""

from __future__ import annotations

import argparse

import strawberry
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL

from graph.app import GraphQLApp, create_app
from graph.context import Services
from graph.logs import configure_logging
from graph.schema import Schema, schema_extensions
from runtime.core.settings import Settings


@strawberry.type
class NoopQuery:
    @strawberry.field
    def ok(self) -> bool:
        return True


@strawberry.type
class NoopMutation:
    @strawberry.mutation
    async def noop(self) -> bool:
        return True


def build_noop_schema(*, debug: bool = False) -> strawberry.Schema:
    """`mutation { noop }` behind the extensions of graph.schema.build_schema."""
    schema = Schema(
        query=NoopQuery,
        mutation=NoopMutation,
        extensions=schema_extensions(debug=debug),
    )
    schema.debug = debug
    return schema


class NoopGraphQLApp(GraphQLApp):
    """The production view (context, bearer-token authentication) over the no-op schema."""

    def __init__(self, services: Services) -> None:
        GraphQL.__init__(self, build_noop_schema(debug=services.settings.debug))
        self.services = services


async def noop(request: Request) -> Response:
    await request.json()
    return JSONResponse({"data": {"noop": True}})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url")
    parser.add_argument("--broadcast-url")
    parser.add_argument("--log-level")
    args = parser.parse_args()
    settings = Settings.load(
        data_dir=args.data_dir,
        database_url=args.database_url,
        broadcast_url=args.broadcast_url,
        host="127.0.0.1",
        port=args.port,
        log_level=args.log_level,
    )
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    services = app.state.services
    app.router.routes.insert(0, Route("/noop", noop, methods=["POST"]))
    app.router.routes.insert(
        1, Route("/noop-graphql", NoopGraphQLApp(services), methods=["GET", "POST"])
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    print(f"baseline server on http://{settings.host}:{settings.port}", flush=True)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
