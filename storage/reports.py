"""Backtest reports: one JSON file per backtest in logs/, written atomically."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import orjson

REPORT_NAME = re.compile(r"^backtest_(\d+)\.json$")


def report_path(logs_dir: Path, backtest_id: int) -> Path:
    """logs/backtest_<id>.json."""
    return logs_dir / f"backtest_{backtest_id}.json"


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write REPORT to PATH atomically: a reader sees the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o644)  # mkstemp makes it private; a report is for sharing
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_report(path: Path) -> dict[str, Any]:
    """The report at PATH."""
    report: dict[str, Any] = orjson.loads(path.read_bytes())
    return report


def report_ids(logs_dir: Path) -> list[int]:
    """The backtest ids that have a report in LOGS_DIR, ascending."""
    if not logs_dir.is_dir():
        return []
    found = (REPORT_NAME.match(entry.name) for entry in logs_dir.iterdir())
    return sorted(int(match.group(1)) for match in found if match)


def remove_partial_reports(logs_dir: Path) -> int:
    """Delete temp files a crash left mid-write (the report itself was never renamed in)."""
    removed = 0
    if logs_dir.is_dir():
        for leftover in logs_dir.glob(".backtest_*.json.*.tmp"):
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed
