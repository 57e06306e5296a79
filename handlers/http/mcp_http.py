"""MCP over streamable HTTP at /mcp on the hub's own port, behind its bearer-token middleware.

The SDK's session manager is an ASGI app; asgi_view bridges one aiohttp request to it: the
scope from the request, the body through `receive`, and `send` streamed into a StreamResponse.
Stateless with JSON answers, so any instance behind a load balancer can answer any request.
The tools call this same daemon's REST API over loopback, as the stdio server calls it.

The SDK takes about half a second to import, so it is imported in a thread once the daemon
runs (readiness does not wait for it, as for the embedding model) and never by the other
`main.py` subcommands, which all import this module. /mcp answers 503 until it is loaded.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bus.publish import HubPublisher
from core.settings import Settings
from handlers.http.keys import NATS, SETTINGS
from handlers.http.responses import error_response

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings

    from handlers.http.mcp_api import HubApi

log = logging.getLogger(__name__)


@dataclass
class McpEndpoint:
    """The session manager behind /mcp, once the SDK is loaded (None until then)."""

    manager: StreamableHTTPSessionManager | None = None
    failed: bool = False  # it could not start: the hub's log says why


MCP_PATH = "/mcp"
MCP_ENDPOINT = web.AppKey("mcp_endpoint", McpEndpoint)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
NO_TOKEN = ("record_trade over HTTP needs the hub to require an API token: set HUB_API_TOKEN "
            "(or record trades through the stdio server, `python main.py mcp`)")


def _security(settings: Settings) -> TransportSecuritySettings | None:
    # A hub on loopback refuses other Host and Origin headers (DNS rebinding), as the SDK does.
    from mcp.server.transport_security import TransportSecuritySettings

    if settings.http_host not in LOOPBACK:
        return None
    return TransportSecuritySettings(
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])


def _loopback_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "", "::") else settings.http_host
    return f"http://{host}:{settings.http_port}"


async def mcp_ctx(app: web.Application) -> AsyncIterator[None]:
    """The MCP server and its session manager, loaded and run in a task of their own (anyio's
    task group must be entered and left in one task)."""
    endpoint, stopping = McpEndpoint(), asyncio.Event()
    app[MCP_ENDPOINT] = endpoint
    task = asyncio.create_task(_serve(app, endpoint, stopping), name="mcp-http")
    yield
    stopping.set()
    await asyncio.gather(task, return_exceptions=True)  # _serve logged any failure


async def _serve(app: web.Application, endpoint: McpEndpoint, stopping: asyncio.Event) -> None:
    try:
        await asyncio.to_thread(importlib.import_module, "handlers.http.mcp_server")  # the SDK
        await _run_endpoint(app, endpoint, stopping)
    except Exception:  # the hub runs on without MCP over HTTP; /mcp answers 503
        endpoint.failed = True
        log.exception("MCP over HTTP is unavailable")
        raise


async def _run_endpoint(app: web.Application, endpoint: McpEndpoint, stopping: asyncio.Event) -> None:
    from handlers.http.mcp_server import build_server  # loaded by _serve

    api = _api(app)
    try:
        server = build_server(api, app[SETTINGS])
        server.streamable_http_app(stateless_http=True, json_response=True,
                                   transport_security=_security(app[SETTINGS]))  # the manager
        async with server.session_manager.run():
            endpoint.manager = server.session_manager
            await stopping.wait()
            endpoint.manager = None
    finally:
        await api.close()


def _api(app: web.Application) -> HubApi:
    from handlers.http.mcp_api import HubApi

    settings = app[SETTINGS]
    token = settings.api_token.get_secret_value() if settings.api_token else None
    url = _loopback_url(settings)
    return HubApi(lambda: url, token, HubPublisher(app[NATS]).publish,
                  writes=None if token else NO_TOKEN)


def _scope(request: web.Request) -> dict[str, Any]:
    host, port = (request.transport.get_extra_info("sockname") or ("", 0))[:2] if request.transport else ("", 0)
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": request.method, "scheme": request.scheme, "path": request.path,
            "raw_path": request.raw_path.split("?")[0].encode(), "root_path": "",
            "query_string": request.query_string.encode(), "server": (host, port),
            "client": (request.remote or "", 0),
            "headers": [(k.lower(), v) for k, v in request.raw_headers]}


async def asgi_view(request: web.Request) -> web.StreamResponse:
    """GET, POST and DELETE /mcp: the request handed to the SDK's ASGI app, its answer streamed."""
    manager = request.app[MCP_ENDPOINT].manager
    if manager is None:
        if request.app[MCP_ENDPOINT].failed:
            return error_response(503, "unavailable", "MCP over HTTP failed to start; see the hub's log")
        starting = error_response(503, "starting", "the MCP server is starting; try again in a second")
        starting.headers["Retry-After"] = "1"
        return starting
    return await _bridge(request, manager)


async def _bridge(request: web.Request, manager: StreamableHTTPSessionManager) -> web.StreamResponse:
    body, answered = await request.read(), asyncio.Event()
    response: web.StreamResponse | None = None
    sent_body = False

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()  # nothing more will come: the client is done once we answer
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal response
        if message["type"] == "http.response.start":
            response = web.StreamResponse(status=message["status"])
            for name, value in message.get("headers", []):
                response.headers.add(name.decode("latin-1"), value.decode("latin-1"))
            await response.prepare(request)
        elif message["type"] == "http.response.body" and response is not None:
            await response.write(message.get("body", b""))
            if not message.get("more_body", False):
                await response.write_eof()

    try:
        await manager.handle_request(_scope(request), receive, send)
    finally:
        answered.set()
    return response if response is not None else web.Response(status=500)


def add_mcp(app: web.Application) -> None:
    """Serve MCP at /mcp (after the resources it needs: NATS for record_trade)."""
    app.cleanup_ctx.append(mcp_ctx)
    app.router.add_route("*", MCP_PATH, asgi_view)
