"""API token check: with HUB_API_TOKEN set, the API and the WebSocket require it."""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from core.errors import Unauthorized

OPEN_PATHS = {"/api/health"}


def _presented(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer "):].strip()
    if request.path == "/ws":  # browsers cannot set headers on a WebSocket
        return request.query.get("token")
    return None


def _guarded(path: str) -> bool:
    return (path.startswith("/api/") or path in ("/ws", "/mcp")) and path not in OPEN_PATHS


def require_token(token: str) -> Middleware:
    """Middleware answering 401 to API and WebSocket requests without TOKEN."""
    expected = token.encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _guarded(request.path):
            given = _presented(request)
            # compare_digest takes as long whatever matches, so the token cannot be timed out.
            if given is None or not hmac.compare_digest(given.encode(), expected):
                raise Unauthorized("this hub needs its API token: Authorization: Bearer <token> "
                                   "(WebSocket: /ws?token=<token>)")
        return await handler(request)

    return check
