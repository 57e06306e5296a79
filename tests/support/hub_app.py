"""The hub's aiohttp app in the test's own process, with an HTTP client for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from core.settings import Settings
from main import build_app


def hub_settings(tmp_path: Path, nats_url: str, database_url: str, **overrides: Any) -> Settings:
    """Settings of a hub isolated in TMP_PATH (with an empty knowledge folder unless given)."""
    overrides.setdefault("knowledge_dir", tmp_path / "knowledge")
    return Settings(data_dir=tmp_path / "data", logs_dir=tmp_path / "logs",
                    database_url=database_url, nats_url=nats_url, **overrides)


@dataclass
class Hub:
    """A running hub app and an HTTP client for it."""

    settings: Settings
    http: TestClient  # type: ignore[type-arg]

    @property
    def app(self) -> Any:
        return self.http.app

    async def stop(self) -> None:
        await self.http.close()


async def start_hub(settings: Settings) -> Hub:
    """Start the hub's aiohttp app (all its resources) on a free loopback port."""
    client = TestClient(TestServer(build_app(settings), host="127.0.0.1"))
    await client.start_server()
    return Hub(settings, client)
