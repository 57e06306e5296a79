"""Typed keys of what the composition root puts into the aiohttp application."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from nats.aio.client import Client as Nats
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from bus.consumer import BatchConsumer
from bus.embedded import EmbeddedNats
from core.settings import Settings
from handlers.events.decision_questions import DecisionMemory
from handlers.events.outcome_worker import OutcomeWorker
from handlers.http.prometheus import HubMetrics
from handlers.http.websocket import WsHub
from storage.rag.indexer import KnowledgeIndexer
from storage.sql.trade_rows import TradeWriter

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[Any])
TRADE_WRITER = web.AppKey("trade_writer", TradeWriter)
NATS = web.AppKey("nats", Nats)
NATS_URL = web.AppKey("nats_url", str)
WS_HUB = web.AppKey("ws_hub", WsHub)
CONSUMERS = web.AppKey("consumers", list[BatchConsumer])
INDEXER = web.AppKey("indexer", KnowledgeIndexer)
METRICS = web.AppKey("metrics", HubMetrics)
EMBEDDED_NATS = web.AppKey("embedded_nats", EmbeddedNats)
OUTCOMES = web.AppKey("outcomes", OutcomeWorker)
MEMORY = web.AppKey("memory", DecisionMemory)
