"""A pull subscription that keeps requests outstanding so the server streams while we commit.

nats-py's fetch() spends a task and a wait_for on every message; at tens of thousands of
messages a second that is most of a core. Here one callback appends to a deque, and pull
requests are topped up by credit, the way the newer NATS clients' consume() works.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

STATUS = "Status"
PENDING = "Nats-Pending-Messages"


class PullSubscription:
    """Buffers messages of one durable pull consumer; next_batch() hands them out."""

    def __init__(
        self, nc: Client, stream: str, durable: str, *, batch: int,
        expires: float = 10.0, heartbeat: float = 2.0,
    ) -> None:
        self._nc = nc
        self._api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._batch = batch
        self._expires = expires
        self._heartbeat = heartbeat
        self._credit = 0  # messages requested and neither delivered nor expired
        self._buffer: deque[Msg] = deque()
        self._arrived = asyncio.Event()
        self._last_seen = time.monotonic()
        self._reconnects = nc.stats["reconnects"]
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Subscribe to our inbox; requests go out on the first next_batch()."""
        # Our credit bounds what is buffered, so the client-side limits are off.
        self._sub = await self._nc.subscribe(
            self._inbox, cb=self._on_message, pending_msgs_limit=0, pending_bytes_limit=0
        )

    async def stop(self) -> list[Msg]:
        """Unsubscribe and return what arrived but was never handed out.

        Draining (not unsubscribing) matters: messages already on their way are still
        received, so the caller can nak them instead of leaving them to ack_wait.
        """
        if self._sub is not None:
            if self._nc.is_connected:
                await self._sub.drain()  # type: ignore[no-untyped-call]
            else:
                await self._sub.unsubscribe()
            self._sub = None
        leftovers = list(self._buffer)
        self._buffer.clear()
        self.wake()
        return leftovers

    @property
    def buffered(self) -> int:
        """Messages that arrived and were not handed out yet."""
        return len(self._buffer)

    def wake(self) -> None:
        """Make a waiting next_batch() return now (used when stopping)."""
        self._arrived.set()

    async def _on_message(self, msg: Msg) -> None:
        self._last_seen = time.monotonic()
        headers = msg.headers
        if headers and STATUS in headers:
            self._on_status(headers)
            return
        self._credit -= 1
        self._buffer.append(msg)
        self._arrived.set()

    def _on_status(self, headers: dict[str, str]) -> None:
        status = headers[STATUS]
        if status == "100":
            return  # idle heartbeat: the server still holds our requests
        if status == "503" or headers.get("Description") == "Leadership Change":
            # No consumer leader got the request, or the old leader dropped every request it
            # held; neither says how much. Without a reset we would wait for the stale timeout.
            self._credit = 0
        else:
            # 408 (expired) and other 409s end a request; the header tells how much of it was
            # never delivered.
            self._credit -= int(headers.get(PENDING, 0) or 0)
        if status not in ("404", "408"):
            log.warning("pull request ended: %s %s", status, headers.get("Description", ""))

    async def _top_up(self) -> None:
        stale = time.monotonic() - self._last_seen > self._expires + 2 * self._heartbeat
        if stale or self._nc.stats["reconnects"] != self._reconnects:
            # A new connection (or a long silence): the server no longer holds our requests.
            self._credit = 0
            self._last_seen = time.monotonic()
            self._reconnects = self._nc.stats["reconnects"]
        wanted = 2 * self._batch - self._credit
        if wanted < self._batch or not self._nc.is_connected:
            return
        request = {
            "batch": wanted,
            "expires": int(self._expires * 1e9),
            "idle_heartbeat": int(self._heartbeat * 1e9),
        }
        await self._nc.publish(self._api, orjson.dumps(request), reply=self._inbox)
        self._credit += wanted

    async def next_batch(self, max_messages: int, timeout: float) -> list[Msg]:
        """Up to MAX_MESSAGES that have arrived, waiting at most TIMEOUT for the first."""
        await self._top_up()
        if not self._buffer:
            self._arrived.clear()
            try:  # a timeout scope, not wait_for: no task is made for each wait
                async with asyncio.timeout(timeout):
                    await self._arrived.wait()
            except TimeoutError:
                return []
        count = min(len(self._buffer), max_messages)
        return [self._buffer.popleft() for _ in range(count)]
