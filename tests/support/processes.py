"""Running Python the way a user does: `python main.py …` and the helper programs of
tests/support/programs, each in a fresh interpreter started in the repository root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def main_py(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python main.py ARGS` to its end and capture what it printed."""
    return subprocess.run([sys.executable, "main.py", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def program(name: str, *args: str) -> list[str]:
    """The command line of the helper program tests/support/programs/NAME.py (run it in REPO).

    As a module (`python -m`), so that the repository root is on its path, as for a user's
    script beside main.py.
    """
    return [sys.executable, "-m", f"tests.support.programs.{name}", *args]


def run_program(name: str, *args: str, env: dict[str, str] | None = None, stdin: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a helper program to its end, feeding it STDIN, and capture what it printed."""
    return subprocess.run(program(name, *args), cwd=REPO, env=env, input=stdin, capture_output=True,
                          text=True, timeout=timeout)


def start_program(name: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    """Start a helper program in the background (POPEN: Popen's stdout=, stderr=, ...)."""
    return subprocess.Popen(program(name, *args), cwd=REPO, text=True, **popen)
