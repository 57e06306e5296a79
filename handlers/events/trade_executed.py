"""Live trades: persist a batch, then announce each new row on hub.persisted.trades.<ASSET>."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import async_sessionmaker

from bus.consumer import Notification, Rejection
from core.events import TRADE_FIELDS, TradeExecuted
from core.subjects import persisted_subject
from storage.sql.models import Trade
from storage.sql.trade_rows import TradeWriter, row_json, stored_trades


UNKNOWN_OUTCOME = {"status": None, "realized_pnl": None}
COMPARED = TRADE_FIELDS[1:]  # all but event_id, which found the stored trade
_UNKNOWN_JSON = orjson.dumps(UNKNOWN_OUTCOME)


def trade_document(row_id: int, fields: bytes) -> bytes:
    """The stored trade as JSON in the API's Trade schema, from its id and its FIELDS as a JSON
    object (its outcome is announced on hub.persisted.outcomes once paired)."""
    return b'{"id":%d,%s,"outcome":%s}' % (row_id, fields[1:-1], _UNKNOWN_JSON)


def differences(event: TradeExecuted, stored: Trade) -> list[str]:
    """The fields the publisher sent in which EVENT is not the trade stored under its event_id.

    A time the hub filled in from the stream is not content: a re-published untimed event
    gets a new one.
    """
    names = [n for n in COMPARED if not (n == "timestamp" and event.missing_time())]
    return [name for name in names if getattr(event, name) != getattr(stored, name)]


async def persist_trades(
    writer: TradeWriter, sessions: async_sessionmaker[Any], committed: Callable[[], None],
    events: Sequence[TradeExecuted],
) -> list[Notification | Rejection]:
    """Insert the batch. A replay of a stored event is skipped; an event_id reused with
    different content is rejected, so the second trade is not silently lost."""
    stored = await writer.insert(events)
    inserted = {id(new.event) for new in stored}
    replays = [(i, e) for i, e in enumerate(events) if id(e) not in inserted]
    existing: dict[str, Trade] = {}
    if replays:  # stored trades never change: reading them after the insert's commit is as good
        async with sessions() as session:
            existing = await stored_trades(session, {e.event_id for _, e in replays})
    if inserted:
        committed()  # wakes the background workers, which pair and index them off this path
    results: list[Notification | Rejection] = [
        Notification(persisted_subject("trades", new.event.asset), trade_document(new.id, new.json))
        for new in stored
    ]
    for index, event in replays:
        stored_trade = existing[event.event_id]
        if changed := differences(event, stored_trade):
            results.append(Rejection(index, f"event_id {event.event_id!r} is already stored with a "
                                            f"different {', '.join(changed)}"))
        else:  # announced again: the instance that stored it may have died before announcing
            results.append(Notification(persisted_subject("trades", stored_trade.asset),
                                        trade_document(stored_trade.id, row_json(stored_trade)),
                                        replay=True))
    return results


def check_trade_subject(subject: str, event: TradeExecuted) -> str | None:
    """A trade must be published on trades.<its asset>."""
    asset = subject.rsplit(".", 1)[-1].upper()
    if asset != event.asset:
        return f"asset {event.asset!r} does not match subject {subject!r}"
    return None
