"""What the MCP tools stand on: the running hub's REST API, and JetStream for record_trade.

Both transports use it: the stdio server reaches the hub it finds in data/hub.json, the daemon
its own port over loopback. So a tool answers what REST answers, by construction. Every failure
becomes a ToolError of one or two sentences, for the model to read and act on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import aiohttp
import orjson
from mcp.server.mcpserver.exceptions import ToolError
from nats.errors import Error as NatsError

from core.errors import HubError
from core.events import TradeExecuted

NO_HUB = "No Trade Hub is running: start it with `python main.py`, then try again."
TIMEOUT = aiohttp.ClientTimeout(total=30, connect=3)

Locate = Callable[[], str | None]  # the hub's base URL, or None when no hub runs
Publish = Callable[[TradeExecuted], Awaitable[object]]


def _query(params: dict[str, Any]) -> dict[str, str]:
    """Query parameters as REST reads them: unset ones left out, times in ISO 8601."""
    given = {k: v for k, v in params.items() if v is not None}
    return {k: v.isoformat() if isinstance(v, datetime) else str(v) for k, v in given.items()}


def refusal(status: int, body: Any) -> str:
    """The hub's 4xx/5xx answer in a sentence, naming the fields it refused."""
    if status == 401:
        return "The hub refused the request: set HUB_API_TOKEN to the hub's API token."
    if not isinstance(body, dict):
        return f"The hub answered {status}; see its log."
    details = body.get("details") or []
    if details:
        return "Invalid " + "; ".join(f"{d.get('field')}: {d.get('message')}" for d in details) + "."
    return str(body.get("message") or body.get("error") or f"The hub answered {status}.")


class HubApi:
    """The REST API of the running hub as the MCP tools call it (with the bearer token)."""

    def __init__(self, locate: Locate, token: str | None, publish: Publish,
                 writes: str | None = None) -> None:
        self.locate = locate
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.publish_event = publish
        self.writes_refused = writes  # why record_trade is off on this transport, or None
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop; kept for keep-alive between calls.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT, headers=self.headers)
        return self._session

    async def get(self, path: str, **params: Any) -> Any:
        """GET PATH with PARAMS (None values left out): the JSON answer, or a ToolError."""
        return await self._call("GET", path, params=_query(params))

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST BODY as JSON to PATH: the JSON answer, or a ToolError."""
        return await self._call("POST", path, data=orjson.dumps(body),
                                headers={"Content-Type": "application/json"})

    async def _call(self, method: str, path: str, **options: Any) -> Any:
        base = self.locate()
        if base is None:
            raise ToolError(NO_HUB)
        try:
            async with self._client().request(method, base + path, **options) as response:
                raw = await response.read()
                status = response.status
        except aiohttp.ClientConnectionError:
            raise ToolError(f"The Trade Hub at {base} does not answer: start it with "
                            "`python main.py`, then try again.") from None
        except TimeoutError:
            raise ToolError(f"The Trade Hub at {base} did not answer {path} in time.") from None
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:  # not the hub: a proxy's error page, say
            raise ToolError(f"{base}{path} answered {status} with something other than JSON: "
                            "is HUB_HTTP_PORT the hub's?") from None
        if status >= 400:
            raise ToolError(refusal(status, body))
        return body

    async def publish(self, trade: TradeExecuted) -> bool:
        """Publish TRADE through JetStream; whether the stream had it already (a retry)."""
        if self.writes_refused:
            raise ToolError(self.writes_refused)
        try:
            ack = await self.publish_event(trade)
        except HubError as error:  # no hub, no stream, or NATS gone: its message says which
            raise ToolError(str(error)) from None
        except (TimeoutError, NatsError):
            raise ToolError("NATS did not take the trade in time: is the hub running "
                            "(`python main.py`)? Retry with the same event_id.") from None
        return bool(getattr(ack, "duplicate", False))

    async def close(self) -> None:
        """Close the HTTP connections."""
        if self._session is not None:
            await self._session.close()
