"""REST views of backtests: summaries, the full detail with its curve, the report file."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson
from aiohttp import web
from numpy.typing import NDArray

from core.api import BacktestPage, BacktestQuery, BacktestSummary, CurveQuery
from core.downsample import minmax_indices
from core.errors import NotFound
from handlers.http.responses import json_response, parse_query, path_id
from handlers.http.keys import SESSIONS, SETTINGS
from storage.sql.backtest_rows import get_backtest, get_backtest_data, list_backtests
from storage.sql.models import Backtest
from storage.reports import report_path

NUMPY_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


async def get_backtests(request: web.Request) -> web.Response:
    """GET /api/backtests: summaries, filtered, sorted and paginated."""
    query = parse_query(BacktestQuery, request)
    async with request.app[SESSIONS]() as session:
        rows, total = await list_backtests(session, query)
    summaries = [BacktestSummary.model_validate(row, from_attributes=True) for row in rows]
    return json_response(BacktestPage(backtests=summaries, total=total))


async def get_backtest_detail(request: web.Request) -> web.Response:
    """GET /api/backtests/{id}: metrics with conventions, curve (?points=N), trade log."""
    backtest_id = path_id(request, "backtest")
    points = parse_query(CurveQuery, request).points
    async with request.app[SESSIONS]() as session:
        backtest = await get_backtest(session, backtest_id)
        if backtest is None:
            raise NotFound(f"no backtest with id {backtest_id}")
        curve, trade_log = await get_backtest_data(session, backtest_id)
    body = await asyncio.to_thread(detail_json, backtest, trade_log, curve, points)
    return web.Response(body=body, content_type="application/json")


async def get_backtest_report(request: web.Request) -> web.FileResponse:
    """GET /api/backtests/{id}/report: the JSON file in logs/, as written."""
    path = report_path(request.app[SETTINGS].logs_dir, path_id(request, "backtest"))
    if not path.is_file():
        raise NotFound(f"no report for backtest {request.match_info['id']} (yet)")
    return web.FileResponse(path, headers={"Content-Type": "application/json"})


def _curve_document(curve: NDArray[np.float64], points: int | None) -> dict[str, Any]:
    stored = curve.shape[1]
    if points is not None and points < stored:
        curve = curve[:, minmax_indices(curve[1], points)]
    column = np.ascontiguousarray  # orjson serializes only C-contiguous arrays
    return {
        "timestamp": column((curve[0] * 1e6).astype("datetime64[us]")),
        "value": column(curve[1]),
        "benchmark": column(curve[2]),
        "points": stored,
        "downsampled": curve.shape[1] < stored,
    }


def detail_json(
    backtest: Backtest, trade_log: bytes, curve: NDArray[np.float64], points: int | None
) -> bytes:
    """The BacktestDetail document as JSON (built off the event loop: it can be megabytes)."""
    summary = BacktestSummary.model_validate(backtest, from_attributes=True).model_dump()
    analysis = backtest.metrics
    document = {
        **summary,
        "parameters": backtest.parameters,
        "benchmark": backtest.benchmark,
        "metrics": analysis["metrics"],
        "metric_reasons": analysis["reasons"],
        "max_drawdown_detail": analysis["max_drawdown_detail"],
        "conventions": analysis["conventions"],
        "runner": backtest.runner,
        "open_positions": backtest.open_positions,
        "equity_curve": _curve_document(curve, points),
        "trade_log": orjson.Fragment(trade_log),  # stored as JSON when the backtest was
    }
    return orjson.dumps(document, option=NUMPY_JSON)
