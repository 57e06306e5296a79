"""`python main.py mcp`: the hub's MCP server over stdio, the way MCP hosts launch servers.

It answers from the running hub found in data/hub.json (as every subcommand finds it), so it
starts in about a second whether or not a hub runs, and a hub started later is found on the
next tool call. stdout carries the protocol only; logs go to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from nats.js.api import PubAck
from pydantic import ValidationError

from bus.publish import HubPublisher
from core.daemon_state import read_state
from core.events import TradeExecuted
from core.settings import Settings
from handlers.cli.options import describe_options
from handlers.http.mcp_api import HubApi
from handlers.http.mcp_server import build_server

ENVIRONMENT = {name: f"HUB_{name.upper()}" for name in Settings.model_fields}


class LazyPublisher:
    """Connects to the hub's NATS on the first record_trade, and keeps the connection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.publisher: HubPublisher | None = None

    async def __call__(self, trade: TradeExecuted) -> PubAck:
        if self.publisher is None:
            self.publisher = await HubPublisher.connect(self.settings, "hub-mcp")
        return await self.publisher.publish(trade, timeout=5)

    async def close(self) -> None:
        """Drain the connection, if one was made."""
        if self.publisher is not None:
            await self.publisher.close()


def hub_http_url(settings: Settings) -> str | None:
    """The running hub's HTTP URL from its state file; None when no hub runs."""
    state = read_state(settings.state_file)
    return str(state["http_url"]) if state and state.get("http_url") else None


async def serve_stdio(settings: Settings) -> None:
    """Serve MCP on stdin/stdout until the host closes stdin."""
    token = settings.api_token.get_secret_value() if settings.api_token else None
    publisher = LazyPublisher(settings)
    api = HubApi(lambda: hub_http_url(settings), token, publisher)
    try:
        await build_server(api, settings).run_stdio_async()
    finally:
        await api.close()
        await publisher.close()


def _run(settings: Settings) -> None:
    try:
        import uvloop  # the event loop main.py runs every command on
    except ImportError:
        asyncio.run(serve_stdio(settings))
    else:
        uvloop.run(serve_stdio(settings))


def main() -> int:
    """`python main.py mcp` without the daemon's imports: settings, logging to stderr, serve."""
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"error: {describe_options(error, flags=ENVIRONMENT)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        _run(settings)
    except KeyboardInterrupt:  # the host stopping us is no error
        pass
    return 0
