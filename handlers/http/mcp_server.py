"""The hub as an MCP server: its tools (mcp_tools.py), its knowledge documents and backtest
reports as resources, and the pre_trade_check prompt. One server for both transports.

Resources are files the hub keeps on disk (knowledge/ and logs/), so they read the same with
or without a running hub; everything else goes through the REST API (mcp_api.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import (
    ResourceError,
    ResourceNotFoundError,
    ToolError,
)
from mcp_types import Resource

from core.errors import BadRequest
from core.knowledge import DOMAINS
from core.settings import Settings
from handlers.http.mcp_api import HubApi
from handlers.http.mcp_tools import HubTools, clip
from storage.rag.files import Unreadable, read_file, safe_source, walk
from storage.reports import report_ids, report_path

MAX_REPORT_BYTES = 2_000_000  # beyond this a report would swamp a context: get_backtest summarizes
LISTED_REPORTS = 100
INSTRUCTIONS = ("Trade Hub: research knowledge, the record and calibration of trading agents, "
                "and backtests. Ground a decision with search_knowledge and recall_decisions, "
                "check confidence_calibration before trusting your confidence, and record every "
                "trade you make with record_trade.")


class HubServer(MCPServer):
    """MCPServer whose resource list is the knowledge folder and the reports, as they are now."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("trade-hub", instructions=INSTRUCTIONS)
        self.knowledge_dir, self.logs_dir = settings.knowledge_dir, settings.logs_dir

    async def list_resources(self) -> list[Resource]:
        """Every knowledge document, and the latest backtest reports."""
        listed = await asyncio.to_thread(self._files)
        return [*await super().list_resources(), *listed]

    def _files(self) -> list[Resource]:
        documents = [Resource(uri=f"knowledge://{source}", name=source, mime_type="text/markdown")
                     for domain in DOMAINS for source in walk(self.knowledge_dir, domain)[0]]
        reports = [Resource(uri=f"backtest://{i}", name=f"backtest {i}", mime_type="application/json",
                            description=f"the JSON report of backtest {i}")
                   for i in reversed(report_ids(self.logs_dir)[-LISTED_REPORTS:])]
        return documents + reports

    def read_knowledge(self, domain: str, path: str) -> str:
        """A knowledge document's text."""
        try:
            source = safe_source(self.knowledge_dir, f"{domain}/{path}")
            return read_file(self.knowledge_dir / source).text
        except BadRequest as error:
            raise ResourceError(str(error)) from None
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ResourceNotFoundError(f"no knowledge document {domain}/{path}") from None
        except Unreadable as error:
            raise ResourceError(f"{domain}/{path}: {error}") from None

    def read_report(self, id: str) -> str:
        """A backtest's JSON report, as the hub wrote it."""
        path = report_path(self.logs_dir, int(id)) if id.isdigit() else Path("/nonexistent")
        if not path.is_file():
            raise ResourceNotFoundError(f"no report for backtest {id}")
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise ResourceError(f"backtest {id}'s report is over {MAX_REPORT_BYTES:,} bytes: use the "
                                "get_backtest tool for its metrics, trade summary and curve")
        return path.read_text(encoding="utf-8")


async def _section(title: str, answer: Awaitable[str]) -> str:
    try:
        return f"## {title}\n{await answer}"
    except ToolError as error:
        return f"## {title}\nunavailable: {error}"


class PreTradeCheck:
    """The pre_trade_check prompt: knowledge, similar decisions and calibration, in one message."""

    def __init__(self, tools: HubTools) -> None:
        self.tools = tools

    async def pre_trade_check(self, asset: str, action: str, reasoning: str, confidence: str,
                              source: str | None = None) -> str:
        """Before a trade: the relevant research, your similar past decisions and how well your confidence has predicted outcomes."""
        parts = await asyncio.gather(
            _section("Relevant knowledge", self._knowledge(reasoning)),
            _section("Similar past decisions", self._recall(reasoning, asset, source)),
            _section("Your confidence calibration", self._calibration(source)))
        return (f"I am about to {action.upper()} {asset.upper()} with confidence {confidence}/100 "
                f"because: {reasoning}\n\nWeigh this before I trade: does the evidence below "
                "support the decision and that confidence?\n\n" + "\n\n".join(parts))

    async def _knowledge(self, reasoning: str) -> str:
        found = await self.tools.search_knowledge(clip(reasoning, 1000), None, 3)
        return "\n".join(f"- {h['source']} — {h['heading']}: {clip(h['text'], 500)}"
                         for h in found["results"]) or "nothing relevant found"

    async def _recall(self, reasoning: str, asset: str, source: str | None) -> str:
        found = await self.tools.recall_decisions(reasoning, asset, source, None, 5)
        lines = [f"summary: {found['summary']}"]
        lines += [f"- {t['kind']} {t['timestamp']} {t['action']} {t['asset']} @ {t['price']}, confidence "
                  f"{t['confidence']}, outcome {t['outcome']}: {clip(t['reasoning'], 200)}"
                  for t in found["results"]]
        return "\n".join(lines)

    async def _calibration(self, source: str | None) -> str:
        found = await self.tools.confidence_calibration(source)
        return f"{found['verdict']} (closed decisions: {found['n']}, pending: {found['pending']})"


def build_server(api: HubApi, settings: Settings) -> HubServer:
    """The MCP server: every tool over API, the resources, the prompt."""
    server = HubServer(settings)
    tools = HubTools(api)
    tools.register(server)
    server.resource("knowledge://{domain}/{+path}", name="knowledge document", mime_type="text/markdown",
                    description="a document of the knowledge base, e.g. knowledge://technical/rsi.md"
                    )(server.read_knowledge)
    server.resource("backtest://{id}", name="backtest report", mime_type="application/json",
                    description="a backtest's JSON report, e.g. backtest://1")(server.read_report)
    server.prompt()(PreTradeCheck(tools).pre_trade_check)
    return server

