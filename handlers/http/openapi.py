"""The OpenAPI 3.1 document of the REST API, built from the pydantic models the views use.

The route table (handlers/http/routes.py) says which model validates each endpoint's query
string and which describes its answer; parameters and components are generated from those
models, so nothing is hand-kept and no route goes undocumented.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from aiohttp.typedefs import Handler
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from core.api import ErrorBody
from core.events import EVENT_MODELS


@dataclass(frozen=True)
class Endpoint:
    """One row of the route table: path, view, summary, query model, answer model, errors."""

    path: str  # aiohttp's, e.g. /api/trades/{id:\\d+}
    view: Handler
    summary: str
    query: type[BaseModel] | None = None
    answer: type[BaseModel] | None = None  # None: any JSON object
    errors: tuple[int, ...] = ()
    method: str = "GET"
    body: type[BaseModel] | None = None  # the JSON body a POST takes

    @property
    def document_path(self) -> str:
        """The path as OpenAPI spells it: {id} without aiohttp's pattern."""
        return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", self.path)


REF = "#/components/schemas/{model}"
# The {name}s that exist, where the hub knows them in advance: a path segment is always a
# string, so only the enum tells a client (and schemathesis) a known event from a 404.
KNOWN_NAMES = {"/api/schemas/{name}": list(EVENT_MODELS)}


class QueryJsonSchema(GenerateJsonSchema):
    """The JSON Schema of a query model as parse_query reads it: lax, from strings."""

    def datetime_schema(self, schema: core_schema.DatetimeSchema) -> JsonSchemaValue:
        # Lax mode takes epoch seconds for a datetime, as the events' timestamps do (README:
        # "Timestamps may also be epoch seconds"). Documented here, once, for every time
        # parameter whoever declares it, rather than the server narrowed to strings: bots
        # send one clock to both.
        return {"anyOf": [
            {"type": "string", "format": "date-time", "description": "ISO 8601; naive = UTC"},
            {"type": "number", "description": "epoch seconds (above 2e10: milliseconds)"},
        ]}


def _optional(schema: dict[str, Any]) -> dict[str, Any]:
    # A query parameter is absent rather than null: drop the null branch of Optional fields.
    # Pydantic flattens X | None into one anyOf, so X may be a union itself (a TimeParam).
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    if not branches:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**rest, **branches[0]} if len(branches) == 1 else {**rest, "anyOf": branches}


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    if "{id" in endpoint.path:
        parameters.append({"name": "id", "in": "path", "required": True,
                           "schema": {"type": "integer", "minimum": 0}})
    if "{name" in endpoint.path:
        known = KNOWN_NAMES.get(endpoint.document_path)
        parameters.append({"name": "name", "in": "path", "required": True,
                           "schema": {"type": "string", **({"enum": known} if known else {})}})
    if endpoint.query is not None:
        schema = endpoint.query.model_json_schema(ref_template=REF, schema_generator=QueryJsonSchema)
        required = set(schema.get("required", []))
        for name, field in schema["properties"].items():
            parameter = {"name": name, "in": "query", "required": name in required,
                         "schema": field if name in required else _optional(field)}
            if parameter["schema"].get("type") == "array":
                # parse_query refuses a repeated parameter, so a list comes comma-separated
                # in one (?group_by=source,strategy): OpenAPI's form style, not exploded.
                parameter |= {"style": "form", "explode": False}
            parameters.append(parameter)
    return parameters


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    answer = ({"$ref": REF.format(model=endpoint.answer.__name__)} if endpoint.answer
              else {"type": "object"})
    responses = {"200": {"description": "OK", **_json(answer)}}
    for status in endpoint.errors:
        responses[str(status)] = {"description": "error", **_json({"$ref": REF.format(model="ErrorBody")})}
    operation: dict[str, Any] = {"summary": endpoint.summary, "parameters": _parameters(endpoint),
                                 "responses": responses}
    if endpoint.body is not None:
        # Required when the model has a required field (no body is read as {}).
        required = any(field.is_required() for field in endpoint.body.model_fields.values())
        operation["requestBody"] = {"required": required,
                                    **_json({"$ref": REF.format(model=endpoint.body.__name__)})}
    return operation


def _paths(endpoints: tuple[Endpoint, ...]) -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.document_path, {})[endpoint.method.lower()] = _operation(endpoint)
    return paths


@cache
def openapi_document(endpoints: tuple[Endpoint, ...]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the route table ENDPOINTS (built once)."""
    models = {e.answer for e in endpoints if e.answer} | {ErrorBody}
    models |= {e.body for e in endpoints if e.body}
    queries = {e.query for e in endpoints if e.query}
    _, definitions = models_json_schema(
        [(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)], ref_template=REF)
    _, query_definitions = models_json_schema(
        [(m, "validation") for m in sorted(queries, key=lambda m: m.__name__)], ref_template=REF,
        schema_generator=QueryJsonSchema)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Trade Hub", "version": "1",
                 "description": "REST API of the event backbone for AI trading agents."},
        "paths": _paths(endpoints),
        "components": {
            "schemas": {**definitions.get("$defs", {}), **query_definitions.get("$defs", {})},
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                                          "description": "only when HUB_API_TOKEN is set"}},
        },
    }
