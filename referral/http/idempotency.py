"""`Idempotency-Key` with Stripe's semantics, scoped to merchant and route, and the one
helper every state-changing handler answers through.

The key is stored with its response in the same transaction as the effect, so a replay
returns exactly what the first call answered, and a crash leaves neither. A duplicate that
arrives while the first is still running gets 409 `idempotency_key_in_flight` (a
transaction-scoped advisory lock tells); the same key with another body, or on another
resource of the route (`/v1/rewards/A/approve` vs `.../B/approve`), gets 409
`idempotency_key_reused`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response

from referral.http import repo
from referral.lib.errors import Conflict, InvalidInput
from referral.merchants.service import Caller

HEADER = "idempotency-key"
_MAX_KEY = 255

_PRINTABLE = re.compile(rf"[\x20-\x7e]{{1,{_MAX_KEY}}}")

Call = Callable[[], Awaitable[Any]]


def _check_key(key: str) -> None:
    """1-255 printable ASCII characters: a control character or a byte beyond ASCII is
    refused before it reaches a lock or a row."""
    if not _PRINTABLE.fullmatch(key):
        raise InvalidInput(
            f"the Idempotency-Key header must be 1-{_MAX_KEY} printable ASCII characters",
            code="invalid_idempotency_key",
        )


def _canonical_hash(path: str, body: bytes) -> bytes:
    """The request's identity under its key: the concrete path (the route is a template, so
    its path parameters count) and the body. Equal JSON bodies hash equally, whatever their
    key order or spacing."""
    try:
        value = msgspec.json.decode(body) if body else None
        canonical = msgspec.json.encode(value, order="sorted")
    except msgspec.DecodeError:
        canonical = body
    return hashlib.sha256(path.encode() + b"\0" + canonical).digest()


def _shaped(outcome: Any, status: int) -> tuple[int, Any]:
    """A call answers its body, or `(body, created)` when it creates on first sight: 201
    the first time, 200 when it found what an earlier call made."""
    if isinstance(outcome, tuple) and len(outcome) == 2 and isinstance(outcome[1], bool):
        body, created = outcome
        return (201 if created else 200), body
    return status, outcome


class Once:
    """Runs a handler's state change at most once per Idempotency-Key and shapes the
    response. Handlers take it as `once` and answer `await once(lambda: service.x(...))`."""

    __slots__ = ("_request", "_conn", "_caller")

    def __init__(self, request: Request, conn: asyncpg.Connection, caller: Caller) -> None:
        self._request, self._conn, self._caller = request, conn, caller

    async def __call__(
        self,
        call: Call,
        *,
        status: int = 200,
        replayed: Callable[[Any], Any] | None = None,
        body_digest: bytes | None = None,
    ) -> Response:
        """`replayed` shapes what a replay answers, when the first answer held something the
        service must not keep (a new API key's secret, of which only the hash is stored).
        `body_digest` stands for a body the handler streamed (a file upload, never held in
        memory): the request is then its path, its query string and that digest."""
        request, conn, caller = self._request, self._conn, self._caller
        key = request.headers.get(HEADER)
        if key is None:
            code, body = _shaped(await call(), status)
            return Response(body, status_code=code)
        _check_key(key)
        route = f"{request.method} {min(request.route_handler.paths)}"
        if body_digest is None:
            request_hash = _canonical_hash(request.url.path, await request.body())
        else:
            target = f"{request.url.path}?{request.url.query}".encode()
            request_hash = hashlib.sha256(target + b"\0" + body_digest).digest()
        if not await repo.try_lock(conn, caller.merchant_id, f"{route}|{key}"):
            raise Conflict(
                "a request with this Idempotency-Key is still being processed; retry shortly",
                code="idempotency_key_in_flight",
            )
        stored = await repo.find(conn, caller.merchant_id, route, key)
        if stored is not None:
            if stored.request_hash != request_hash:
                raise Conflict(
                    "this Idempotency-Key was used with a different request body",
                    code="idempotency_key_reused",
                )
            return Response(
                stored.response,
                status_code=stored.status_code,
                media_type="application/json",
                headers={"idempotent-replayed": "true"},
            )
        code, body = _shaped(await call(), status)
        encoded = msgspec.json.encode(body)
        kept = encoded if replayed is None else msgspec.json.encode(replayed(body))
        await repo.store(conn, caller.merchant_id, route, key, request_hash, code, kept)
        return Response(encoded, status_code=code, media_type="application/json")
