"""`main.py recall`: what happened the last times a trade was reasoned like this, as a table.

Through the running hub when there is one (its store is not to be opened twice), else from
the store of a stopped hub, as far as it was indexed.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from nats.aio.client import Client as Nats
from rich.console import Console
from rich.table import Table

from bus.replies import ask
from core.decisions import RecallRequest, SimilarDecisions
from core.subjects import DECISION_RECALL
from handlers.events.decision_questions import DecisionMemory

OpenMemory = Callable[[], AbstractAsyncContextManager[DecisionMemory]]
REASONING_SHOWN = 70  # characters of each past reasoning in the table


def recall_table(answer: SimilarDecisions) -> Table:
    """One row per past decision, the summary as the caption."""
    s = answer.summary
    rate = "–" if s.win_rate is None else f"{s.win_rate:.0%}"
    mean = "–" if s.mean_pnl is None else f"{s.mean_pnl:,.2f}"
    table = Table("time", "source", "asset", "action", "conf.", "outcome", "PnL", "reasoning",
                  title=f"{s.n} similar past decisions",
                  caption=f"{s.closed} closed: won {rate} ({s.wins}), mean PnL {mean}",
                  caption_justify="left")
    for d in answer.results:
        pnl = "–" if d.outcome.realized_pnl is None else f"{d.outcome.realized_pnl:,.2f}"
        text = " ".join(d.reasoning.split())
        table.add_row(f"{d.timestamp:%Y-%m-%d %H:%M}", d.source or "–", d.asset, d.action,
                      "–" if d.confidence is None else f"{d.confidence:g}", d.outcome.status or "unpaired",
                      pnl, text[:REASONING_SHOWN] + ("…" if len(text) > REASONING_SHOWN else ""))
    return table


async def _recall(hub: Nats | None, open_memory: OpenMemory, draft: RecallRequest) -> SimilarDecisions:
    if hub is None:
        async with open_memory() as memory:
            return await memory.recall(draft)
    return await ask(hub, DECISION_RECALL, draft, SimilarDecisions)


async def recall_command(hub: Nats | None, open_memory: OpenMemory, draft: RecallRequest) -> None:
    """Print the similar past decisions and how they turned out."""
    answer = await _recall(hub, open_memory, draft)
    Console().print(recall_table(answer) if answer.results else "no similar past decisions")

