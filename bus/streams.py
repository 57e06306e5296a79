"""JetStream set-up: the HUB stream, the dead-letter stream and the durable consumers."""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig, StreamInfo,
)
from nats.js.errors import NotFoundError

from core.subjects import DLQ, STREAM_SUBJECTS

DAY = 86_400.0


async def ensure_stream(js: JetStreamContext, config: StreamConfig, timeout: float = 10.0) -> None:
    """Create the stream, or bring an existing one to CONFIG; returns once it is placed so."""
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)
    await _wait_for_placement(js, config.name, config.num_replicas or 1, timeout)


async def _wait_for_placement(js: JetStreamContext, name: str, replicas: int, timeout: float) -> None:
    # On a cluster, an update that changes the replica count answers before the new group has a
    # leader and its peers; creating a consumer in that gap fails with 503 "insufficient resources".
    deadline = asyncio.get_running_loop().time() + timeout
    while not _placed(await js.stream_info(name), replicas):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"stream {name} has no leader with {replicas} peers after {timeout}s")
        await asyncio.sleep(0.05)


def _placed(info: StreamInfo, replicas: int) -> bool:
    cluster = info.cluster
    if cluster is None:  # a single server, not clustered
        return True
    return cluster.leader is not None and 1 + len(cluster.replicas or []) >= replicas


async def ensure_hub_streams(
    js: JetStreamContext, name: str, max_age_days: float, replicas: int, max_msg_size: int
) -> None:
    """The stream bots publish into and the one that keeps dead letters."""
    common = dict(storage=StorageType.FILE, num_replicas=replicas, max_msg_size=max_msg_size)
    await ensure_stream(
        js,
        StreamConfig(
            name=name, subjects=STREAM_SUBJECTS, max_age=max_age_days * DAY,
            duplicate_window=120.0, **common,  # type: ignore[arg-type]
        ),
    )
    await ensure_stream(
        js,
        StreamConfig(
            name=f"{name}_DLQ", subjects=[f"{DLQ}.>"], max_age=max_age_days * DAY,
            **common,  # type: ignore[arg-type]
        ),
    )


async def ensure_consumer(
    js: JetStreamContext, stream: str, durable: str, filter_subject: str, ack_wait: float = 30.0
) -> None:
    """A durable pull consumer shared by every hub instance; explicit acks after commit."""
    config = ConsumerConfig(
        durable_name=durable,
        filter_subject=filter_subject,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=-1,
        max_ack_pending=50_000,
        max_waiting=512,
    )
    await js.add_consumer(stream, config)
