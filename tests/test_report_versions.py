"""Report files and the API share one vocabulary, and reports of version 1 still import.

tests/data/backtest_report_v1.json was written by the hub before REPORT_VERSION 2, when the
report called the trade log `trades` and the metric reasons `reasons`.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.backtest_report import REPORT_VERSION, current_report, event_from_report
from core.errors import BadRequest
from storage.reports import read_report, report_path
from tests.support.hub_process import HubProcess, hub_env
from tests.support.processes import main_py
from tests.support.waiting import wait_until

V1_REPORT = Path(__file__).parent / "data" / "backtest_report_v1.json"
REPORT_ONLY = {"report_version", "periods_per_year", "risk_free_rate"}  # inputs the API omits
API_ONLY = {"total_return", "sharpe", "max_drawdown", "trades"}  # the summary's headline columns


def v1_report(**changes: Any) -> dict[str, Any]:
    """The version-1 report, with CHANGES."""
    return {**read_report(V1_REPORT), **changes}


def stored_detail(hub: HubProcess, backtest_id: int) -> dict[str, Any] | None:
    """GET /api/backtests/ID, or None while it is not stored."""
    try:
        detail: dict[str, Any] = hub.get(f"/api/backtests/{backtest_id}")
        return detail
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def rewritten(path: Path) -> bool:
    """Whether the report at PATH is in the current version (the import writes it again)."""
    return path.is_file() and read_report(path).get("report_version") == REPORT_VERSION


def assert_report_matches_detail(report: dict[str, Any], detail: dict[str, Any]) -> None:
    """The report and the API name the same things alike and agree on them."""
    assert set(report) - REPORT_ONLY == set(detail) - API_ONLY
    for key in set(report) - REPORT_ONLY - {"trade_log", "equity_curve"}:
        assert report[key] == detail[key], key
    assert len(report["trade_log"]) == len(detail["trade_log"])
    for in_file, in_api in zip(report["trade_log"], detail["trade_log"]):
        assert in_file == {key: in_api[key] for key in in_file}
    curve = detail["equity_curve"]  # the same curve: points in the file, columns in the API
    assert [p["timestamp"] for p in report["equity_curve"]] == curve["timestamp"]
    assert [p["value"] for p in report["equity_curve"]] == curve["value"]
    assert [p.get("benchmark") for p in report["equity_curve"]] == curve["benchmark"]


def test_version_1_report_reads_with_the_new_names() -> None:
    old = v1_report()
    assert old["report_version"] == 1 and "trades" in old and "reasons" in old
    report = current_report(old)
    assert report["report_version"] == REPORT_VERSION == 2
    assert report["trade_log"] == old["trades"] and report["metric_reasons"] == old["reasons"]
    assert "trades" not in report and "reasons" not in report
    assert event_from_report(old) == event_from_report(report)
    assert len(event_from_report(old).trades) == 3


def test_report_of_an_unknown_version_is_refused_clearly() -> None:
    with pytest.raises(BadRequest, match="report_version 3 is not one this hub reads"):
        event_from_report(current_report({**v1_report(), "report_version": 3}))


def test_version_1_report_is_imported_at_start_up_and_by_import_report(tmp_path: Path) -> None:
    env = hub_env(tmp_path)
    logs = Path(env["HUB_LOGS_DIR"])
    logs.mkdir()
    at_start = report_path(logs, 5)
    at_start.write_bytes(V1_REPORT.read_bytes())
    newer = logs / "backtest_6.json"  # from a newer hub: skipped, the others still imported
    newer.write_bytes(orjson.dumps(v1_report(id=6, event_id="bt-v3", report_version=3)))
    before = main_py("view-trades", "5", env=env)
    assert before.returncode == 0, before.stderr
    assert before.stdout.startswith("Backtest 5: rsi_reversion  2024-01-01 → 2024-01-06")
    assert "3 fills, realized P/L 97.00, fees 3.00" in before.stdout
    assert "open at the end: long 2 ETH @ 50.00" in before.stdout

    hub = HubProcess(env)
    try:
        wait_until(lambda: stored_detail(hub, 5) and rewritten(at_start))
        detail = stored_detail(hub, 5)
        assert detail is not None
        old = v1_report()
        assert detail["event_id"] == "bt-v1" and detail["created_at"] == old["created_at"]
        assert detail["metric_reasons"] == old["reasons"] and detail["metric_reasons"]
        assert [t["pnl"] for t in detail["trade_log"]] == [t["pnl"] for t in old["trades"]]
        report = read_report(at_start)
        assert "trades" not in report and "reasons" not in report
        assert_report_matches_detail(report, detail)
        after = hub.cli("view-trades", "5")  # the same table from the version-2 file
        assert after.returncode == 0 and after.stdout == before.stdout, after.stderr
        wait_until(lambda: f"report {newer} not imported: report_version 3" in hub.output)
        assert stored_detail(hub, 6) is None and read_report(newer)["report_version"] == 3

        elsewhere = tmp_path / "kept" / "old-report.json"
        elsewhere.parent.mkdir()
        elsewhere.write_bytes(orjson.dumps(v1_report(id=9, event_id="bt-v1-copy")))
        imported = hub.cli("import-report", str(elsewhere))
        assert imported.returncode == 0, imported.stderr
        assert imported.stdout.strip() == "imported backtest 9 (rsi_reversion)"
        copy = stored_detail(hub, 9)
        assert copy is not None and copy["metric_reasons"] == old["reasons"]
        assert_report_matches_detail(read_report(report_path(logs, 9)), copy)
        refused = hub.cli("import-report", str(newer))
        assert refused.returncode == 1 and "report_version 3 is not one this hub reads" in refused.stderr
    finally:
        assert hub.stop() == 0
