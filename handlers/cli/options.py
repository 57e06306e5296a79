"""Command-line options derived from the event models, and their errors in words.

A pydantic error on the CLI's input becomes one line naming the option and its rule, e.g.
`--confidence must be less than or equal to 100 (got 150)`, raised as UsageError (exit 2).
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from core.errors import UsageError

ModelT = TypeVar("ModelT", bound=BaseModel)
NUMBERS = {float, int}


def option_name(field: str) -> str:
    """The flag of a model field: confidence -> --confidence, event_id -> --event-id."""
    return "--" + field.replace("_", "-")


def add_model_options(parser: argparse.ArgumentParser, model: type[BaseModel],
                      skip: Iterable[str] = (), **defaults: Any) -> None:
    """One option per field of MODEL (bar SKIP): required as the model requires it unless
    DEFAULTS names it, typed as a number where the field is one; the model judges the values."""
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        kind = field.annotation
        number = kind in NUMBERS or any(arg in NUMBERS for arg in typing.get_args(kind))
        choices = typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else None
        described = field.description or ""
        if choices:
            described = " or ".join(map(str, choices)) + (f"; {described}" if described else "")
        parser.add_argument(option_name(name), dest=name,
                            required=field.is_required() and name not in defaults,
                            type=float if number else str, default=defaults.get(name),
                            help=described or None)


def _rule(message: str) -> str:
    # pydantic says "Input should be …" / "Value error, …": the CLI says what the option must be.
    replacements = (("Input should be ", "must be "), ("String should ", "must "), ("List should ", "must "),
                    ("Value error, ", ""))
    for prefix, replacement in replacements:
        if message.startswith(prefix):
            return replacement + message[len(prefix):]
    return message


def describe_options(error: ValidationError, flags: dict[str, str] | None = None) -> str:
    """One line naming each bad option and the rule it breaks, with the value given."""
    parts = []
    for item in error.errors(include_url=False):
        field = str(item["loc"][0]) if item["loc"] else ""
        flag = (flags or {}).get(field, option_name(field) if field else "input")
        given = item.get("input")
        shown = f" (got {given!r})" if item["type"] != "missing" and not isinstance(given, dict) else ""
        rule = "is required" if item["type"] == "missing" else _rule(item["msg"])
        parts.append(f"{flag} {rule}{shown}")
    return "; ".join(parts)


def validated(model: type[ModelT], values: dict[str, Any],
              flags: dict[str, str] | None = None) -> ModelT:
    """VALUES as MODEL, or UsageError naming the options (FLAGS: field -> how it is typed)."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise UsageError(describe_options(error, flags)) from None
