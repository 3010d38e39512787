"""SQL for merchants and API keys."""

from __future__ import annotations

import asyncpg
import msgspec

from referral.lib.db import one

INSERT_MERCHANT = """
INSERT INTO merchants (account_id, mode, name) VALUES ($1, $2, $3) RETURNING id
"""

INSERT_KEY = """
INSERT INTO api_keys (merchant_id, kind, key_hash, key_hint, label)
VALUES ($1, $2, $3, $4, $5) RETURNING id
"""

KEY_BY_HASH = """
SELECT k.merchant_id, k.kind, m.mode
FROM api_keys k JOIN merchants m ON m.id = k.merchant_id
WHERE k.key_hash = $1 AND k.revoked_at IS NULL
"""

MERCHANT_BY_ID = "SELECT id, name, mode FROM merchants WHERE id = $1"


class KeyRow(msgspec.Struct, frozen=True):
    merchant_id: int
    kind: str
    mode: str


class MerchantRow(msgspec.Struct, frozen=True):
    id: int
    name: str
    mode: str


async def insert_merchant(conn: asyncpg.Connection, account_id, mode: str, name: str) -> int:
    return await conn.fetchval(INSERT_MERCHANT, account_id, mode, name)


async def insert_key(
    conn: asyncpg.Connection, merchant_id: int, kind: str, key_hash: bytes, hint: str, label: str
) -> int:
    return await conn.fetchval(INSERT_KEY, merchant_id, kind, key_hash, hint, label)


async def key_by_hash(conn: asyncpg.Connection, key_hash: bytes) -> KeyRow | None:
    return one(KeyRow, await conn.fetchrow(KEY_BY_HASH, key_hash))


async def merchant_by_id(conn: asyncpg.Connection, merchant_id: int) -> MerchantRow | None:
    return one(MerchantRow, await conn.fetchrow(MERCHANT_BY_ID, merchant_id))
