"""SQL for stored idempotent responses."""

from __future__ import annotations

import asyncpg
import msgspec

TRY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended($1, $2))"

FIND = """
SELECT request_hash, status_code, response FROM idempotency_keys
WHERE merchant_id = $1 AND route = $2 AND key = $3
"""

STORE = """
INSERT INTO idempotency_keys (merchant_id, route, key, request_hash, status_code, response)
VALUES ($1, $2, $3, $4, $5::int, $6)
"""


class StoredResponse(msgspec.Struct, frozen=True):
    request_hash: bytes
    status_code: int
    response: bytes


async def try_lock(conn: asyncpg.Connection, merchant_id: int, name: str) -> bool:
    """A transaction-scoped lock on (merchant, name), or False if another holds it."""
    return await conn.fetchval(TRY_LOCK, name, merchant_id)


async def find(
    conn: asyncpg.Connection, merchant_id: int, route: str, key: str
) -> StoredResponse | None:
    row = await conn.fetchrow(FIND, merchant_id, route, key)
    return None if row is None else StoredResponse(**row)


async def store(
    conn: asyncpg.Connection,
    merchant_id: int,
    route: str,
    key: str,
    request_hash: bytes,
    status_code: int,
    response: bytes,
) -> None:
    await conn.execute(STORE, merchant_id, route, key, request_hash, status_code, response)
