"""The dashboard: one page and its static files (scripts, styles, uPlot), served by the hub itself."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"

# The page renders bot-written text; a strict policy means that even a rendering bug could not
# run a script from it. Everything the page needs comes from the hub ('self'), nothing inline.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Revalidate the page and its modules on every load (a 304 is cheap, and a hub upgrade must
# never leave a browser running old modules against a new API); the vendored library changes
# only with a deliberate upgrade, so an hour is safe.
PAGE_CACHE = "no-cache"
VENDOR_CACHE = "public, max-age=3600"


async def get_dashboard(request: web.Request) -> web.FileResponse:
    """GET /: the dashboard page."""
    return web.FileResponse(STATIC / "index.html")


async def _set_headers(request: web.Request, response: web.StreamResponse) -> None:
    path = request.path
    if path == "/" or path.startswith("/static/"):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.status < 400:
            vendored = path.startswith("/static/vendor/")
            response.headers["Cache-Control"] = VENDOR_CACHE if vendored else PAGE_CACHE
    if path == "/":
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["Referrer-Policy"] = "no-referrer"


def add_dashboard_routes(app: web.Application) -> None:
    """Serve the dashboard at / and its files under /static/."""
    app.router.add_get("/", get_dashboard)
    app.router.add_static("/static/", STATIC)
    app.on_response_prepare.append(_set_headers)
