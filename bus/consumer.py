"""The batched consume loop: decode, dead-letter the bad, persist the good, announce, ack."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

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


@dataclass(frozen=True)
class Notification:
    """A message to publish on core NATS once the batch is committed."""

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


@dataclass
class ConsumerStats:
    """Counters one consumer keeps, reported by /api/health."""

    running: bool = False
    consumed: int = 0
    persisted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    failures: int = 0
    last_error: str | None = None
    dead_lettered_by_subject: dict[str, int] = field(default_factory=dict)


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
        """Fetch and process batches until stop(); the batch in hand is finished first.

        Two stages overlap: while one batch commits (the driver works in its own thread) the
        next is decoded and its bad events dead-lettered. Commits stay one at a time, in order.
        """
        self._pull = PullSubscription(
            self.nc, self.stream, self.route.name, batch=self.route.batch_size
        )
        await self._pull.start()
        self.stats.running = True
        committing: asyncio.Task[None] | None = None
        try:
            while not self._stopping:
                batch = await self._pull.next_batch(self.route.batch_size, timeout=1.0)
                if not batch:
                    continue
                sorted_batch = await self._guard(self._sort(batch), len(batch))
                if committing is not None:
                    await committing
                    committing = None
                if sorted_batch is not None:
                    work = self._guard(self._commit(*sorted_batch), len(batch))
                    committing = asyncio.create_task(work)
        finally:
            if committing is not None:
                await committing
            self.stats.running = False
            for msg in await self._pull.stop():
                await msg.nak()  # hand them straight to another instance

    def stop(self) -> None:
        """Ask run() to return after the batch in hand."""
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

    async def _sort(self, batch: list[Msg]) -> tuple[list[Msg], list[Any]] | None:
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
        return (accepted, events) if events else None

    async def _commit(self, accepted: list[Msg], events: list[Any]) -> None:
        """Persist, then announce, then ack."""
        started = time.perf_counter()
        results = await self._persist(events, accepted)
        if results is None:
            return  # stopping while the database is down: leave them for redelivery
        notifications = [r for r in results if isinstance(r, Notification)]
        rejected = {r.index: r.reason for r in results if isinstance(r, Rejection)}
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
            self.on_batch(self.route.name, len(events), time.perf_counter() - started)

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
