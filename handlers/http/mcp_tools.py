"""The hub's MCP tools: a typed layer over its REST API, with compact answers and hard caps,
so that a tool call never floods a model's context window."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field, ValidationError

from core.api import BacktestSort
from core.events import (
    Action,
    Amount,
    Asset,
    Confidence,
    EventId,
    Name,
    Price,
    TradeExecuted,
    UtcDatetime,
)
from core.knowledge import Domain
from handlers.http.mcp_api import HubApi

MAX_RESULTS, MAX_ROWS, CURVE_POINTS, STORE_WAIT = 20, 100, 200, 3.0
Sort = Annotated[BacktestSort, Field(description="created: newest first; sharpe, total_return, "
                                                  "max_drawdown (<= 0): best first")]
Reasoning = Annotated[str, Field(min_length=1, max_length=20_000,
                                 description="the reasoning of the decision, in the agent's words")]
Source = Annotated[Name | None, Field(description="the agent (bot) name; unset: every agent")]
Strategy = Annotated[Name | None, Field(description="strategy name; unset: every strategy")]
AssetFilter = Annotated[Asset | None, Field(description="ticker, e.g. BTC; unset: every asset")]
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                         open_world_hint=False)  # idempotent: on its event_id
TRADE_KEYS = ("id", "timestamp", "asset", "action", "price", "quantity", "fee", "confidence",
              "source", "strategy", "outcome")


def clip(text: str | None, limit: int) -> str:
    """TEXT cut to LIMIT characters, marked when cut."""
    text = text or ""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def compact_trade(trade: dict[str, Any], reasoning: int = 400) -> dict[str, Any]:
    """A stored trade without its event_id, with its reasoning clipped."""
    return {**{k: trade.get(k) for k in TRADE_KEYS}, "reasoning": clip(trade.get("reasoning"), reasoning)}


def trade_summary(log: list[dict[str, Any]]) -> dict[str, Any]:
    """A backtest's trade log in numbers, and its last ten trades."""
    pnls = [t["pnl"] for t in log if t.get("pnl") is not None]
    wins = sum(1 for pnl in pnls if pnl > 0)
    return {"trades": len(log), "exits": len(pnls), "wins": wins, "losses": len(pnls) - wins,
            "realized_pnl": sum(pnls), "fees": sum(t.get("fee") or 0 for t in log),
            "last_trades": [{**compact_trade(t, 200), "pnl": t.get("pnl")} for t in log[-10:]]}


