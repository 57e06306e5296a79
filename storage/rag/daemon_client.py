"""A script's KnowledgeIndexer beside a running daemon: the daemon holds the store, so the
script asks it (POST /api/knowledge/index) rather than open the same embedded Chroma folder."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import orjson

from core.daemon_state import read_state
from core.errors import HubError
from core.knowledge import IndexStats
from core.settings import Settings

TIMEOUT = 3600.0  # a large folder takes minutes to embed; the daemon answers when done


def other_daemon(settings: Settings) -> dict[str, Any] | None:
    """The running daemon recorded for this data folder, unless it is this process."""
    state = read_state(settings.state_file)
    return state if state is not None and state.get("pid") != os.getpid() else None


def index_through_daemon(
    daemon: dict[str, Any], settings: Settings, domains: Sequence[str] | None
) -> IndexStats:
    """Ask DAEMON to index DOMAINS (None: all); its stats, as a local run would return them."""
    request = urllib.request.Request(
        f"{daemon['http_url']}/api/knowledge/index", method="POST",
        data=orjson.dumps({"domains": list(domains) if domains is not None else None}),
        headers={"Content-Type": "application/json", **_token(settings)})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return IndexStats.model_validate_json(response.read())
    except urllib.error.HTTPError as error:
        raise HubError(f"the running hub refused to index: {_message(error)}") from None
    except OSError as error:
        raise HubError(f"the running hub (pid {daemon['pid']}) holds the knowledge store but did "
                       f"not answer at {daemon['http_url']}: {error}") from None


def _token(settings: Settings) -> dict[str, str]:
    token = settings.api_token
    return {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}


def _message(error: urllib.error.HTTPError) -> str:
    try:
        return str(orjson.loads(error.read()).get("message", error.reason))
    except (orjson.JSONDecodeError, AttributeError):
        return str(error.reason)
