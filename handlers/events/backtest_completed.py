"""Finished backtests: metrics, rows, the JSON report in logs/, then the announcement.

Order matters for crash safety: rows are committed first, then the report is written, then the
event is acked. A crash before the commit leaves nothing; a crash between commit and report is
completed by the redelivery (the row exists, so only the report is written, under its id).
Either way there is no orphan report and no second row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from bus.consumer import Notification
from core.api import BacktestSummary
from core.backtest_report import analyse, build_report, event_from_report
from core.errors import HubError
from core.events import BacktestCompleted
from core.subjects import BACKTESTS_COMPLETED, persisted_subject
from storage.sql.backtest_rows import find_backtest, get_backtest, insert_backtest
from storage.sql.models import Backtest
from storage.reports import (
    read_report, remove_partial_reports, report_ids, report_path, write_report,
)

log = logging.getLogger(__name__)


async def persist_backtests(
    sessions: async_sessionmaker[Any], logs_dir: Path, events: Sequence[BacktestCompleted]
) -> list[Notification]:
    """Persist each backtest of the batch; duplicates only complete a missing report.

    A duplicate is announced again: it may be the redelivery of a backtest whose instance died
    after the commit, before its announcement went out.
    """
    notes = []
    for event in events:
        backtest, new = await store_backtest(sessions, logs_dir, event)
        notes.append(Notification(persisted_subject("backtests"), summary_document(backtest),
                                  replay=not new))
    return notes


async def persist_backtest(
    sessions: async_sessionmaker[Any], logs_dir: Path, event: BacktestCompleted,
    *, backtest_id: int | None = None, created_at: datetime | None = None,
) -> Backtest | None:
    """Store EVENT (rows, then report); None if it was stored before."""
    backtest, new = await store_backtest(sessions, logs_dir, event, backtest_id=backtest_id,
                                         created_at=created_at)
    return backtest if new else None


async def store_backtest(
    sessions: async_sessionmaker[Any], logs_dir: Path, event: BacktestCompleted,
    *, backtest_id: int | None = None, created_at: datetime | None = None,
) -> tuple[Backtest, bool]:
    """The stored backtest of EVENT, and whether it is new (else only a missing report is written)."""
    async with sessions() as session:
        existing = await find_backtest(session, event.event_id)
    if existing is not None:
        path = report_path(logs_dir, existing.id)
        if not path.exists():
            analysis = await asyncio.to_thread(analyse, event)
            report = build_report(existing.id, event, analysis, existing.created_at)
            await asyncio.to_thread(write_report, path, report)
        return existing, False
    analysis = await asyncio.to_thread(analyse, event)
    created = created_at or datetime.now(timezone.utc)
    async with sessions() as session, session.begin():
        new_id = await insert_backtest(session, event, analysis, created, backtest_id)
        stored = await session.get(Backtest, new_id)
    assert stored is not None
    report = build_report(new_id, event, analysis, created)
    await asyncio.to_thread(write_report, report_path(logs_dir, new_id), report)
    log.info("backtest %s stored as %d", event.event_id, new_id,
             extra={"subject": BACKTESTS_COMPLETED, "event_id": event.event_id, "backtest_id": new_id})
    return stored, True


def summary_document(backtest: Backtest) -> bytes:
    """The stored backtest as JSON, in the API's summary schema."""
    return BacktestSummary.model_validate(backtest, from_attributes=True).model_dump_json().encode()


async def import_report(
    sessions: async_sessionmaker[Any], logs_dir: Path, path: Path
) -> Backtest | None:
    """Store the backtest a report (of any version) describes, keeping its id when free; None if
    already stored. The report is written again, in the current version."""
    report = await asyncio.to_thread(read_report, path)
    event = event_from_report(report)
    wanted: int | None = report.get("id")
    if wanted is not None:
        async with sessions() as session:
            if await get_backtest(session, wanted) is not None:
                wanted = None  # the id is another backtest's now: take a new one
    return await persist_backtest(
        sessions, logs_dir, event, backtest_id=wanted,
        created_at=datetime.fromisoformat(report["created_at"]),
    )


async def import_missing_reports(sessions: async_sessionmaker[Any], logs_dir: Path) -> int:
    """Import the reports in LOGS_DIR whose backtest id is not in the database; how many."""
    await asyncio.to_thread(remove_partial_reports, logs_dir)
    imported = 0
    for backtest_id in report_ids(logs_dir):
        async with sessions() as session:
            if await get_backtest(session, backtest_id) is not None:
                continue
        path = report_path(logs_dir, backtest_id)
        try:
            stored = await import_report(sessions, logs_dir, path)
        except HubError as error:  # e.g. a report of a newer hub: skip it, import the others
            log.warning("report %s not imported: %s", path, error)
            continue
        if stored:
            imported += 1
    return imported
