"""SQL for merchants and API keys."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from referral.lib.db import many, one
from referral.lib.pagination import CURSOR_CLAUSE, Cursor

INSERT_MERCHANT = """
INSERT INTO merchants (account_id, mode, name) VALUES ($1, $2, $3) RETURNING id
"""

INSERT_KEY = """
INSERT INTO api_keys (merchant_id, kind, key_hash, key_hint, label, scopes)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
"""

# The key, and its last use noted in the same round trip (at most once a minute, so a busy
# key's row is not rewritten on every cache miss).
KEY_BY_HASH = """
WITH k AS (
    SELECT k.id, k.merchant_id, k.kind, m.mode, k.scopes, k.expires_at, k.key_hint
    FROM api_keys k JOIN merchants m ON m.id = k.merchant_id
    WHERE k.key_hash = $1 AND k.revoked_at IS NULL
      AND (k.expires_at IS NULL OR k.expires_at > now())
), used AS (
    -- On the row itself, so of a burst of calls that wait on one another only the first
    -- writes: the others see its new time when the lock is theirs.
    UPDATE api_keys a SET last_used_at = now()
    FROM k
    WHERE a.merchant_id = k.merchant_id AND a.id = k.id
      AND (a.last_used_at IS NULL OR a.last_used_at < now() - interval '1 minute')
)
SELECT id, merchant_id, kind, mode, scopes, expires_at, key_hint FROM k
"""

MERCHANT_BY_ID = "SELECT id, name, mode FROM merchants WHERE id = $1"

# The other mode of the same account: a live merchant's test twin, or the other way round.
TWIN = """
SELECT t.id, t.name, t.mode
FROM merchants m JOIN merchants t ON t.account_id = m.account_id AND t.mode <> m.mode
WHERE m.id = $1
"""

# payout_minimums as text: the CLI's plain connections have no jsonb codec.
SETTINGS_COLUMNS = "id, name, mode, time_zone, payout_minimums::text AS payout_minimums"

SETTINGS = f"SELECT {SETTINGS_COLUMNS} FROM merchants WHERE id = $1"

ALL_MERCHANTS = f"SELECT {SETTINGS_COLUMNS} FROM merchants ORDER BY created_at, id"

# $2 time zone (NULL: unchanged), $3 minimums to set (a JSON object), $4 currencies to drop.
UPDATE_SETTINGS = f"""
UPDATE merchants
SET time_zone = coalesce($2, time_zone),
    payout_minimums = (payout_minimums || $3::text::jsonb) - $4::text[]
WHERE id = $1
RETURNING {SETTINGS_COLUMNS}
"""

# The database computes periods with `AT TIME ZONE`: it must know the name too.
TIME_ZONE_KNOWN = "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)"

KEY_COLUMNS = (
    "id, merchant_id, kind, key_hint, label, created_at, last_used_at, revoked_at, key_hash, "
    "scopes, expires_at, replaced_by"
)

KEY_BY_ID = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE merchant_id = $1 AND id = $2"

LIST_KEYS = f"""
SELECT {KEY_COLUMNS} FROM api_keys t
WHERE t.merchant_id = $1 AND ($2::text IS NULL OR t.kind = $2)
{CURSOR_CLAUSE.format(table="api_keys")}
ORDER BY t.created_at, t.id
LIMIT $6
"""

# Serialises revocations of one merchant: two at once cannot both pass the "last secret
# key" check and leave none.
LOCK_MERCHANT = "SELECT id FROM merchants WHERE id = $1 FOR UPDATE"

# The other keys that could still manage the merchant's keys tomorrow: secret, unrestricted
# or admin, neither revoked nor on their way out (a rolled key's grace ends).
OTHER_LASTING_ADMIN_KEYS = """
SELECT count(*) FROM api_keys
WHERE merchant_id = $1 AND id <> $2 AND kind = 'secret' AND revoked_at IS NULL
  AND expires_at IS NULL AND (scopes IS NULL OR 'admin' = ANY (scopes))
"""

REVOKE_KEY = f"""
UPDATE api_keys SET revoked_at = now()
WHERE merchant_id = $1 AND id = $2 AND revoked_at IS NULL
RETURNING {KEY_COLUMNS}
"""

# The old key of a roll: it points at its successor and works until its grace ends (never
# longer than it would have: a key rolled twice keeps the earlier end).
ROLL_KEY = f"""
UPDATE api_keys
SET replaced_by = $3,
    expires_at = least(coalesce(expires_at, 'infinity'), now() + make_interval(secs => $4))
