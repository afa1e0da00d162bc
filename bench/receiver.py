"""The webhook receiver the benchmark points the streamspace-webhook plugin at.

Answers every POST /hook with 200 and counts it; GET /count returns {"hits": N}. Runs in its own
process so that counting deliveries costs neither the server nor the load generator CPU time.

    python -m bench.receiver --port 9100
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

HOST = "127.0.0.1"


def build_app() -> web.Application:
    hits = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        hits["n"] += 1
        return web.Response(status=200, text="ok")

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"hits": hits["n"]})

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/count", count)
    return app


async def serve(port: int) -> None:
    runner = web.AppRunner(build_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    print(f"receiver on http://{HOST}:{port}/hook", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        from uvloop import run as run_loop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        run_loop = asyncio.run
    run_loop(serve(args.port))


if __name__ == "__main__":
    main()
