"""REST views of live outcomes: performance, positions, PnL over time, calibration, and a
strategy's backtest beside its live trading."""

from __future__ import annotations

from aiohttp import web

from core.performance import (
    BacktestCalibrationQuery, CalibrationQuery, GroupFilter, PerformanceQuery, PnlQuery,
    StrategyQuery,
)
from handlers.events import outcome_questions as answers
from handlers.http.keys import SESSIONS
from handlers.http.responses import json_response, parse_query, path_id


async def get_performance(request: web.Request) -> web.Response:
    """GET /api/performance: realized performance per group."""
    query = parse_query(PerformanceQuery, request)
    return json_response(await answers.answer_performance(request.app[SESSIONS], query))


async def get_positions(request: web.Request) -> web.Response:
    """GET /api/positions: open lots per group."""
    query = parse_query(GroupFilter, request)
    return json_response(await answers.answer_positions(request.app[SESSIONS], query))


async def get_pnl_series(request: web.Request) -> web.Response:
    """GET /api/performance/pnl: cumulative realized PnL per interval."""
    query = parse_query(PnlQuery, request)
    return json_response(await answers.answer_pnl(request.app[SESSIONS], query))


async def get_calibration(request: web.Request) -> web.Response:
    """GET /api/calibration: does confidence predict the outcome?"""
    query = parse_query(CalibrationQuery, request)
    return json_response(await answers.answer_calibration(request.app[SESSIONS], query))


async def get_backtest_calibration(request: web.Request) -> web.Response:
    """GET /api/backtests/{id}/calibration: the same question of a backtest's trade log."""
    backtest_id = path_id(request, "backtest")
    query = parse_query(BacktestCalibrationQuery, request)
    return json_response(await answers.answer_backtest_calibration(request.app[SESSIONS], backtest_id, query))


async def get_strategy(request: web.Request) -> web.Response:
    """GET /api/strategies/{name}: backtest against live for one strategy."""
    query = parse_query(StrategyQuery, request)
    name = request.match_info["name"]
    return json_response(await answers.answer_strategy(request.app[SESSIONS], name, query))
