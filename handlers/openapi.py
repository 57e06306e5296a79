"""The OpenAPI 3.1 document of the REST API, built from the pydantic models the views use.

One table says which model validates each endpoint's query string and which describes its
answer; parameters and components are generated from those models, so nothing is hand-kept.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from core.api import (
    BacktestDetail, BacktestPage, BacktestQuery, CurveQuery, ErrorBody, Health, TradeOut,
    TradePage, TradeQuery,
)
from core.knowledge import KnowledgeOverview, KnowledgeSearchQuery, SearchResponse


class Endpoint(NamedTuple):
    """One GET endpoint: path, summary, query model, answer model, error statuses."""

    path: str
    summary: str
    query: type[BaseModel] | None
    answer: type[BaseModel] | None  # None: any JSON object
    errors: tuple[int, ...]


ID = ("/api/trades/{id}", "/api/backtests/{id}", "/api/backtests/{id}/report")
ENDPOINTS = [
    Endpoint("/api/health", "NATS, database and consumer state", None, Health, ()),
    Endpoint("/api/trades", "Trades, newest first", TradeQuery, TradePage, (400, 401, 422)),
    Endpoint("/api/trades/{id}", "One trade", None, TradeOut, (401, 404)),
    Endpoint("/api/backtests", "Backtest summaries", BacktestQuery, BacktestPage, (400, 401, 422)),
    Endpoint("/api/backtests/{id}", "A backtest with metrics, curve and trade log", CurveQuery,
             BacktestDetail, (400, 401, 404, 422)),
    Endpoint("/api/backtests/{id}/report", "The backtest's report file", None, None, (401, 404)),
    Endpoint("/api/knowledge", "Knowledge domains with file and chunk counts", None,
             KnowledgeOverview, (401,)),
    Endpoint("/api/knowledge/search", "Hybrid search of the knowledge base",
             KnowledgeSearchQuery, SearchResponse, (400, 401, 422)),
    Endpoint("/api/schemas", "JSON Schemas of the bus events, by name", None, None, (401,)),
    Endpoint("/api/schemas/{name}", "One event's JSON Schema", None, None, (401, 404)),
]
REF = "#/components/schemas/{model}"


def _optional(schema: dict[str, Any]) -> dict[str, Any]:
    # A query parameter is absent rather than null: drop the null branch of Optional fields.
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        schema = {**{k: v for k, v in schema.items() if k != "anyOf"}, **branches[0]}
    return schema


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    if "{id}" in endpoint.path:
        parameters.append({"name": "id", "in": "path", "required": True,
                           "schema": {"type": "integer", "minimum": 0}})
    if "{name}" in endpoint.path:
        parameters.append({"name": "name", "in": "path", "required": True, "schema": {"type": "string"}})
    if endpoint.query is not None:
        schema = endpoint.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", []))
        for name, field in schema["properties"].items():
            parameters.append({"name": name, "in": "query", "required": name in required,
                               "schema": field if name in required else _optional(field)})
    return parameters


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    answer = ({"$ref": REF.format(model=endpoint.answer.__name__)} if endpoint.answer
              else {"type": "object"})
    responses = {"200": {"description": "OK", **_json(answer)}}
    for status in endpoint.errors:
        responses[str(status)] = {"description": "error", **_json({"$ref": REF.format(model="ErrorBody")})}
    return {"summary": endpoint.summary, "parameters": _parameters(endpoint), "responses": responses}


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once)."""
    models = {e.answer for e in ENDPOINTS if e.answer} | {ErrorBody}
    models |= {e.query for e in ENDPOINTS if e.query}
    _, definitions = models_json_schema(
        [(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)], ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Trade Hub", "version": "1",
                 "description": "REST API of the event backbone for AI trading agents."},
        "paths": {e.path: {"get": _operation(e)} for e in ENDPOINTS},
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                                          "description": "only when HUB_API_TOKEN is set"}},
        },
    }
