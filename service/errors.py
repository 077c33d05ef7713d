"""Gateway errors and the one table mapping every failure to an HTTP status and a JSON body.

Core raises typed ``MimicMotionError``s and never knows a status code; this module is the only
place that does. Every error response is ``{"error": {"code", "message"[, "details"]}}``.
"""

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.contract.params import DEFAULT_MODEL, PARAMS_BY_MODEL
from core.contract.transitions import InvalidTransitionError
from core.errors import (
    ConfigurationError,
    IdempotencyConflictError,
    InputFetchError,
    InvalidCursorError,
    InvalidUploadError,
    JobNotFoundError,
    MediaError,
    MimicMotionError,
    QueueLimitError,
    RedeliveryLimitError,
    StorageError,
    UnsupportedMediaTypeError,
    UploadLimitError,
    UploadTooLargeError,
)
from service.schemas import ErrorBody

logger = logging.getLogger(__name__)


class UnauthorizedError(MimicMotionError):
    """No API key, or one the gateway does not know."""

    code = "unauthorized"


class QueueUnavailableError(MimicMotionError):
    """The job could not be handed to the task queue; it was marked failed."""

    code = "queue_unavailable"


class FileLinkError(MimicMotionError):
    """A /files link whose signature is wrong or whose time is up."""

    code = "invalid_file_link"


# Checked in order along the exception's class hierarchy: the most specific class wins.
STATUS_BY_ERROR: dict[type[MimicMotionError], int] = {
    UnauthorizedError: 401,
    FileLinkError: 403,
    JobNotFoundError: 404,
    InvalidTransitionError: 409,
    IdempotencyConflictError: 409,
    InvalidCursorError: 422,
    InputFetchError: 422,
    UploadTooLargeError: 413,
    UnsupportedMediaTypeError: 415,
    InvalidUploadError: 422,
    MediaError: 422,
    QueueLimitError: 429,
    UploadLimitError: 429,
    RedeliveryLimitError: 429,
    QueueUnavailableError: 503,
    StorageError: 503,
    ConfigurationError: 500,
}

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 413: "payload_too_large",
               415: "unsupported_media_type"}


def status_for(error: MimicMotionError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def error_response(
    status: int, code: str, message: str, *, details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _field_name(loc: tuple[int | str, ...]) -> str:
    """``("body", "params", "fps")`` -> ``params.fps``; query and path names keep their place."""
    parts = [str(part) for part in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def allowed_range(loc: tuple[int | str, ...], model: str = DEFAULT_MODEL) -> str | None:
    """The allowed range of a field of ``model``'s parameters, read from their class, e.g. ``1 to 100``."""
    params_type = PARAMS_BY_MODEL.get(model)
    if params_type is None or len(loc) != 3 or loc[:2] != ("body", "params") or loc[2] not in params_type.model_fields:
        return None
    bounds: dict[str, Any] = {}
    for constraint in params_type.model_fields[str(loc[2])].metadata:
        for name in ("ge", "le", "multiple_of"):
            if getattr(constraint, name, None) is not None:
                bounds[name] = getattr(constraint, name)
    if "ge" not in bounds or "le" not in bounds:
        return None
    text = f"{bounds['ge']} to {bounds['le']}"
    return text + (f", a multiple of {bounds['multiple_of']}" if "multiple_of" in bounds else "")


def _describe(error: dict[str, Any], model: str = DEFAULT_MODEL) -> str:
    loc = tuple(error.get("loc", ()))
    message = f"{_field_name(loc)}: {error.get('msg', 'invalid')}"
    if (allowed := allowed_range(loc, model)) is not None:
        message += f" (allowed: {allowed})"
    if loc[:2] == ("body", "params"):
        message += f" (model {model})"
    return message


def _validation_details(errors: list[dict[str, Any]], model: str = DEFAULT_MODEL) -> list[dict[str, Any]]:
    # Drop pydantic's echo of the input and its URLs: inputs may be large, and URLs are noise.
    return [{"field": _field_name(tuple(e.get("loc", ()))), "message": _describe(e, model), "type": e.get("type")}
            for e in errors]


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [dict(e) for e in exc.errors()]
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "invalid_json", "the request body is not valid JSON")
    body_refused = any(tuple(e.get("loc", ()))[:1] == ("body",) for e in errors)
    if body_refused and not request.headers.get("content-type", "").startswith("application/json"):
        return error_response(415, "unsupported_media_type", "send the request body as application/json")
    model = _model_of(exc.body)
    message = "; ".join(_describe(e, model) for e in errors[:3]) or "invalid request"
    return error_response(422, "invalid_request", message, details=_validation_details(errors, model))


def _model_of(body: Any) -> str:
    """The model a refused job body names (its params were checked against that model's)."""
    model = body.get("model", DEFAULT_MODEL) if isinstance(body, dict) else DEFAULT_MODEL
    return model if isinstance(model, str) and model in PARAMS_BY_MODEL else DEFAULT_MODEL


def _headers_for(exc: MimicMotionError) -> dict[str, str] | None:
    if isinstance(exc, QueueLimitError | UploadLimitError | RedeliveryLimitError):
        return {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, UnauthorizedError):
        return {"WWW-Authenticate": "Bearer"}
    return None


async def _on_domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MimicMotionError)
    status = status_for(exc)
    if status >= 500 and not isinstance(exc, QueueUnavailableError | StorageError):
        logger.error("unexpected %s: %s", type(exc).__name__, exc.message, exc_info=exc)
        return error_response(500, "internal_error", "internal error")
    return error_response(status, exc.code, exc.message, headers=_headers_for(exc))


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}) or None)


async def _on_redis_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("job store unavailable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, "store_unavailable", "the job store is unavailable; try again shortly")


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(MimicMotionError, _on_domain_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(redis.RedisError, _on_redis_error)
    app.add_exception_handler(Exception, _on_unexpected)


_DESCRIPTIONS = {
    400: "Malformed JSON",
    401: "Missing or unknown API key",
    403: "Link signature wrong or expired",
    404: "No such job (or another key's)",
    409: "Conflicts with the job's state or an earlier request with this Idempotency-Key",
    413: "The body or the uploaded file is over this server's limit",
    415: "The body is not application/json, or the upload is neither an image nor a video",
    422: "Invalid request; the message names the field and the allowed range",
    429: "Too many queued jobs (or uploads in flight) for this key; see Retry-After",
    503: "Job store, queue or storage unavailable",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the JSON error body for ``statuses``."""
    return {status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]} for status in statuses}
