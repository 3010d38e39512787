"""structlog setup and the request-id middleware.

JSON when stdout is not a terminal (or LOG_FORMAT=json), readable console output otherwise.
Every log line of a request carries its `request_id`; the id is taken from `X-Request-ID`
when it looks safe, else generated, and always echoed back.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

_SAFE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
# Paths too hot or too boring to log one line each.
_QUIET_PREFIXES = ("/r/", "/healthz", "/readyz")
# A share page's path holds its signed token, which opens that advocate's page: never logged.
_SECRET_PATH = re.compile(r"^/share/[^/]+")


def loggable_path(path: str) -> str:
    return _SECRET_PATH.sub("/share/[token]", path, count=1)


def configure_logging(log_format: str = "auto", level: str = "info") -> None:
    as_json = log_format == "json" or (log_format == "auto" and not sys.stdout.isatty())
    renderer = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=True,
    )


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    log = structlog.get_logger("referral.http")

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request_id = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if _SAFE_REQUEST_ID.match(value):
                    request_id = value
                break
        if not request_id:
            request_id = os.urandom(8).hex().encode()  # as secrets.token_hex(8), cheaper
        rid = request_id.decode()
        scope.setdefault("state", {})["request_id"] = rid
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            path = scope["path"]
            if not path.startswith(_QUIET_PREFIXES) or status >= 500:
                log.info(
                    "request",
                    method=scope["method"],
                    path=loggable_path(path),
                    status=status,
                    ms=round((time.perf_counter() - started) * 1000, 2),
                )

    return middleware
