"""REST views about the hub itself: health, Prometheus metrics and the events' JSON Schemas."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from core.api import ComponentHealth, Health
from core.errors import NotFound
from core.events import event_schemas
from handlers.http.responses import json_response
from handlers.http.keys import (
    CONSUMERS, EMBEDDED_NATS, ENGINE, INDEXER, MEMORY, METRICS, NATS, NATS_URL, OUTCOMES, SESSIONS,
    SETTINGS, WS_HUB,
)

PROBE_TIMEOUT = 2.0


async def _database_health(app: web.Application) -> ComponentHealth:
    try:
        async with app[SESSIONS]() as session:
            await asyncio.wait_for(session.execute(text("SELECT 1")), PROBE_TIMEOUT)
    except Exception as error:
        return ComponentHealth(ok=False, detail={"error": f"{type(error).__name__}: {error}"})
    return ComponentHealth(ok=True, detail={"dialect": app[ENGINE].dialect.name})


async def _consumer_health(app: web.Application) -> dict[str, dict[str, Any]]:
    js = app[NATS].jetstream()
    report: dict[str, dict[str, Any]] = {}
    for consumer in app[CONSUMERS]:
        entry: dict[str, Any] = dataclasses.asdict(consumer.stats)
        try:
            info = await js.consumer_info(consumer.stream, consumer.route.name, timeout=PROBE_TIMEOUT)
            entry.update(pending=info.num_pending, ack_pending=info.num_ack_pending)
        except Exception as error:
            entry["error"] = f"{type(error).__name__}: {error}"
        report[consumer.route.name] = entry
    return report


async def get_health(request: web.Request) -> web.Response:
    """GET /api/health: NATS, database and consumers; 'degraded' when any is not well."""
    app = request.app
    nc = app[NATS]
    nats = ComponentHealth(
        ok=nc.is_connected,
        detail={"url": app[NATS_URL], "embedded": app[SETTINGS].nats_url is None,
                "restarts": server.restarts if (server := app.get(EMBEDDED_NATS)) else 0},
    )
    database = await _database_health(app)
    consumers = await _consumer_health(app)
    healthy = nats.ok and database.ok and all(c["running"] for c in consumers.values())
    ws_hub = app[WS_HUB]
    websocket = {"clients": len(ws_hub.clients), "connected_total": ws_hub.connected_total,
                 "dropped_slow": ws_hub.dropped_slow}
    embedder = ComponentHealth(ok=True, detail={"ready": app[INDEXER].ready})
    worker = app[OUTCOMES]
    outcomes = ComponentHealth(ok=True, detail={"holding_lease": worker.holding, "paired": worker.paired,
                                                "checkpoint": worker.checkpoint})
    memory = app[MEMORY].worker
    reasoning = ComponentHealth(ok=True, detail={**(await memory.lag()).model_dump(),
                                                 "embedded": memory.index.embedded})
    health = Health(status="ok" if healthy else "degraded", nats=nats, database=database,
                    consumers=consumers, websocket=websocket, embedder=embedder, outcomes=outcomes,
                    reasoning=reasoning)
    return json_response(health)


async def get_schemas(request: web.Request) -> web.Response:
    """GET /api/schemas: every event's JSON Schema, by name."""
    return json_response(event_schemas())


async def get_schema(request: web.Request) -> web.Response:
    """GET /api/schemas/{name}."""
    name = request.match_info["name"]
    schemas = event_schemas()
    if name not in schemas:
        raise NotFound(f"no event named {name!r}; known: {', '.join(schemas)}")
    return json_response(schemas[name])


async def get_metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text format."""
    metrics = request.app[METRICS]
    await metrics.refresh_lag(request.app[CONSUMERS])
    lag = await request.app[MEMORY].worker.lag()
    metrics.set_reasoning_lag(lag.trades_behind, lag.seconds_behind)
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
