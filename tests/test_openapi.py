"""The OpenAPI document, and schemathesis against a running daemon: no 5xx, no answer that
breaks its own schema, every status documented."""

from __future__ import annotations

import os
from collections.abc import Iterator

import orjson
import pytest
import schemathesis
from schemathesis.checks import positive_data_acceptance
from hypothesis import HealthCheck, given, settings

from bus.embedded import free_port
from tests.test_daemon import Daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One `python main.py` for the module, holding a trade so ids can be found."""
    home = tmp_path_factory.mktemp("openapi")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_DATA_DIR=str(home / "data"), HUB_LOGS_DIR=str(home / "logs"),
               HUB_KNOWLEDGE_DIR=str(home / "knowledge"), HUB_HTTP_PORT=str(free_port()),
               HUB_NATS_PORT=str(free_port()))
    hub = Daemon(env)
    published = hub.cli("publish-trade", "--asset", "BTC", "--action", "BUY", "--price", "1",
                        "--quantity", "1", "--confidence", "50", "--reasoning", "seed")
    assert published.returncode == 0, published.stderr
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def api_schema(daemon: Daemon) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{daemon.http}/api/openapi.json")


def test_the_document_is_openapi_3_1_from_the_views_models(daemon: Daemon) -> None:
    document = daemon.get("/api/openapi.json")
    assert document["openapi"] == "3.1.0"
    trades = document["paths"]["/api/trades"]["get"]
    assert {p["name"] for p in trades["parameters"]} >= {"asset", "action", "since", "until", "limit", "cursor"}
    limit = next(p for p in trades["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 500  # from TradeQuery, not written by hand
    assert "TradeOut" in document["components"]["schemas"]
    assert orjson.dumps(document)  # JSON as served


def test_api_conforms_to_its_openapi_document(api_schema: schemathesis.BaseSchema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) == 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def conforms(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            # No 5xx, every status documented, every answer matching its schema. A schema-valid
            # request may still be refused on purpose (cursor with offset, an undecodable cursor).
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        conforms()
