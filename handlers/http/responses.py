"""HTTP plumbing shared by the views: orjson responses and errors as JSON with a 4xx status."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ValidationError

from core.errors import BadRequest, NotFound, Unauthorized

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)
STATUS_OF = {NotFound: 404, BadRequest: 400}
CODE_OF = {404: "not_found", 400: "bad_request"}
MAX_ID = 2**63 - 1  # BIGINT: a larger id cannot be stored, so it names nothing


def json_response(body: Any, status: int = 200) -> web.Response:
    """A JSON response rendered by orjson (pydantic models included)."""
    if isinstance(body, BaseModel):
        data = body.__pydantic_serializer__.to_json(body)
    else:
        data = orjson.dumps(body, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS)
    return web.Response(body=data, status=status, content_type="application/json")


def error_response(status: int, error: str, message: str, details: Any = None) -> web.Response:
    """The ErrorBody every failing request gets."""
    body: dict[str, Any] = {"error": error, "message": message}
    if details is not None:
        body["details"] = details
    return json_response(body, status)


def path_id(request: web.Request, what: str) -> int:
    """The {id} of the path (the route admits digits only); NotFound beyond what a row can hold."""
    value = int(request.match_info["id"])
    if value > MAX_ID:
        raise NotFound(f"no {what} with id {value}")
    return value


def parse_query(model: type[ModelT], request: web.Request) -> ModelT:
    """Validate the query string into MODEL (422 with the field errors if it does not fit)."""
    repeated = sorted({key for key in request.query if len(request.query.getall(key)) > 1})
    if repeated:
        raise BadRequest(f"give each parameter once; repeated: {', '.join(repeated)}")
    return model.model_validate(dict(request.query))


async def parse_body(model: type[ModelT], request: web.Request) -> ModelT:
    """The JSON body as MODEL (422 with the field errors if it does not fit; none = {})."""
    raw = await request.read()
    try:
        document = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"the body is not JSON: {error}") from None
    return model.model_validate(document)


def _validation_details(error: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
        for e in error.errors(include_url=False, include_input=False, include_context=False)
    ]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map the hub's exceptions and aiohttp's HTTP errors to JSON error bodies."""
    try:
        return await handler(request)
    except ValidationError as error:
        return error_response(422, "invalid_parameters", "the request's parameters are not valid",
                              _validation_details(error))
    except Unauthorized as error:
        response = error_response(401, "unauthorized", str(error))
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    except (NotFound, BadRequest) as error:
        status = next(s for kind, s in STATUS_OF.items() if isinstance(error, kind))
        return error_response(status, CODE_OF[status], str(error))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = error.reason.lower().replace(" ", "_")
        response = error_response(error.status, code, f"{error.reason}: {request.method} {request.path}")
        if "Allow" in error.headers:  # a 405 must say which methods the resource takes
            response.headers["Allow"] = error.headers["Allow"]
        return response
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal_error", "the hub failed to answer; see its log")
