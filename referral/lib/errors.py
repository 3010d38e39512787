"""One error hierarchy with stable codes, rendered once as RFC 9457 problem+json.

A client branches on `code` (also the last segment of `type`); `detail` is for people.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotFoundException,
    SerializationException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

from referral.lib.logging import loggable_path

PROBLEM_BASE = "https://referral.dev/problems/"
log = structlog.get_logger("referral.errors")


class AppError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"
    headers: dict[str, str] = {}  # response headers the status calls for

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        self.extra = extra


class InvalidInput(AppError):
    status = 422
    code = "invalid_input"
    title = "Invalid input"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"
    title = "Missing or invalid API key"
    # RFC 9110: a 401 names the scheme to authenticate with.
    headers = {"www-authenticate": 'Bearer realm="referral"'}


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    title = "This key may not do that"


class NotFound(AppError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(AppError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(AppError):
    """A body a handler streams (an import file) beyond its own limit."""

    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(AppError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    request: Request | None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if request is not None:
        body["instance"] = request.url.path
    body.update(extra)
    return Response(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


def _app_error(request: Request, exc: AppError) -> Response[dict[str, Any]]:
    return problem(
        exc.status, exc.code, exc.title, exc.detail, request, headers=exc.headers, **exc.extra
    )


def _validation_error(request: Request, exc: ValidationException) -> Response[dict[str, Any]]:
    errors = []
    for item in exc.extra or []:
        if isinstance(item, dict):
            error = {k: item[k] for k in ("key", "message", "source") if k in item}
            if error.get("source") == "body" and error.get("message") == "'data'":
                # Litestar's words for "no body at all" are a bare KeyError.
                error["message"] = "The request body is missing: send a JSON object"
            errors.append(error)
    detail = exc.detail if exc.detail and exc.detail != "Bad Request" else "Request is invalid"
    if errors and "message" in errors[0]:
        first = errors[0]
        where = f" ({first['key']})" if first.get("key") else ""
        detail = f"{first['message']}{where}"
    return problem(400, "validation_error", "Request is invalid", detail, request, errors=errors)


_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    429: ("too_many_requests", "Too many requests"),
    503: ("service_unavailable", "Service unavailable"),
}


def _http_error(request: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    code, title = _HTTP_CODES.get(status, ("http_error", "HTTP error"))
    if status >= 500 and status not in _HTTP_CODES:
        return _internal_error(request, exc)
    detail = exc.detail or title
    if isinstance(exc, NotFoundException) and detail == "Not Found":
        detail = f"No route for {request.method} {request.url.path}"
    if isinstance(exc.__cause__, SerializationException) and not detail.startswith("JSON"):
        # msgspec alone says e.g. "Input data was truncated": name what was wrong.
        detail = f"JSON is malformed: {detail}"
    if status == 405 and detail == "Method Not Allowed":
        detail = f"{request.url.path} does not take {request.method}"
    # Keep the exception's headers: a 405 must name the allowed methods in `Allow`.
    return problem(status, code, title, detail, request, headers=dict(exc.headers or {}))


# Data exceptions (SQLSTATE class 22, and asyncpg's own refusal to encode a parameter) come
# from the request's values: a 422, never a 500, and never the driver's text (it quotes SQL
# parameters, which may be anyone's data).
_TEXT_ERRORS = (
    asyncpg.exceptions.CharacterNotInRepertoireError,
    asyncpg.exceptions.UntranslatableCharacterError,
)
_RANGE_ERRORS = (
    asyncpg.exceptions.NumericValueOutOfRangeError,
    asyncpg.exceptions.DatetimeFieldOverflowError,
    asyncpg.exceptions.IntervalFieldOverflowError,
)


def _data_error(request: Request, exc: asyncpg.exceptions.DataError) -> Response[dict[str, Any]]:
    """A value the database cannot hold or read, mapped once for every asyncpg DataError."""
    if isinstance(exc, _TEXT_ERRORS):
        # PostgreSQL refuses NUL characters in text and JSON.
        return problem(
            422,
            "invalid_text",
            "Invalid input",
            "text may not contain NUL characters (\\u0000)",
            request,
        )
    if isinstance(exc, _RANGE_ERRORS) or isinstance(exc.__cause__, OverflowError):
        # The server's "out of range", or asyncpg refusing to encode e.g. an int4 parameter.
        return problem(
            422,
            "value_out_of_range",
            "Invalid input",
            "a number or time in the request is out of the range that can be stored",
            request,
        )
    log.warning(
        "data_error",
        error=type(exc).__name__,
        sqlstate=getattr(exc, "sqlstate", None),
        path=loggable_path(request.url.path),
    )
    return problem(
        422,
        "unstorable_value",
        "Invalid input",
        "a value in the request cannot be stored",
        request,
    )


# While the database is unreachable (refused, reset, shut down, out of connections) a call
# answers 503 with Retry-After, as /readyz does. A call cut off at COMMIT may have happened:
# the retry, under its Idempotency-Key, is what makes that safe.
RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE = (
    OSError,  # refused, reset, unreachable, timed out (TimeoutError is an OSError)
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, starting up, cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
)


def _database_unavailable(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    log.warning(
        "database_unavailable", error=type(exc).__name__, path=loggable_path(request.url.path)
    )
    return problem(
        503,
        "database_unavailable",
        "Service unavailable",
        "the database cannot be reached right now; retry shortly (with the same "
        "Idempotency-Key a retry is safe)",
        request,
        headers={"retry-after": str(RETRY_AFTER_SECONDS)},
    )


def _too_deep(request: Request, exc: RecursionError) -> Response[dict[str, Any]]:
    log.warning("request_too_deep", path=loggable_path(request.url.path))
    return problem(400, "bad_request", "Bad request", "the JSON body is nested too deeply", request)


def _internal_error(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    log.error("unhandled_error", exc_info=exc, path=loggable_path(request.url.path))
    return problem(
        500,
        "internal_error",
        "Internal error",
        "Something went wrong on our side; "
        "the request id in X-Request-ID identifies it in the logs",
        request,
    )


_LAST_RESORT = msgspec.json.encode(
    {
        "type": PROBLEM_BASE + "internal_error",
        "title": "Internal error",
        "status": 500,
        "detail": "Something went wrong on our side; "
        "the request id in X-Request-ID identifies it in the logs",
        "code": "internal_error",
    }
)


def problem_guard(app: ASGIApp) -> ASGIApp:
    """The last line behind the exception handlers: an exception that escapes them (one
    raised while rendering a problem, or by a middleware outside Litestar's routing) still
    answers a problem+json 500, never a bare one. After the response started, nothing can be
    said any more: the server ends the connection. It wraps nothing per request (Litestar
    already records whether a response started), so the redirect's hot path pays nothing."""

    async def guard(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except Exception as exc:
            if scope["type"] != "http" or ScopeState.from_scope(scope).response_started:
                raise
            log.error("unhandled_error", exc_info=exc, path=loggable_path(scope.get("path", "")))
            try:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(_LAST_RESORT)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": _LAST_RESORT})
            except Exception:  # a start went out unrecorded: the server ends the connection
                raise exc from None

    return guard


class Problem(msgspec.Struct):
    """RFC 9457 problem details; `code` is the stable name to branch on."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None


_RESPONSE_TEXT = {
    400: "Malformed request or failed validation",
    401: "Missing or invalid API key",
    403: "The key may not do this (e.g. a publishable key on a secret call)",
    404: "Not found, or owned by another merchant",
    409: "Conflicts with the current state",
    422: "Well-formed but not acceptable",
    503: "The database cannot be reached right now; retry after `Retry-After` seconds",
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for a handler's error statuses, all problem+json."""
    return {
        status: ResponseSpec(
            Problem,
            description=_RESPONSE_TEXT[status],
            media_type="application/problem+json",
            generate_examples=False,
        )
        for status in statuses
    }


API_ERRORS = problem_responses(400, 401, 403, 404, 409, 422)
PUBLIC_ERRORS = problem_responses(400, 404, 422)


EXCEPTION_HANDLERS = {
    AppError: _app_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    asyncpg.exceptions.DataError: _data_error,
    **dict.fromkeys(DATABASE_UNAVAILABLE, _database_unavailable),
    RecursionError: _too_deep,
    Exception: _internal_error,
}