class HubTools:
    """Every tool, each a method over one HubApi (the same code for stdio and HTTP)."""

    def __init__(self, api: HubApi) -> None:
        self.api = api

    def register(self, server: MCPServer) -> None:
        """Add every tool to SERVER; hosts may run the read-only ones without asking."""
        for tool in (self.search_knowledge, self.recall_decisions, self.agent_performance,
                     self.open_positions, self.confidence_calibration, self.recent_trades,
                     self.get_trade, self.list_backtests, self.get_backtest):
            server.add_tool(tool, annotations=READ_ONLY)
        server.add_tool(self.record_trade, annotations=WRITES)

    async def search_knowledge(
        self, query: Annotated[str, Field(min_length=1, max_length=1000, description="what to look for")],
        domain: Annotated[Domain | None, Field(description="one domain only; unset: all")] = None,
        k: Annotated[int, Field(ge=1, le=MAX_RESULTS, description="how many chunks")] = 5,
    ) -> dict[str, Any]:
        """Search the research knowledge base (technical, sentiment, fundamental, risk, papers): ranked chunks with their source file and heading."""
        found = await self.api.get("/api/knowledge/search", q=query, domain=domain, k=k)
        return {"results": [{"source": h["source"], "heading": h["heading"], "score": round(h["score"], 4),
                             "text": clip(h["text"], 1500)} for h in found["results"]]}

    async def recall_decisions(
        self, reasoning: Reasoning, asset: AssetFilter = None, source: Source = None,
        strategy: Strategy = None,
        k: Annotated[int, Field(ge=1, le=MAX_RESULTS, description="how many decisions")] = 5,
    ) -> dict[str, Any]:
        """Past trading decisions (live and backtested) whose reasoning is most like this one, with what each realized, and a summary (win rate, mean PnL)."""
        body = {"reasoning": reasoning, "asset": asset, "source": source, "strategy": strategy, "k": k}
        found = await self.api.post("/api/trades/recall", body)
        results = [{**compact_trade(t), "score": round(t["score"], 4), "kind": t.get("kind"),
                    "backtest_id": t.get("backtest_id")} for t in found["results"][:MAX_RESULTS]]
        # index: how far decision memory is behind the stored trades (recent ones may be missing)
        return {"results": results, "summary": found["summary"], "index": found.get("index")}

    async def agent_performance(
        self, source: Source = None, strategy: Strategy = None, asset: AssetFilter = None,
        since: Annotated[UtcDatetime | None, Field(description="ISO 8601: exits at or after it")] = None,
    ) -> dict[str, Any]:
        """Realized live performance per (agent, strategy): exits, realized PnL, fees, win rate, profit factor, expectancy, open positions."""
        page = await self.api.get("/api/performance", source=source, strategy=strategy, asset=asset, since=since)
        return {"groups": page["groups"][:MAX_ROWS], "total_groups": len(page["groups"])}

    async def open_positions(self, source: Source = None, strategy: Strategy = None) -> dict[str, Any]:
        """Open positions per (agent, strategy, asset): side, quantity, average entry price, when opened."""
        page = await self.api.get("/api/positions", source=source, strategy=strategy)
        return {"positions": page["positions"][:MAX_ROWS], "total_positions": len(page["positions"])}

    async def confidence_calibration(
        self, source: Source = None, strategy: Strategy = None, asset: AssetFilter = None,
    ) -> dict[str, Any]:
        """Does the agent's confidence predict its wins? A verdict sentence, Spearman's rho with p-value, Brier score, win rate per confidence bin."""
        found: dict[str, Any] = await self.api.get("/api/calibration", source=source, strategy=strategy, asset=asset)
        return {"verdict": found["verdict"], **found}

    async def recent_trades(
        self, asset: AssetFilter = None, source: Source = None, strategy: Strategy = None,
        limit: Annotated[int, Field(ge=1, le=50, description="how many, newest first")] = 10,
    ) -> dict[str, Any]:
        """The latest live trades, newest first, each with its outcome and clipped reasoning."""
        page = await self.api.get("/api/trades", asset=asset, source=source, strategy=strategy, limit=limit)
        return {"trades": [compact_trade(t) for t in page["trades"]]}

    async def get_trade(self, id: Annotated[int, Field(ge=1, le=2**63 - 1, description="the trade's id")]) -> dict[str, Any]:
        """One stored trade in full: its reasoning, confidence and outcome."""
        trade: dict[str, Any] = await self.api.get(f"/api/trades/{id}")
        return trade

    async def list_backtests(
        self, strategy: Strategy = None, sort: Sort = "created",
        limit: Annotated[int, Field(ge=1, le=50, description="how many")] = 10,
    ) -> dict[str, Any]:
        """Backtest summaries: strategy, period, total return, Sharpe, max drawdown, trade count."""
        page: dict[str, Any] = await self.api.get("/api/backtests", strategy=strategy, sort=sort,
                                                  order="desc", limit=limit)
        return page

    async def get_backtest(self, id: Annotated[int, Field(ge=1, le=2**63 - 1, description="the backtest's id")]) -> dict[str, Any]:
        """One backtest: metrics with their conventions, a trade summary, and its equity curve downsampled to about 200 points."""
        doc = await self.api.get(f"/api/backtests/{id}", points=CURVE_POINTS)
        log = doc.pop("trade_log")
        return {**doc, "open_positions": doc["open_positions"][:MAX_ROWS], "trade_summary": trade_summary(log)}

    async def record_trade(
        self, asset: Asset, action: Action, price: Price, quantity: Price, confidence: Confidence,
        reasoning: Reasoning, source: Annotated[Name, Field(description="your agent's name")] = "mcp",
        strategy: Name | None = None, fee: Amount = 0.0,
        event_id: Annotated[EventId | None, Field(description="your unique id; a retry with it stores nothing twice; default: a new UUID")] = None,
    ) -> dict[str, Any]:
        """Record a trade you executed, with its reasoning and 0-100 confidence; returns its event_id and, once stored, its trade id."""
        fields = {"asset": asset, "action": action, "price": price, "quantity": quantity, "fee": fee,
                  "confidence": confidence, "reasoning": reasoning, "source": source,
                  "strategy": strategy, "event_id": event_id or f"mcp-{uuid.uuid4()}"}
        try:
            trade = TradeExecuted.model_validate(fields)
        except ValidationError as error:
            raise ToolError("Invalid " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                   for e in error.errors())) from None
        duplicate = await self.api.publish(trade)
        return {"event_id": trade.event_id, "trade_id": await self._stored_id(trade),
                "duplicate": duplicate}

    async def _stored_id(self, trade: TradeExecuted) -> int | None:
        # The hub stores in batches: poll REST for the event_id, a few seconds at most. A retry's
        # row has the first call's time, so look among the agent's latest trades of the asset.
        deadline = time.monotonic() + STORE_WAIT
        while True:
            page = await self.api.get("/api/trades", asset=trade.asset, source=trade.source,
                                      strategy=trade.strategy, limit=200)
            ids = [t["id"] for t in page["trades"] if t["event_id"] == trade.event_id]
            if ids or time.monotonic() > deadline:
                return ids[0] if ids else None
            await asyncio.sleep(0.05)
