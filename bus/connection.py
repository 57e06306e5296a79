"""Connecting to NATS, and finding the running hub's NATS from its state file."""

from __future__ import annotations

import logging
import ssl
from typing import Any

from nats.aio.client import Client
from nats.errors import NoRespondersError, NoServersError

from core.daemon_state import read_state
from core.errors import HubNotRunning
from core.settings import Settings
from core.subjects import HUB_PING

log = logging.getLogger(__name__)
PING_TIMEOUT = 3.0  # a hub that is there answers in milliseconds


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


async def connect_hub(settings: Settings, url: str, name: str, **options: Any) -> Client:
    """Connect to URL with the credentials and TLS of SETTINGS."""
    return await connect(url, name, **auth_options(settings), **options)


async def connect(url: str, name: str, *, first_attempts: int = -1, **options: Any) -> Client:
    """Connect to URL (comma-separated for a cluster): FIRST_ATTEMPTS per server before giving
    up (-1: keep trying, as a daemon should), and once connected, reconnect forever."""
    nc = Client()

    async def log_error(error: Exception) -> None:
        log.warning("nats: %s", error)

    async def log_disconnected() -> None:
        if not (nc.is_closed or nc.is_draining):  # a close we asked for is no news
            log.warning("nats: disconnected from %s; reconnecting", nc.connected_url)

    async def log_reconnected() -> None:
        log.info("nats: reconnected to %s", nc.connected_url)

    settings: dict[str, Any] = {
        "connect_timeout": 3, "max_reconnect_attempts": first_attempts,
        "reconnect_time_wait": 0.5,  # nats-py takes float seconds
        "error_cb": log_error, "disconnected_cb": log_disconnected,
        "reconnected_cb": log_reconnected, **options,
    }
    await nc.connect(servers=[s.strip() for s in url.split(",") if s.strip()], name=name, **settings)
    if "max_reconnect_attempts" not in options:
        nc.options["max_reconnect_attempts"] = -1  # nats-py reads it again on each disconnect
    return nc


async def connect_briefly(settings: Settings, url: str, name: str) -> Client:
    """For commands and scripts: a NATS that is not there is an error in seconds, in words."""
    try:
        return await connect_hub(settings, url, name, first_attempts=2, error_cb=_quiet)
    except (NoServersError, OSError, TimeoutError):
        raise HubNotRunning(f"cannot connect to NATS at {url}; is the hub running "
                            "(`python main.py`), or is HUB_NATS_URL right?") from None


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


def _recorded_url(settings: Settings) -> tuple[str | None, dict[str, Any] | None]:
    state = read_state(settings.state_file)
    url = settings.nats_url or (str(state["nats_url"]) if state else None)
    return url, state


async def find_hub(settings: Settings, name: str) -> Client | None:
    """A connection to a hub that answers a ping within a few seconds; None when none runs
    (so nothing holds the local store). A daemon recorded for this data folder that does not
    answer is an error, not a reason to open its store beside it."""
    url, state = _recorded_url(settings)
    if url is None:
        return None
    try:
        nc = await connect_hub(settings, url, name, first_attempts=1, allow_reconnect=False,
                               error_cb=_quiet)
    except (NoServersError, OSError, TimeoutError):
        if state is not None:
            raise HubNotRunning(f"the hub (pid {state['pid']}) recorded NATS at {url}, which does "
                                "not accept connections; restart it with `python main.py`") from None
        return None
    try:
        await nc.request(HUB_PING, b"{}", timeout=PING_TIMEOUT)
    except (NoRespondersError, TimeoutError):
        await nc.close()
        if state is not None:
            raise HubNotRunning(f"the hub (pid {state['pid']}) does not answer on {url} within "
                                f"{PING_TIMEOUT:g} s; if it is starting, try again") from None
        return None
    return nc


async def _quiet(_error: Exception) -> None:
    """A probe that fails says so once, in find_hub's own words."""
