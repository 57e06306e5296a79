"""The outcome worker: pairs stored live trades into outcomes in the background.

It follows the trades table in id order from a checkpoint, one instance at a time (a lease),
so the ingest path never waits for it. Each group's trades are applied in (timestamp, id)
order: a batch that only adds later trades continues the group's book; a late trade re-pairs
the group from its first trade. Either way the result equals pairing all the group's trades
sorted, whatever order they arrived in and whichever instance stored them. Outcomes that
change are announced on hub.persisted.outcomes.<ASSET> after the commit.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.outcomes import GroupState, LiveFill, Outcome, pair_all, pair_into
from core.subjects import persisted_subject
from handlers.events.worker_pacing import Pacing
from storage.sql.leases import IdFrontier, acquire, advance, renew, watermark
from storage.sql.outcome_rows import (
    GroupKey, NewTrade, create_groups, forget_outcomes, group_trades, load_groups, outcomes_of,
    store_outcomes, store_states, unpaired_trades,
)

log = logging.getLogger(__name__)
LEASE = "outcomes"
LEASE_SECONDS = 15.0
Publish = Callable[[str, bytes], Coroutine[Any, Any, None]]


class LeaseLost(Exception):
    """Another instance took the lease while this one paired: its results must not be written."""


@dataclass
class Plan:
    """One pass's results, computed before its write transaction begins."""

    inserted: list[tuple[GroupKey, Outcome]] = field(default_factory=list)
    updated: list[Outcome] = field(default_factory=list)
    states: list[GroupKey] = field(default_factory=list)
    forgotten: list[int] = field(default_factory=list)  # re-paired groups' old outcomes
    announcements: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class OutcomeWorker:
    """Pairs what the trades consumer stored; wake() after a commit makes it look at once."""

    sessions: async_sessionmaker[Any]
    publish: Publish
    batch: int = 5000
    pacing: Pacing = field(default_factory=Pacing)
    holder: str = field(default_factory=lambda: f"hub-{uuid.uuid4()}")
    paired: int = 0  # trades this instance paired
    holding: bool = False
    checkpoint: int = 0
    _frontier: IdFrontier = field(default_factory=IdFrontier)
    # Group states as this instance last wrote them: valid while it holds the lease, since only
    # the holder writes them; dropped when the lease is (re)taken or a pass fails.
    _groups: dict[GroupKey, tuple[int | None, GroupState]] = field(default_factory=dict)
    _generation: int | None = None

    def wake(self, behind: bool) -> None:
        """New trades are committed: look at once, or stand aside while ingest is BEHIND."""
        self.pacing.wake(behind)

    def stop(self) -> None:
        """Finish the pass in hand, then return from run()."""
        self.pacing.stop()

    async def run(self) -> None:
        """Pass after pass until stopped; idle, it looks again each second or when woken."""
        # After a failed pass, what it held in memory may not have been committed.
        await self.pacing.run(self.run_pass, self._groups.clear, self.sessions, LEASE, self.holder)

    async def run_pass(self) -> bool:
        """Pair one batch if this instance holds the lease; whether more may be waiting.

        Reading and pairing happen outside any write transaction; the results are written in
        one short one, fenced by the lease, so the ingest path's commits barely wait."""
        sweep = self.pacing.sweep_due()  # a late commit below the checkpoint is paired too
        async with self.sessions() as session:  # idle: look without writing (no lock taken)
            if not await unpaired_trades(session, 0 if sweep else await watermark(session, LEASE), 1):
                return False
        async with self.sessions() as session, session.begin():
            generation = await acquire(session, LEASE, self.holder, LEASE_SECONDS)
        self.holding = generation is not None
        if generation != self._generation:
            self._groups.clear()  # another instance may have written them meanwhile
            self._generation = generation
        if generation is None:
            return False
        async with self.sessions() as session:
            mark = await watermark(session, LEASE)
            new = await unpaired_trades(session, 0 if sweep else mark, self.batch)
            plan = await self._plan(session, new)
        checkpoint = self._frontier.advance(mark, [t.fill.trade_id for t in new])
        async with self.sessions() as session, session.begin():
            if not await renew(session, LEASE, self.holder, generation, LEASE_SECONDS):
                raise LeaseLost(f"lost the {LEASE} lease during a pass; its results are dropped")
            await self._write(session, plan)
            await advance(session, LEASE, checkpoint)
        self.checkpoint, self.paired = checkpoint, self.paired + len(new)
        for subject, payload in plan.announcements:
            await self.publish(subject, payload)
        return len(new) == self.batch

    async def _plan(self, session: AsyncSession, new: Sequence[NewTrade]) -> Plan:
        """Pair NEW into the groups' states (in memory); what to write and to announce."""
        by_group: dict[GroupKey, list[LiveFill]] = defaultdict(list)
        for trade in new:
            by_group[trade.group].append(trade.fill)
        if missing := set(by_group) - self._groups.keys():
            self._groups.update(await load_groups(session, missing))
        plan = Plan()
        for key, fills in by_group.items():
            group_id, state = self._groups[key]
            fills.sort(key=lambda f: f.key)
            if state.last_key is None or fills[0].key > state.last_key:
                outcomes = pair_into(state, fills)
                new_ids = {f.trade_id for f in fills}
                plan.inserted += [(key, o) for o in outcomes if o.trade_id in new_ids]
                plan.updated += [o for o in outcomes if o.trade_id not in new_ids]
            else:
                assert group_id is not None  # a group with a last trade is stored
                state, outcomes = await self._pair_again(session, group_id, key, fills, plan)
                self._groups[key] = (group_id, state)
            plan.states.append(key)
            plan.announcements += [_announcement(key, o) for o in outcomes]
        return plan

    async def _pair_again(self, session: AsyncSession, group_id: int, key: GroupKey,
                          fills: list[LiveFill], plan: Plan) -> tuple[GroupState, list[Outcome]]:
        """A late trade: the group is paired again from its first trade. Every outcome is
        rewritten; the ones that changed are returned to be announced."""
        started, earlier = time.perf_counter(), await group_trades(session, group_id)
        before = await outcomes_of(session, [f.trade_id for f in earlier])
        state, outcomes = pair_all([*earlier, *fills])
        plan.forgotten.append(group_id)
        plan.inserted += [(key, o) for o in outcomes]
        log.info("late trade: re-paired %d trades of %s in %.3f s", len(outcomes), key,
                 time.perf_counter() - started)
        return state, [o for o in outcomes if _shown(before.get(o.trade_id)) != _shown(o)]

    async def _write(self, session: AsyncSession, plan: Plan) -> None:
        """The plan's rows, in a few bulk statements."""
        created = await create_groups(session, [k for k in plan.states if self._groups[k][0] is None])
        for key, group_id in created.items():
            self._groups[key] = (group_id, self._groups[key][1])
        ids = {key: self._groups[key][0] or 0 for key in plan.states}  # every one is stored now
        for group_id in plan.forgotten:
            await forget_outcomes(session, group_id)
        await store_outcomes(session, [(ids[k], o) for k, o in plan.inserted], plan.updated)
        await store_states(session, [(ids[k], self._groups[k][1]) for k in plan.states])


def _shown(outcome: Outcome | None) -> tuple[str, float | None] | None:
    return None if outcome is None else (outcome.status, outcome.realized_pnl)


def _announcement(key: GroupKey, outcome: Outcome) -> tuple[str, bytes]:
    source, strategy, asset = key
    return persisted_subject("outcomes", asset), orjson.dumps({
        "trade_id": outcome.trade_id, "source": source, "strategy": strategy, "asset": asset,
        "outcome": {"status": outcome.status, "realized_pnl": outcome.realized_pnl}})
