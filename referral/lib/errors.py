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

from referral.lib.logging import loggable_path

PROBLEM_BASE = "https://referral.dev/problems/"
log = structlog.get_logger("referral.errors")


class AppError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"

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
    return problem(exc.status, exc.code, exc.title, exc.detail, request, **exc.extra)


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
}


def _http_error(request: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    code, title = _HTTP_CODES.get(status, ("http_error", "HTTP error"))
    if status >= 500:
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


def _nul_in_text(request: Request, exc: asyncpg.PostgresError) -> Response[dict[str, Any]]:
    """PostgreSQL refuses NUL characters in text and JSON: the input's fault, never a 500."""
    return problem(
        422,
        "invalid_text",
        "Invalid input",
        "text may not contain NUL characters (\\u0000)",
        request,
    )


def _unstorable_value(request: Request, exc: asyncpg.exceptions._base.DataError) -> Response:
    """A number the database cannot hold (asyncpg refuses it before sending the query)."""
    if "out of" not in str(exc):  # another encoding failure is a bug in the service
        return _internal_error(request, exc)
    return problem(
        422, "value_out_of_range", "Invalid input", "a number in the request is too large", request
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
    asyncpg.exceptions.CharacterNotInRepertoireError: _nul_in_text,
    asyncpg.exceptions.UntranslatableCharacterError: _nul_in_text,
    asyncpg.exceptions._base.DataError: _unstorable_value,
    RecursionError: _too_deep,
    Exception: _internal_error,
}
