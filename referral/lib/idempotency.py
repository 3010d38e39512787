"""`Idempotency-Key` with Stripe's semantics, scoped to merchant and route.

The key is stored with its response in the same transaction as the effect, so a replay
returns exactly what the first call answered, and a crash leaves neither. A duplicate that
arrives while the first is still running gets 409 `idempotency_key_in_flight` (a
transaction-scoped advisory lock tells); the same key with another body, or on another
resource of the route (`/v1/rewards/A/approve` vs `.../B/approve`), gets 409
`idempotency_key_reused`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response

from referral.lib.errors import Conflict, InvalidInput
from referral.merchants.service import Caller

HEADER = "idempotency-key"
_MAX_KEY = 255

FIND = """
SELECT request_hash, status_code, response FROM idempotency_keys
WHERE merchant_id = $1 AND route = $2 AND key = $3
"""
STORE = """
INSERT INTO idempotency_keys (merchant_id, route, key, request_hash, status_code, response)
VALUES ($1, $2, $3, $4, $5, $6)
"""


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


async def run(
    conn: asyncpg.Connection,
    caller: Caller,
    request: Request,
    effect: Callable[[], Awaitable[tuple[int, Any]]],
) -> Response:
    """Run `effect` (which returns (status, body)) at most once per Idempotency-Key."""
    key = request.headers.get(HEADER)
    if key is None:
        status, body = await effect()
        return Response(body, status_code=status)
    if not key or len(key) > _MAX_KEY:
        raise InvalidInput(
            f"Idempotency-Key must be 1-{_MAX_KEY} characters", code="invalid_idempotency_key"
        )
    route = f"{request.method} {min(request.route_handler.paths)}"
    request_hash = _canonical_hash(request.url.path, await request.body())
    got_lock = await conn.fetchval(
        "SELECT pg_try_advisory_xact_lock(hashtextextended($1, $2))",
        f"{route}|{key}",
        caller.merchant_id,
    )
    if not got_lock:
        raise Conflict(
            "a request with this Idempotency-Key is still being processed; retry shortly",
            code="idempotency_key_in_flight",
        )
    stored = await conn.fetchrow(FIND, caller.merchant_id, route, key)
    if stored is not None:
        if stored["request_hash"] != request_hash:
            raise Conflict(
                "this Idempotency-Key was used with a different request body",
                code="idempotency_key_reused",
            )
        return Response(
            stored["response"],
            status_code=stored["status_code"],
            media_type="application/json",
            headers={"idempotent-replayed": "true"},
        )
    status, body = await effect()
    encoded = msgspec.json.encode(body)
    await conn.execute(STORE, caller.merchant_id, route, key, request_hash, status, encoded)
    return Response(encoded, status_code=status, media_type="application/json")
