"""The batched consume loop: decode, dead-letter the bad, persist the good, announce, ack."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from bus.codec import dead_letter, decode, event_id_of
from bus.pull import PullSubscription
from core.errors import InvalidEvent
from core.events import Event
from core.subjects import dlq_subject

log = logging.getLogger(__name__)
T = TypeVar("T")
LARGE_PAYLOAD = 256 * 1024


class Notification(NamedTuple):
    """A message to publish on core NATS once the batch is committed (one per stored event: a
    tuple, which costs a third of a frozen dataclass to make)."""

    subject: str
    payload: bytes
    replay: bool = False  # a stored event announced again: its first announcement may be lost


@dataclass(frozen=True)
class Rejection:
    """An event the handler refused after looking at what is stored (e.g. an event_id reused
    with different content); it goes to the dead-letter subject instead of being acked."""

    index: int  # position in the batch the handler was given
    reason: str


Handler = Callable[[Sequence[Any]], Awaitable[Sequence[Notification | Rejection]]]
Check = Callable[[str, Any], str | None]


@dataclass(frozen=True)
class Route:
    """One line of the routing table: which events, from which subjects, persisted by what."""

    name: str  # also the durable consumer's name
    filter_subject: str
    model: type[Event]
    handler: Handler
    check: Check | None = None  # subject-aware rule beyond the model, returns a reason
    max_bytes: int = 64 * 1024
    batch_size: int = 1000
    # Batches whose transactions may be open at once. More than one only where the database
    # runs concurrent writers (PostgreSQL): a redelivered event's insert then waits on the
    # unique event_id until the first delivery's transaction ends, and sees it committed.
    commits_in_flight: int = 1


@dataclass
class ConsumerStats:
    """Counters one consumer keeps, reported by /api/health."""

    running: bool = False
    consumed: int = 0
    persisted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    backlog: int = 0  # messages the stream held for this consumer beyond the last batch fetched
    failures: int = 0
    last_error: str | None = None
    dead_lettered_by_subject: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Decoded:
    """A batch's good messages and their events, in the same order."""

    accepted: list[Msg]
    events: list[Any]


@dataclass(frozen=True)
class _Persisted:
    """A committed batch and what its handler answered, waiting to be announced and acked."""

    decoded: _Decoded
    results: Sequence[Notification | Rejection]
    started: float  # perf_counter when its commit began, for the batch-time metric


Committing = asyncio.Task[_Persisted | None]


