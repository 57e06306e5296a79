"""Connecting to NATS, and finding the running hub's NATS from its state file."""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path
from typing import Any

import orjson
from nats.aio.client import Client

from bus.embedded import pid_alive
from core.errors import HubNotRunning
from core.settings import Settings

log = logging.getLogger(__name__)


def _tls(settings: Settings) -> ssl.SSLContext | None:
    if settings.nats_tls_ca is None and settings.nats_tls_cert is None:
        return None
    context = ssl.create_default_context(cafile=settings.nats_tls_ca)
    if settings.nats_tls_cert is not None:
        context.load_cert_chain(settings.nats_tls_cert, settings.nats_tls_key)
    return context


def auth_options(settings: Settings) -> dict[str, Any]:
    """nats-py connect options for the credentials and TLS the settings name."""
    secret = {"password": settings.nats_password, "token": settings.nats_token}
    options: dict[str, Any] = {k: v.get_secret_value() for k, v in secret.items() if v is not None}
    if settings.nats_user:
        options["user"] = settings.nats_user
    if settings.nats_creds:
        options["user_credentials"] = str(settings.nats_creds)
    if settings.nats_nkey_seed:
        options["nkeys_seed"] = str(settings.nats_nkey_seed)
    if (context := _tls(settings)) is not None:
        options["tls"] = context
    return options


async def connect_hub(settings: Settings, url: str, name: str) -> Client:
    """Connect to URL with the credentials and TLS of SETTINGS."""
    return await connect(url, name, **auth_options(settings))


async def connect(url: str, name: str, **options: Any) -> Client:
    """Connect to URL (comma-separated for a cluster), reconnecting forever once connected."""
    nc = Client()

    async def log_error(error: Exception) -> None:
        log.warning("nats: %s", error)

    async def log_disconnected() -> None:
        if not (nc.is_closed or nc.is_draining):  # a close we asked for is no news
            log.warning("nats: disconnected from %s; reconnecting", nc.connected_url)

    async def log_reconnected() -> None:
        log.info("nats: reconnected to %s", nc.connected_url)

    await nc.connect(
        servers=[server.strip() for server in url.split(",") if server.strip()],
        name=name,
        connect_timeout=3,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,  # type: ignore[arg-type]  # nats-py takes float seconds
        error_cb=log_error,
        disconnected_cb=log_disconnected,
        reconnected_cb=log_reconnected,
        **options,
    )
    return nc


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


def resolve_nats_url(settings: Settings) -> str:
    """HUB_NATS_URL if set, else the URL the running daemon recorded."""
    if settings.nats_url:
        return settings.nats_url
    state = read_state(settings.state_file)
    if state is None:
        raise HubNotRunning(
            f"no running hub found (no live daemon recorded in {settings.state_file}); "
            "start one with `python main.py`, or set HUB_NATS_URL"
        )
    return str(state["nats_url"])
