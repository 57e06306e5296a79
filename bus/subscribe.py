"""Listening to hub subjects from user code: typed events, with JetStream replay on request."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime

from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import BaseModel

from bus.codec import decode
from core.api import TradeOut
from core.errors import InvalidEvent
from core.events import TradeExecuted
from core.subjects import PERSISTED, TRADES

log = logging.getLogger(__name__)

# Subject prefix -> the model its messages carry; the first match wins.
MODELS: list[tuple[str, type[BaseModel]]] = [
    (f"{PERSISTED}.trades.", TradeOut),
    (f"{TRADES}.", TradeExecuted),
]
MAX_BYTES = 64 * 1024 * 1024


def model_for(subject: str) -> type[BaseModel]:
    """The model of the messages on SUBJECT (wildcards allowed)."""
    for prefix, model in MODELS:
        if subject.startswith(prefix):
            return model
    raise ValueError(f"no event model is known for subject {subject!r}")


def _replay_config(deliver_from: int | datetime) -> ConsumerConfig:
    if isinstance(deliver_from, datetime):
        return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=deliver_from)
    return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=deliver_from)


async def events(
    nc: Client, subject: str, *, deliver_from: int | datetime | None = None
) -> AsyncIterator[BaseModel]:
    """Yield validated events on SUBJECT as they come.

    With DELIVER_FROM (a stream sequence or a time) the events stored since then are replayed
    first, from the hub's stream; that works for the subjects bots publish on (trades.>).
    Messages that fail validation are logged and skipped.
    """
    model = model_for(subject)
    if deliver_from is None:
        subscription = await nc.subscribe(subject)
    else:
        js = nc.jetstream()
        subscription = await js.subscribe(subject, ordered_consumer=True, config=_replay_config(deliver_from))
    try:
        async for msg in subscription.messages:
            try:
                yield decode(model, msg.data, MAX_BYTES)
            except InvalidEvent as error:
                log.warning("skipping a message on %s: %s", msg.subject, error)
    finally:
        await subscription.unsubscribe()
