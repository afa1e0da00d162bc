"""GraphiQL served from this server: no CDN, so it works on a machine without internet.

The browser files are vendored from npm under graph/static/graphiql/ (ASSETS.json names each
file's package, version, licence and sha384); the page references them with integrity
attributes, so a changed file is refused by the browser.

Example:
    >>> 'integrity="sha384-' in graphiql_html()
    True
"""

from __future__ import annotations

import functools
import html
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, Response

STATIC = Path(__file__).parent / "static"
ASSET_DIR = STATIC / "graphiql"
ASSET_PREFIX = "/graphiql-assets"
# Load order matters: React before ReactDOM before GraphiQL before the explorer.
SCRIPTS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "plugin-explorer.umd.js",
)
STYLES = ("graphiql.min.css", "plugin-explorer.css")
_MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@functools.cache
def assets() -> dict[str, dict[str, Any]]:
    """ASSETS.json's `files`: name → package, version, licence, integrity."""
    files: dict[str, dict[str, Any]] = orjson.loads((ASSET_DIR / "ASSETS.json").read_bytes())[
        "files"
    ]
    return files


def _checked(integrity: str) -> str:
    return f'integrity="{integrity}" crossorigin="anonymous"'


def _tag(name: str) -> str:
    src = html.escape(f"{ASSET_PREFIX}/{name}")
    integrity = html.escape(assets()[name]["integrity"])
    if name.endswith(".css"):
        return f'<link rel="stylesheet" href="{src}" {_checked(integrity)} />'
    return f'<script src="{src}" {_checked(integrity)}></script>'


@functools.cache
def graphiql_html() -> str:
    page = (STATIC / "graphiql.html").read_text()
    page = page.replace("{{STYLES}}", "\n    ".join(_tag(name) for name in STYLES))
    return page.replace("{{SCRIPTS}}", "\n    ".join(_tag(name) for name in SCRIPTS))


async def serve_asset(request: Request) -> Response:
    """GET /graphiql-assets/<name>: only the files ASSETS.json lists (and their licences)."""
    name = str(request.path_params["name"])
    known = assets()
    licences = {entry["licenseFile"] for entry in known.values()}
    if name not in known and name not in licences and name != "ASSETS.json":
        return Response("not found", status_code=404, media_type="text/plain")
    media = _MEDIA.get(Path(name).suffix, "text/plain; charset=utf-8")
    return FileResponse(
        ASSET_DIR / name,
        media_type=media,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
