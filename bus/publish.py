"""Publishing events into the hub, for bots and scripts written in Python."""

from __future__ import annotations

import uuid
from typing import Any

from nats.aio.client import Client
from nats.errors import MaxPayloadError
from nats.js.errors import NoStreamResponseError
from nats.js.api import PubAck

from bus.codec import encode
from bus.connection import connect_briefly, resolve_nats_url
from core.errors import EventTooLarge, HubNotRunning
from core.events import BacktestCompleted, Event, TradeExecuted
from core.settings import Settings
from core.subjects import BACKTESTS_COMPLETED, trade_subject


def subject_of(event: Event) -> str:
    """The subject an event is published on."""
    if isinstance(event, TradeExecuted):
        return trade_subject(event.asset)
    if isinstance(event, BacktestCompleted):
        return BACKTESTS_COMPLETED
    raise TypeError(f"no subject for {type(event).__name__}")


class HubPublisher:
    """Publishes events with JetStream acknowledgement; the event_id is the Nats-Msg-Id."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.js = nc.jetstream()

    @classmethod
    async def connect(cls, settings: Settings | None = None, name: str = "hub-publisher") -> HubPublisher:
        """Connect to the running hub's NATS (or HUB_NATS_URL)."""
        settings = settings or Settings()
        return cls(await connect_briefly(settings, resolve_nats_url(settings), name))

    async def close(self) -> None:
        """Flush and disconnect."""
        await self.nc.drain()

    async def __aenter__(self) -> HubPublisher:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def publish(self, event: Event, timeout: float = 30.0) -> PubAck:
        """Publish EVENT and wait until the stream has stored it."""
        payload = encode(event)
        try:
            return await self.js.publish(
                subject_of(event), payload, timeout=timeout, headers={"Nats-Msg-Id": event.event_id}
            )
        except NoStreamResponseError:
            raise HubNotRunning(
                f"no stream on {self.nc.connected_url.geturl() if self.nc.connected_url else 'NATS'} "
                f"stores {subject_of(event)}: no hub has run there yet; start one with "
                "`python main.py`, or point HUB_NATS_URL at the hub's NATS"
            ) from None
        except MaxPayloadError:
            raise EventTooLarge(
                f"{type(event).__name__} {event.event_id} is {len(payload):,} bytes, over the NATS "
                f"server's max_payload of {self.nc.max_payload:,}: raise max_payload in the server's "
                "configuration (the embedded server allows HUB_NATS_MAX_PAYLOAD, 32 MiB by default)"
            ) from None

    async def publish_trade(self, **fields: Any) -> TradeExecuted:
        """Validate FIELDS as a TradeExecuted (event_id defaults to a new UUID) and publish it."""
        fields.setdefault("event_id", str(uuid.uuid4()))
        trade = TradeExecuted.model_validate(fields)
        await self.publish(trade)
        return trade
