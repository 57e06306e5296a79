"""Encoding events for the wire and decoding what arrives, with readable reasons on failure."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from core.errors import InvalidEvent

ModelT = TypeVar("ModelT", bound=BaseModel)


def encode(model: BaseModel) -> bytes:
    """JSON bytes of MODEL as it goes on the wire."""
    return orjson.dumps(model.model_dump(mode="json"))


def describe(error: ValidationError) -> str:
    """One line naming each bad field and what is wrong with it."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "event"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def decode(model: type[ModelT], data: bytes, max_bytes: int) -> ModelT:
    """Parse DATA into MODEL; InvalidEvent with the reason when it is not one."""
    if len(data) > max_bytes:
        raise InvalidEvent(f"payload is {len(data)} bytes; the limit is {max_bytes}")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise InvalidEvent(f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidEvent(f"expected a JSON object, got {type(document).__name__}")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise InvalidEvent(describe(error)) from None


def dead_letter(subject: str, data: bytes, reason: str) -> bytes:
    """The DLQ record: the original payload untouched (base64 if not UTF-8) and why it failed."""
    record: dict[str, Any] = {
        "subject": subject,
        "reason": reason,
        "rejected_at": datetime.now(timezone.utc).isoformat(),
    }
    try:
        record["payload"], record["encoding"] = data.decode(), "utf-8"
    except UnicodeDecodeError:
        record["payload"], record["encoding"] = base64.b64encode(data).decode(), "base64"
    return orjson.dumps(record)


def event_id_of(data: bytes) -> str | None:
    """The event_id in a payload, if it has a readable one (for logging what was rejected)."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    event_id = document.get("event_id") if isinstance(document, dict) else None
    return event_id[:128] if isinstance(event_id, str) else None
