"""GET /metrics: what an operator's Prometheus scrapes."""

from __future__ import annotations

from nats.aio.client import Client as Nats
from prometheus_client.parser import text_string_to_metric_families

from handlers.http.keys import CONSUMERS
from tests.support.hub_app import Hub
from tests.support.payloads import publish_raw, publish_trade, trade
from tests.support.waiting import eventually


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_count_events_batches_lag_and_clients(hub: Hub, nc: Nats) -> None:
    ws = await hub.http.ws_connect("/ws")
    for i in range(5):
        await publish_trade(nc, event_id=f"m-{i}")
    await publish_trade(nc, event_id="m-0")  # a duplicate
    await publish_raw(nc, "trades.BTC", trade(confidence=500))
    stats = hub.app[CONSUMERS][0].stats
    await eventually(lambda: stats.persisted == 5 and stats.duplicates == 1 and stats.dead_lettered == 1)

    response = await hub.http.get("/metrics")
    assert response.status == 200 and response.content_type == "text/plain"
    found = samples(await response.text())
    assert found[("hub_events_consumed_total", (("route", "trades"),))] == 7
    assert found[("hub_events_persisted_total", (("route", "trades"),))] == 5
    assert found[("hub_events_duplicates_total", (("route", "trades"),))] == 1
    assert found[("hub_events_dead_lettered_total", (("subject", "trades.BTC"),))] == 1
    assert found[("hub_batch_size_count", (("route", "trades"),))] >= 1
    assert found[("hub_batch_size_sum", (("route", "trades"),))] == 6  # 5 new + 1 duplicate
    assert found[("hub_handler_seconds_count", (("route", "trades"),))] >= 1
    assert found[("hub_consumer_pending", (("route", "trades"),))] == 0
    assert found[("hub_ws_clients", ())] == 1 and found[("hub_ws_connections_total", ())] == 1
    await ws.close()

