"""The house rules a newcomer relies on: who may import whom, one source per shape, and
script facades that open nothing until they are used."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from core.api import TradeOut
from core.events import TRADE_FIELDS, TradeBody, TradeExecuted
from handlers.cli.parser import build_parser
from storage.sql.models import Trade
from tests.support.hub_process import hub_env
from tests.support.processes import REPO

PACKAGES = ("core", "bus", "storage", "handlers")
MAY_IMPORT = {
    "core": {"core"},
    "bus": {"core", "bus"},
    "storage": {"core", "storage"},
    "handlers": {"core", "bus", "storage", "handlers"},
}


def imported_packages(path: Path) -> set[str]:
    """The top-level project packages (and main) that the module at PATH imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                 else [])
        found |= {name.split(".")[0] for name in names}
    return found & {*PACKAGES, "main"}


@pytest.mark.parametrize("package", PACKAGES)
def test_each_folder_imports_only_what_it_may(package: str) -> None:
    for path in sorted((REPO / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        wrong = imported_packages(path) - MAY_IMPORT[package]
        assert not wrong, f"{path.relative_to(REPO)} imports {sorted(wrong)}"


def test_no_two_modules_share_a_name() -> None:
    names = [p.name for package in PACKAGES for p in (REPO / package).rglob("*.py")
             if p.name != "__init__.py" and "versions" not in p.parts]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_a_trades_fields_are_declared_once_and_derived_everywhere() -> None:
    body = tuple(TradeBody.model_fields)
    assert TRADE_FIELDS == ("event_id", *body)
    assert tuple(TradeExecuted.model_fields) == ("schema_version", *TRADE_FIELDS)
    assert tuple(TradeOut.model_fields) == ("id", *TRADE_FIELDS, "outcome")
    assert [column.name for column in Trade.__table__.columns] == ["id", *TRADE_FIELDS]
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = commands.choices["publish-trade"]
    flags = {action.dest for action in options._actions if action.option_strings} - {"help"}
    assert flags == set(TRADE_FIELDS) - {"timestamp"}


def test_importing_the_script_facade_opens_no_database(tmp_path: Path) -> None:
    env = hub_env(tmp_path)
    database = tmp_path / "data" / "hub.db"
    imported = subprocess.run([sys.executable, "-c", "import storage.database"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)
    assert imported.returncode == 0, imported.stderr
    assert not database.exists()
    opened = subprocess.run(
        [sys.executable, "-c", "from storage.database import SessionLocal, Trade\n"
         "with SessionLocal() as s: print(s.query(Trade).count())"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert opened.returncode == 0 and opened.stdout == "0\n", opened.stderr
    assert database.exists()
