"""GET /metrics: Prometheus metrics of this hub instance (prometheus-client's text format).

Counters the consumers and the WebSocket hub keep anyway are read at scrape time, so the
ingest path pays only for the two histograms observed once per batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bus.consumer import BatchConsumer
from handlers.http.websocket import WsHub

BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2000, 5000)


@dataclass
class HubMetrics:
    """This instance's registry and the instruments observed as events flow."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.batch_size = Histogram("hub_batch_size", "Events committed per batch", ["route"],
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.handler_seconds = Histogram("hub_handler_seconds", "Time to persist and ack a batch",
                                         ["route"], registry=self.registry)
        self.pending = Gauge("hub_consumer_pending", "Events in JetStream not yet delivered (lag)",
                             ["route"], registry=self.registry)
        self.ack_pending = Gauge("hub_consumer_ack_pending", "Events delivered, not yet acked",
                                 ["route"], registry=self.registry)
        self.reasoning_trades = Gauge("hub_reasoning_trades_behind",
                                      "Stored trades whose reasoning is not searchable by meaning yet",
                                      registry=self.registry)
        self.reasoning_seconds = Gauge("hub_reasoning_seconds_behind",
                                       "Age by trade time of the oldest of them", registry=self.registry)

    def observe_batch(self, route: str, size: int, seconds: float) -> None:
        """Record one committed batch (the consumers' on_batch hook)."""
        self.batch_size.labels(route).observe(size)
        self.handler_seconds.labels(route).observe(seconds)

    def watch(self, consumers: list[BatchConsumer], ws_hub: WsHub) -> None:
        """Report the counters CONSUMERS and WS_HUB keep."""
        self.registry.register(_StatsCollector(consumers, ws_hub))
        for consumer in consumers:
            consumer.on_batch = self.observe_batch

    async def refresh_lag(self, consumers: list[BatchConsumer]) -> None:
        """Ask JetStream how far behind each consumer is."""
        for consumer in consumers:
            try:
                info = await consumer.js.consumer_info(consumer.stream, consumer.route.name, timeout=2)
            except Exception:
                continue  # NATS away: the gauges keep their last value
            self.pending.labels(consumer.route.name).set(info.num_pending or 0)
            self.ack_pending.labels(consumer.route.name).set(info.num_ack_pending or 0)

    def set_reasoning_lag(self, trades: int, seconds: float) -> None:
        """Record how far decision memory is behind."""
        self.reasoning_trades.set(trades)
        self.reasoning_seconds.set(seconds)

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)


class _StatsCollector(Collector):
    def __init__(self, consumers: list[BatchConsumer], ws_hub: WsHub) -> None:
        self.consumers = consumers
        self.ws_hub = ws_hub

    def collect(self) -> Iterator[Metric]:
        counters = {
            "consumed": "Events fetched from JetStream", "persisted": "Events stored (new rows)",
            "duplicates": "Events already stored (replays)", "failures": "Failed commit attempts",
        }
        for name, text in counters.items():
            family = CounterMetricFamily(f"hub_events_{name}", text, labels=["route"])
            for consumer in self.consumers:
                family.add_metric([consumer.route.name], getattr(consumer.stats, name))
            yield family
        dead = CounterMetricFamily("hub_events_dead_lettered", "Events sent to the DLQ", labels=["subject"])
        for consumer in self.consumers:
            for subject, count in consumer.stats.dead_lettered_by_subject.items():
                dead.add_metric([subject], count)
        yield dead
        yield GaugeMetricFamily("hub_ws_clients", "WebSocket clients connected", value=len(self.ws_hub.clients))
        yield CounterMetricFamily("hub_ws_connections", "WebSocket connections accepted",
                                  value=self.ws_hub.connected_total)
        yield CounterMetricFamily("hub_ws_disconnected_slow", "WebSocket clients cut off for being slow",
                                  value=self.ws_hub.dropped_slow)
