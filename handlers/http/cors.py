"""CORS, off unless HUB_CORS_ORIGINS lists the origins a browser may call the API from."""

from __future__ import annotations

import aiohttp_cors
from aiohttp import web


def enable_cors(app: web.Application, origins: list[str]) -> None:
    """Allow ORIGINS to call every route, with the Authorization header (after add_routes)."""
    options = aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
        allow_headers=("Authorization", "Content-Type"), expose_headers="*", max_age=3600)
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in origins})
    for route in list(app.router.routes()):
        if route.method != "*":  # /mcp: for MCP clients, not pages; it checks Origin itself
            cors.add(route)


def origin_allowed(request: web.Request, origins: list[str]) -> bool:
    """Whether a WebSocket from this page may connect: same-origin, or one CORS allows."""
    origin = request.headers.get("Origin")
    return not origins or origin is None or origin in origins
