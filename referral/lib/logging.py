"""structlog setup, the request-id middleware, and what never reaches a log.

JSON when stdout is not a terminal (or LOG_FORMAT=json), readable console output otherwise.
Every log line of a request carries its `request_id`; the id is taken from `X-Request-ID`
when it looks safe, else generated, and always echoed back.

Secrets are kept out by their shape, not by the route they arrive on: a path segment or
query value that looks like an email, an API key, a long random token (share and click
tokens, hex or base64url) or an IP address is replaced by a placeholder, however it is
cased, percent-encoded or placed (`/SHARE/<token>`, `/./share/<token>`, an unrouted
`/v1/orders/a.person@example.com/cancel`). The same shapes are scrubbed from every string
of every log line (error messages and tracebacks included) by the last processor.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import sys
import time
from collections.abc import Iterable
from typing import TextIO
from urllib.parse import unquote

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

_SAFE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
# Paths too hot or too boring to log one line each.
_QUIET_PREFIXES = ("/r/", "/healthz", "/readyz", "/metrics")

EMAIL, KEY, TOKEN, IP = "[email]", "[key]", "[token]", "[ip]"
_AT = ("@", "\uff20", "\ufe6b")  # @, fullwidth and small commercial at
_KEY_PREFIX = re.compile(r"(?i)^(?:sk|pk|rk)_")
# Runs of base64url / hex characters ('+' for standard base64).
_RUN = re.compile(r"[A-Za-z0-9_+-]{20,}")
_MIN_TOKEN = 20
_MAX_LOGGED = 512
# In free text (messages, tracebacks): an email, percent-encoded or not; an API key; an
# IPv4 address; an IPv6 candidate (checked with `ipaddress`).
_TEXT_EMAIL = re.compile(
    r"[^\s\"'<>()\[\]{},;:/\\@\uff20\ufe6b]+(?:@|%(?:25)*40|\uff20|\ufe6b)"
    r"[^\s\"'<>()\[\]{},;:/\\@\uff20\ufe6b]+",
    re.IGNORECASE,
)
_TEXT_KEY = re.compile(r"(?i)\b(?:sk|pk|rk)_[A-Za-z0-9_-]+")
_TEXT_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_TEXT_IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
# Fields this module writes itself, never user input.
_TRUSTED_FIELDS = frozenset({"request_id", "timestamp", "level", "ms", "status"})


_WORD_PARTS = re.compile(r"[_+-]")


def _words(run: str) -> bool:
    """A name made of words and numbers (`0015_rewards_money_due`): each part between
    separators is all digits or all one case of letters. Random text split the same way
    mixes them within its parts."""
    parts = [part for part in _WORD_PARTS.split(run) if part]
    return len(parts) > 1 and all(
        part.isdigit() or (part.isalpha() and (part.islower() or part.isupper())) for part in parts
    )


def _looks_random(run: str) -> bool:
    """A long run that mixes digits and letters, or upper and lower case as random text does
    (not as CamelCase words or snake_case names do), with the character spread of random
    data."""
    if len(run) < _MIN_TOKEN or _words(run):
        return False
    letters = digits = upper = 0
    for ch in run:
        if ch.isdigit():
            digits += 1
        elif ch.isalpha():
            letters += 1
            upper += ch.isupper()
    mixed = (digits and letters) or (letters and 0.2 <= upper / letters <= 0.8)
    if not mixed:
        return False
    counts: dict[str, int] = {}
    for ch in run:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(run)
    entropy = -sum(c / n * math.log2(c / n) for c in counts.values())
    return entropy >= 3.0


def _is_ip(text: str) -> bool:
    if not any(c in text for c in ".:") or len(text) > 45:
        return False
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def _decoded(text: str) -> str:
    """Percent-decoded until it stops changing (`%2540` is an `@` encoded twice)."""
    for _ in range(3):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def redact_value(value: str) -> str:
    """One path segment or query key or value: a placeholder if its shape is a secret's."""
    if not value:
        return value
    text = _decoded(value)
    if any(at in text for at in _AT):
        return EMAIL
    if _KEY_PREFIX.match(text):
        return KEY
    if len(text) >= _MIN_TOKEN and any(_looks_random(m.group()) for m in _RUN.finditer(text)):
        return TOKEN
    if _is_ip(text):
        return IP
    return value


def _redact_segments(segments: Iterable[str]) -> list[str]:
    out = []
    seen = 0  # segments other than empty ones, `.` and `..`
    share_token_next = False
    for segment in segments:
        if segment in ("", ".", ".."):
            out.append(segment)
            continue
        # A share page's path holds its signed token, whatever its shape: never logged.
        out.append(TOKEN if share_token_next else redact_value(segment))
        seen += 1
        share_token_next = seen == 1 and _decoded(segment).lower() == "share"
    return out


def loggable_path(path: str, query: bytes | str = b"") -> str:
    """`path` (and its query string) as it may be logged: every segment, query key and
    value shaped like a secret replaced by a placeholder, at most 512 characters."""
    logged = "/".join(_redact_segments(path.split("/")))
    if isinstance(query, bytes):
        query = query.decode("latin-1")
    if query:
        pairs = []
        for pair in query.split("&"):
            key, eq, value = pair.partition("=")
            pairs.append(f"{redact_value(key)}{eq}{redact_value(value)}")
        logged = f"{logged}?{'&'.join(pairs)}"
    if len(logged) > _MAX_LOGGED:
        logged = logged[:_MAX_LOGGED] + "…"
    return logged


def _ipv6_or_text(match: re.Match[str]) -> str:
    return IP if _is_ip(match.group()) else match.group()


def _token_or_text(match: re.Match[str]) -> str:
    return TOKEN if _looks_random(match.group()) else match.group()


def redact_text(text: str) -> str:
    """Free text (a message, a traceback) with emails, keys, tokens and IPs replaced."""
    if len(text) < 7:
        return text
    text = _TEXT_EMAIL.sub(EMAIL, text)
    text = _TEXT_KEY.sub(KEY, text)
    text = _RUN.sub(_token_or_text, text)
    text = _TEXT_IPV4.sub(lambda m: IP if _is_ip(m.group()) else m.group(), text)
    if "::" in text or text.count(":") >= 2:
        text = _TEXT_IPV6.sub(_ipv6_or_text, text)
    return text


def _scrub(value: object) -> object:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub(v) for v in value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    return value


def redact_secrets(logger: object, method: str, event_dict: dict) -> dict:
    """structlog processor, last before rendering: no string of a log line, formatted
    exceptions included, carries an email, key, token or IP address."""
    return {k: v if k in _TRUSTED_FIELDS else _scrub(v) for k, v in event_dict.items()}


def configure_logging(
    log_format: str = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    """`stream`: where lines go (stdout; the CLI's commands log to stderr, as their stdout
    is their answer, e.g. a key captured by the shell)."""
    out = stream or sys.stdout
    as_json = log_format == "json" or (log_format == "auto" and not out.isatty())
    renderer = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    # Imported here, in the server's worker: every CLI command imports this module first,
    # before `serve` can tell the metrics where its workers share them.
    from referral.lib import metrics

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
            elapsed = time.perf_counter() - started
            metrics.observe_request(
                scope["method"], scope.get("path_template") or "unmatched", status, elapsed
            )
            path = scope["path"]
            if not path.startswith(_QUIET_PREFIXES) or status >= 500:
                log.info(
                    "request",
                    method=scope["method"],
                    path=loggable_path(path, scope.get("query_string", b"")),
                    status=status,
                    ms=round(elapsed * 1000, 2),
                )

    return middleware