@dataclass
class BatchConsumer:
    """Consumes one route's durable consumer until stopped; never dies on a bad event."""

    nc: Client
    js: JetStreamContext
    stream: str
    route: Route
    stats: ConsumerStats = field(default_factory=ConsumerStats)
    on_batch: Callable[[str, int, float], None] | None = None  # (route, size, seconds) for metrics
    _stopping: bool = False
    _pull: PullSubscription | None = None

    async def run(self) -> None:
        """Fetch and process batches until stop(); the batches in hand are finished first.

        Three stages overlap: decoding (and dead-lettering the bad) here, persisting, and
        announcing and acking. While a batch commits (the database works on it), the batch
        before it is announced and acked and the batch after it decoded. Batches are announced
        and acked in the order they were fetched; up to route.commits_in_flight commit at once.
        """
        self._pull = PullSubscription(
            self.nc, self.stream, self.route.name, batch=self.route.batch_size
        )
        await self._pull.start()
        self.stats.running = True
        decoded: asyncio.Queue[_Decoded | None] = asyncio.Queue(maxsize=1)
        persisted: asyncio.Queue[Committing | None] = asyncio.Queue(maxsize=1)
        stages = [asyncio.create_task(self._persisting(decoded, persisted)),
                  asyncio.create_task(self._announcing(persisted))]
        try:
            while not self._stopping:
                batch = await self._pull.next_batch(self.route.batch_size, timeout=1.0)
                self.stats.backlog = self._pull.buffered + (batch[-1].metadata.num_pending if batch else 0)
                if batch and (good := await self._guard(self._sort(batch), len(batch))):
                    await decoded.put(good)
        finally:
            await decoded.put(None)
            await asyncio.gather(*stages)
            self.stats.running = False
            for msg in await self._pull.stop():
                await msg.nak()  # hand them straight to another instance

    def behind(self) -> bool:
        """Whether a batch or more waits beyond the one last fetched: catching up on a backlog."""
        return self.stats.backlog >= self.route.batch_size

    def stop(self) -> None:
        """Ask run() to return once the batches in hand are committed and acked."""
        self._stopping = True
        if self._pull is not None:
            self._pull.wake()

    async def _guard(self, work: Awaitable[T], size: int) -> T | None:
        try:
            return await work
        except Exception as error:  # e.g. the DLQ publish timed out: unacked, so redelivered
            self.stats.failures += 1
            self.stats.last_error = f"{type(error).__name__}: {error}"
            log.exception("%s: batch of %d left for redelivery", self.route.name, size)
            await asyncio.sleep(1.0)
            return None

    async def _sort(self, batch: list[Msg]) -> _Decoded | None:
        """Decode BATCH; dead-letter what is bad. The good messages and their events, if any."""
        self.stats.consumed += len(batch)
        self.stats.batches += 1
        accepted: list[Msg] = []
        events: list[Any] = []
        for msg in batch:
            try:
                if len(msg.data) > LARGE_PAYLOAD:  # validating megabytes takes long: not on the loop
                    events.append(await asyncio.to_thread(self._decode, msg))
                else:
                    events.append(self._decode(msg))
                accepted.append(msg)
            except InvalidEvent as error:
                await self._dead_letter(msg, str(error))
        return _Decoded(accepted, events) if events else None

    async def _persisting(self, decoded: asyncio.Queue[_Decoded | None],
                          persisted: asyncio.Queue[Committing | None]) -> None:
        """Stage two: start each decoded batch's commit once a slot is free; pass it on in order."""
        slots = asyncio.Semaphore(self.route.commits_in_flight)
        while (batch := await decoded.get()) is not None:
            await slots.acquire()
            await persisted.put(asyncio.create_task(self._committed(batch, slots)))
        await persisted.put(None)

    async def _committed(self, batch: _Decoded, slots: asyncio.Semaphore) -> _Persisted | None:
        started = time.perf_counter()
        try:
            results = await self._persist(batch.events, batch.accepted)
        finally:
            slots.release()
        # None: stopping while the database is down; the batch is left for redelivery.
        return None if results is None else _Persisted(batch, results, started)

    async def _announcing(self, persisted: asyncio.Queue[Committing | None]) -> None:
        """Stage three: announce and ack each committed batch, in the order they were fetched."""
        while (committing := await persisted.get()) is not None:
            if (batch := await committing) is not None:
                await self._guard(self._announce(batch), len(batch.decoded.events))

    async def _announce(self, batch: _Persisted) -> None:
        accepted, events = batch.decoded.accepted, batch.decoded.events
        notifications = [r for r in batch.results if isinstance(r, Notification)]
        rejected = {r.index: r.reason for r in batch.results if isinstance(r, Rejection)}
        # Announce before acking, on the same connection: a crash that loses an announcement
        # loses the acks queued behind it, and the redelivered replay is announced again.
        for note in notifications:
            await self.nc.publish(note.subject, note.payload)
        for index, msg in enumerate(accepted):
            if index in rejected:
                await self._dead_letter(msg, rejected[index])
            else:
                await msg.ack()
        fresh = sum(not note.replay for note in notifications)
        self.stats.persisted += fresh
        self.stats.duplicates += len(events) - fresh - len(rejected)
        if self.on_batch is not None:
            self.on_batch(self.route.name, len(events), time.perf_counter() - batch.started)

    def _decode(self, msg: Msg) -> Event:
        event = decode(self.route.model, msg.data, self.route.max_bytes)
        if event.missing_time():
            # The stream's time, not ours: the same on every redelivery, and true for a backlog.
            event = event.at(msg.metadata.timestamp)
        if self.route.check is not None and (reason := self.route.check(msg.subject, event)):
            raise InvalidEvent(reason)
        return event

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        log.warning("dead-lettered %s: %s", msg.subject, reason,
                    extra={"subject": msg.subject, "event_id": event_id_of(msg.data), "reason": reason})
        record = dead_letter(msg.subject, msg.data, reason)
        # Stored in the DLQ stream before the original is acked, so nothing is lost.
        await self.js.publish(dlq_subject(msg.subject), record)
        await msg.ack()
        self.stats.dead_lettered += 1
        by_subject = self.stats.dead_lettered_by_subject
        by_subject[msg.subject] = by_subject.get(msg.subject, 0) + 1

    async def _persist(
        self, events: list[Any], held: list[Msg]
    ) -> Sequence[Notification | Rejection] | None:
        delay = 0.2
        while True:
            try:
                return await self.route.handler(events)
            except Exception as error:  # a failing handler must never take the consumer down
                self.stats.failures += 1
                self.stats.last_error = f"{type(error).__name__}: {error}"
                log.exception("%s: persisting %d events failed; retrying", self.route.name, len(events))
            if self._stopping:
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            for msg in held:  # still ours: no redelivery to another instance meanwhile
                await msg.in_progress()