WHERE merchant_id = $1 AND id = $2
RETURNING {KEY_COLUMNS}
"""

# For the command line, which knows a key id but not its merchant.
MERCHANT_OF_KEY = "SELECT merchant_id FROM api_keys WHERE id = $1"


class KeyRow(msgspec.Struct, frozen=True):
    id: int
    merchant_id: int
    kind: str
    mode: str
    scopes: list[str] | None
    expires_at: datetime | None
    key_hint: str


class MerchantRow(msgspec.Struct, frozen=True):
    id: int
    name: str
    mode: str


async def insert_merchant(conn: asyncpg.Connection, account_id, mode: str, name: str) -> int:
    return await conn.fetchval(INSERT_MERCHANT, account_id, mode, name)


async def insert_key(
    conn: asyncpg.Connection,
    merchant_id: int,
    kind: str,
    key_hash: bytes,
    hint: str,
    label: str,
    scopes: list[str] | None,
) -> int:
    return await conn.fetchval(INSERT_KEY, merchant_id, kind, key_hash, hint, label, scopes)


async def key_by_hash(conn: asyncpg.Connection, key_hash: bytes) -> KeyRow | None:
    return one(KeyRow, await conn.fetchrow(KEY_BY_HASH, key_hash))


async def merchant_by_id(conn: asyncpg.Connection, merchant_id: int) -> MerchantRow | None:
    return one(MerchantRow, await conn.fetchrow(MERCHANT_BY_ID, merchant_id))


async def twin(conn: asyncpg.Connection, merchant_id: int) -> MerchantRow | None:
    return one(MerchantRow, await conn.fetchrow(TWIN, merchant_id))


class SettingsRow(msgspec.Struct, frozen=True):
    id: int
    name: str
    mode: str
    time_zone: str
    payout_minimums: str  # a JSON object: currency -> minor units


class ApiKeyRow(msgspec.Struct, frozen=True):
    id: int
    merchant_id: int
    kind: str
    key_hint: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    key_hash: bytes
    scopes: list[str] | None
    expires_at: datetime | None
    replaced_by: int | None


async def settings(conn: asyncpg.Connection, merchant_id: int) -> SettingsRow | None:
    return one(SettingsRow, await conn.fetchrow(SETTINGS, merchant_id))


async def all_merchants(conn: asyncpg.Connection) -> list[SettingsRow]:
    return many(SettingsRow, await conn.fetch(ALL_MERCHANTS))


async def update_settings(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    time_zone: str | None,
    set_minimums: str,
    drop_minimums: list[str],
) -> SettingsRow | None:
    row = await conn.fetchrow(UPDATE_SETTINGS, merchant_id, time_zone, set_minimums, drop_minimums)
    return one(SettingsRow, row)


async def time_zone_known(conn: asyncpg.Connection, name: str) -> bool:
    return await conn.fetchval(TIME_ZONE_KNOWN, name)


async def key_by_id(conn: asyncpg.Connection, merchant_id: int, key_id: int) -> ApiKeyRow | None:
    return one(ApiKeyRow, await conn.fetchrow(KEY_BY_ID, merchant_id, key_id))


async def list_keys(
    conn: asyncpg.Connection, merchant_id: int, *, kind: str | None, cursor: Cursor
) -> list[ApiKeyRow]:
    return many(ApiKeyRow, await conn.fetch(LIST_KEYS, merchant_id, kind, *cursor.params))


async def lock_merchant(conn: asyncpg.Connection, merchant_id: int) -> None:
    await conn.fetchval(LOCK_MERCHANT, merchant_id)


async def other_lasting_admin_keys(conn: asyncpg.Connection, merchant_id: int, key_id: int) -> int:
    return await conn.fetchval(OTHER_LASTING_ADMIN_KEYS, merchant_id, key_id)


async def roll_key(
    conn: asyncpg.Connection, merchant_id: int, key_id: int, *, successor: int, grace_seconds: int
) -> ApiKeyRow:
    row = await conn.fetchrow(ROLL_KEY, merchant_id, key_id, successor, float(grace_seconds))
    return one(ApiKeyRow, row)  # type: ignore[return-value]


async def revoke_key(conn: asyncpg.Connection, merchant_id: int, key_id: int) -> ApiKeyRow | None:
    return one(ApiKeyRow, await conn.fetchrow(REVOKE_KEY, merchant_id, key_id))


async def merchant_of_key(conn: asyncpg.Connection, key_id: int) -> int | None:
    return await conn.fetchval(MERCHANT_OF_KEY, key_id)
