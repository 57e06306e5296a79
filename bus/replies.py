"""Request/reply and plain subscriptions of the routing table, on core NATS.

A Responder answers one subject in the hub's queue group, so any instance answers each request
once. Requests are validated like events; every failure is answered with an error body rather
than left to time out, so a caller always hears why.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel

from bus.codec import decode
from core.errors import HubError, InvalidEvent, NotFound

log = logging.getLogger(__name__)
QUEUE_GROUP = "trade-hub"
MAX_REQUEST_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Responder:
    """One request/reply subject: the request's model and what answers it."""

    subject: str
    request: type[BaseModel]
    answer: Callable[[Any], Awaitable[BaseModel]]


@dataclass(frozen=True)
class Listener:
    """One plain subscription; on_demand ones are opened by their owner only while needed."""

    subject: str
    callback: Callable[[Msg], Awaitable[None]]
    on_demand: bool = False


def error_body(code: str, message: str) -> bytes:
    """The answer to a request that could not be served."""
    return orjson.dumps({"error": code, "message": message})


async def _reply(responder: Responder, msg: Msg) -> bytes:
    try:
        request = decode(responder.request, msg.data, MAX_REQUEST_BYTES)
        return (await responder.answer(request)).model_dump_json().encode()
    except InvalidEvent as error:
        return error_body("invalid_request", str(error))
    except NotFound as error:
        return error_body("not_found", str(error))
    except HubError as error:
        return error_body("bad_request", str(error))
    except Exception:
        log.exception("%s: request failed", responder.subject)
        return error_body("internal_error", f"{responder.subject} failed; see the hub's log")


async def serve(nc: Client, responder: Responder) -> Subscription:
    """Answer RESPONDER's subject in the hub's queue group until unsubscribed."""

    async def answer(msg: Msg) -> None:
        if msg.reply:
            await msg.respond(await _reply(responder, msg))

    return await nc.subscribe(responder.subject, queue=QUEUE_GROUP, cb=answer)


async def request(nc: Client, subject: str, body: BaseModel, timeout: float) -> dict[str, Any]:
    """Ask SUBJECT; the answer as a dict (an error answer has "error" and "message")."""
    reply = await nc.request(subject, body.model_dump_json().encode(), timeout=timeout)
    answer: dict[str, Any] = orjson.loads(reply.data)
    return answer


AnswerT = TypeVar("AnswerT", bound=BaseModel)


async def ask(nc: Client, subject: str, body: BaseModel, answer: type[AnswerT], timeout: float = 30) -> AnswerT:
    """Ask SUBJECT for an ANSWER; an error answer is raised as a HubError with its message."""
    found = await request(nc, subject, body, timeout)
    if "error" in found:
        raise HubError(found["message"])
    return answer.model_validate(found)
