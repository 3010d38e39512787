"""SQL for levels: a customer's level per program, its changes, and the qualifying activity
of the rolling year (read from the rooms that hold it: points lots, referrals, orders)."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from referral.lib.db import many, one

LEVEL = """
SELECT level, qualifying, multiplier_bp, reached_at, held_until FROM customer_levels
WHERE merchant_id = $1 AND program_id = $2 AND customer_id = $3
"""

LOCK_LEVEL = LEVEL + "FOR UPDATE"

UPSERT_LEVEL = """
INSERT INTO customer_levels (merchant_id, program_id, customer_id, level, qualifying,
                             multiplier_bp, reached_at, held_until)
VALUES ($1, $2, $3, $4, $5, $6::int, $7, $8)
ON CONFLICT (merchant_id, program_id, customer_id) DO UPDATE
SET level = excluded.level, qualifying = excluded.qualifying,
    multiplier_bp = excluded.multiplier_bp, reached_at = excluded.reached_at,
    held_until = excluded.held_until, updated_at = now()
"""

SET_QUALIFYING = """
UPDATE customer_levels SET qualifying = $4, updated_at = now()
WHERE merchant_id = $1 AND program_id = $2 AND customer_id = $3
"""

INSERT_CHANGE = """
INSERT INTO level_changes (merchant_id, program_id, customer_id, from_level, to_level,
                           qualifying, rules_version)
VALUES ($1, $2, $3, $4, $5, $6, $7::int)
"""

CHANGES = """
SELECT from_level, to_level, qualifying, rules_version, created_at FROM level_changes
WHERE merchant_id = $1 AND program_id = $2 AND customer_id = $3
ORDER BY id DESC LIMIT $4
"""

# Points earned since `$4`, less what refunds took back of those lots.
POINTS_SINCE = """
SELECT (coalesce(sum(l.points), 0)
        + coalesce((SELECT sum(x.delta) FROM points_entries x
                    JOIN points_lots y ON y.merchant_id = x.merchant_id AND y.id = x.lot_id
                    WHERE x.merchant_id = $1 AND x.program_id = $2 AND x.customer_id = $3
                      AND x.kind = 'refund' AND y.earned_at >= $4), 0))::bigint
FROM points_lots l
WHERE l.merchant_id = $1 AND l.program_id = $2 AND l.customer_id = $3 AND l.earned_at >= $4
"""

# Friends referred (converted) by the customer as the program's advocate since `$4`.
REFERRALS_SINCE = """
SELECT count(*) FROM referrals r
JOIN advocates a ON a.merchant_id = r.merchant_id AND a.id = r.advocate_id
WHERE r.merchant_id = $1 AND r.program_id = $2 AND a.customer_id = $3
  AND r.status = 'converted' AND r.converted_at >= $4
"""

# Their spend in `$5` since `$4`: subtotals less refunds, cancelled orders not at all.
SPEND_SINCE = """
SELECT coalesce(sum(CASE WHEN o.total > 0
                        THEN o.subtotal * (o.total - o.refunded) / o.total ELSE 0 END), 0)::bigint
FROM orders o
WHERE o.merchant_id = $1 AND o.customer_id = $3 AND o.currency = $5 AND o.occurred_at >= $4
  AND o.status <> 'cancelled' AND NOT o.is_import AND $2::bigint IS NOT NULL
"""


class LevelRow(msgspec.Struct, frozen=True):
    level: str
    qualifying: int
    multiplier_bp: int
    reached_at: datetime
    held_until: datetime


class ChangeRow(msgspec.Struct, frozen=True):
    from_level: str | None
    to_level: str
    qualifying: int
    rules_version: int
    created_at: datetime


async def level(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    lock: bool = False,
) -> LevelRow | None:
    sql = LOCK_LEVEL if lock else LEVEL
    return one(LevelRow, await conn.fetchrow(sql, merchant_id, program_id, customer_id))


async def upsert(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    name: str,
    qualifying: int,
    multiplier_bp: int,
    reached_at: datetime,
    held_until: datetime,
) -> None:
    await conn.execute(
        UPSERT_LEVEL,
        merchant_id,
        program_id,
        customer_id,
        name,
        qualifying,
        multiplier_bp,
        reached_at,
        held_until,
    )


async def set_qualifying(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, customer_id: str, qualifying: int
) -> None:
    await conn.execute(SET_QUALIFYING, merchant_id, program_id, customer_id, qualifying)


async def insert_change(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    from_level: str | None,
    to_level: str,
    qualifying: int,
    rules_version: int,
) -> None:
    await conn.execute(
        INSERT_CHANGE,
        merchant_id,
        program_id,
        customer_id,
        from_level,
        to_level,
        qualifying,
        rules_version,
    )


async def changes(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, customer_id: str, limit: int
) -> list[ChangeRow]:
    return many(ChangeRow, await conn.fetch(CHANGES, merchant_id, program_id, customer_id, limit))


async def qualifying(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    qualifier: str,
    since: datetime,
    currency: str | None,
) -> int:
    if qualifier == "points":
        return await conn.fetchval(POINTS_SINCE, merchant_id, program_id, customer_id, since)
    if qualifier == "referrals":
        return await conn.fetchval(REFERRALS_SINCE, merchant_id, program_id, customer_id, since)
    return await conn.fetchval(SPEND_SINCE, merchant_id, program_id, customer_id, since, currency)


ERASE = """
UPDATE customer_levels SET customer_id = $3 WHERE merchant_id = $1 AND customer_id = $2
"""


async def erase(
    conn: asyncpg.Connection, merchant_id: int, customer_id: str, tombstone: str
) -> None:
    await conn.execute(ERASE, merchant_id, customer_id, tombstone)
