"""Where the running daemon is: its pid and URLs, recorded in data/hub.json for the CLI and
for scripts (the KnowledgeIndexer snippet) to find it without being told."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson


def pid_alive(pid: int) -> bool:
    """Whether a process with PID exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_state(path: Path, **fields: Any) -> None:
    """Record the daemon's pid and URLs for CLI commands (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(orjson.dumps({"pid": os.getpid(), **fields}, option=orjson.OPT_INDENT_2))
    temporary.replace(path)


def read_state(path: Path) -> dict[str, Any] | None:
    """The running daemon's recorded state, or None if there is no live daemon."""
    try:
        state: dict[str, Any] = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return state if pid_alive(int(state.get("pid", 0))) else None


def clear_state(path: Path) -> None:
    """Forget the state file if it is ours."""
    state = read_state(path)
    if state is not None and state.get("pid") == os.getpid():
        path.unlink(missing_ok=True)
