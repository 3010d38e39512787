"""SQL for friend coupons. Every statement is scoped by merchant_id, except the expiry
worker's pick, which takes due coupons of every merchant."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

INSERT = """
INSERT INTO coupons (code, merchant_id, reward_id, amount, currency, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING code
"""

VOID = """
UPDATE coupons SET status = 'void' WHERE merchant_id = $1 AND reward_id = $2 AND status = 'issued'
"""

RESTORE = """
UPDATE coupons SET status = 'issued' WHERE merchant_id = $1 AND reward_id = $2 AND status = 'void'
"""

FOR_REWARD = (
    "SELECT code, status, expires_at FROM coupons WHERE merchant_id = $1 AND reward_id = $2"
)

CODES = """
SELECT reward_id, code FROM coupons WHERE merchant_id = $1 AND reward_id = ANY($2::bigint[])
"""

REDEEM = """
UPDATE coupons SET status = 'redeemed', redeemed_order_pk = $3
WHERE merchant_id = $1 AND code = $2 AND status = 'issued' AND expires_at > $4
RETURNING reward_id
"""

DUE_TO_EXPIRE = """
SELECT c.merchant_id, c.reward_id FROM coupons c
WHERE c.status = 'issued' AND c.expires_at <= $1
ORDER BY c.expires_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""

MARK_EXPIRED = """
UPDATE coupons SET status = 'expired' WHERE merchant_id = $1 AND reward_id = $2
"""


class Coupon(msgspec.Struct, frozen=True):
    code: str
    status: str
    expires_at: datetime


class DueCoupon(msgspec.Struct, frozen=True):
    merchant_id: int
    reward_id: int


async def insert(
    conn: asyncpg.Connection,
    code: str,
    merchant_id: int,
    reward_id: int,
    amount: int,
    currency: str,
    expires_at: datetime,
) -> bool:
    inserted = await conn.fetchval(
        INSERT, code, merchant_id, reward_id, amount, currency, expires_at
    )
    return inserted is not None


async def void(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> None:
    await conn.execute(VOID, merchant_id, reward_id)


async def restore(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> None:
    await conn.execute(RESTORE, merchant_id, reward_id)


async def for_reward(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> Coupon | None:
    row = await conn.fetchrow(FOR_REWARD, merchant_id, reward_id)
    return None if row is None else Coupon(**row)


async def codes(
    conn: asyncpg.Connection, merchant_id: int, reward_ids: list[int]
) -> dict[int, str]:
    rows = await conn.fetch(CODES, merchant_id, reward_ids)
    return {r["reward_id"]: r["code"] for r in rows}


async def redeem(
    conn: asyncpg.Connection, merchant_id: int, code: str, order_pk: int, at: datetime
) -> int | None:
    return await conn.fetchval(REDEEM, merchant_id, code, order_pk, at)


async def due_to_expire(conn: asyncpg.Connection, now: datetime, limit: int) -> list[DueCoupon]:
    return [DueCoupon(**r) for r in await conn.fetch(DUE_TO_EXPIRE, now, limit)]


async def mark_expired(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> None:
    await conn.execute(MARK_EXPIRED, merchant_id, reward_id)
