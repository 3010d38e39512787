"""SQL for friend coupons. Every statement is scoped by merchant_id, except the expiry
worker's pick, which takes due coupons of every merchant."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

# A customer's export (referral/customers/): the coupons of their rewards.
CUSTOMER_COUPONS = """
SELECT reward_id, code, status, amount, currency, expires_at, created_at FROM coupons
WHERE merchant_id = $1 AND reward_id = ANY($2::bigint[])
"""

INSERT = """
INSERT INTO coupons (code, merchant_id, reward_id, amount, currency, expires_at, status)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT DO NOTHING
RETURNING code
"""

# The coupon takes the state its reward's state gives it ($3), from the states listed ($4).
# Released from its hold, its validity (expiry minus issue) counts from the release ($5), so
# the hold never eats into the friend's time to use it.
FOLLOW = """
UPDATE coupons
SET status = $3,
    expires_at = CASE WHEN status = 'held' AND $3 = 'issued'
                      THEN $5::timestamptz + (expires_at - created_at) ELSE expires_at END
WHERE merchant_id = $1 AND reward_id = $2 AND status = ANY($4::text[])
"""

FOR_REWARD = """
SELECT code, status, expires_at FROM coupons WHERE merchant_id = $1 AND reward_id = $2
"""

OF_REWARDS = """
SELECT reward_id, code, status, expires_at FROM coupons
WHERE merchant_id = $1 AND reward_id = ANY($2::bigint[])
"""

# A coupon typed at checkout, with what its reward says about a hold (the reward's row is
# read, never written, here: it answers why the coupon is held).
LOOKUP = """
SELECT c.code, c.status, c.amount, c.currency, c.expires_at, r.status AS reward_status,
       r.hold_until
FROM coupons c JOIN rewards r ON r.merchant_id = c.merchant_id AND r.id = c.reward_id
WHERE c.merchant_id = $1 AND c.code = $2
"""

# Redeeming locks the coupon first: a concurrent approval or reversal of its reward updates
# this row in its transaction, so the lock waits for it, and the checks after it read the
# coupon as that transaction left it. (A bare `UPDATE ... WHERE status = 'issued'` would
# skip a row its snapshot still saw held, while the approval commits.)
LOCK = "SELECT 1 FROM coupons WHERE merchant_id = $1 AND code = $2 FOR UPDATE"

REDEEM = """
UPDATE coupons SET status = 'redeemed', redeemed_order_pk = $3
WHERE merchant_id = $1 AND code = $2 AND status = 'issued'
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


class TypedCoupon(msgspec.Struct, frozen=True):
    code: str
    status: str
    amount: int
    currency: str
    expires_at: datetime
    reward_status: str
    hold_until: datetime


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
    status: str,
) -> bool:
    inserted = await conn.fetchval(
        INSERT, code, merchant_id, reward_id, amount, currency, expires_at, status
    )
    return inserted is not None


async def follow(
    conn: asyncpg.Connection,
    merchant_id: int,
    reward_id: int,
    status: str,
    from_statuses: list[str],
    at: datetime,
) -> None:
    await conn.execute(FOLLOW, merchant_id, reward_id, status, from_statuses, at)


async def for_reward(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> Coupon | None:
    row = await conn.fetchrow(FOR_REWARD, merchant_id, reward_id)
    return None if row is None else Coupon(**row)


async def of_rewards(
    conn: asyncpg.Connection, merchant_id: int, reward_ids: list[int]
) -> dict[int, Coupon]:
    rows = await conn.fetch(OF_REWARDS, merchant_id, reward_ids)
    return {
        r["reward_id"]: Coupon(code=r["code"], status=r["status"], expires_at=r["expires_at"])
        for r in rows
    }


async def lookup(conn: asyncpg.Connection, merchant_id: int, code: str) -> TypedCoupon | None:
    row = await conn.fetchrow(LOOKUP, merchant_id, code)
    if row is None:
        return None
    return TypedCoupon(**{**row, "currency": row["currency"].strip()})


async def lock(conn: asyncpg.Connection, merchant_id: int, code: str) -> None:
    await conn.execute(LOCK, merchant_id, code)


async def redeem(conn: asyncpg.Connection, merchant_id: int, code: str, order_pk: int) -> None:
    await conn.execute(REDEEM, merchant_id, code, order_pk)


async def due_to_expire(conn: asyncpg.Connection, now: datetime, limit: int) -> list[DueCoupon]:
    return [DueCoupon(**r) for r in await conn.fetch(DUE_TO_EXPIRE, now, limit)]


async def mark_expired(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> None:
    await conn.execute(MARK_EXPIRED, merchant_id, reward_id)


class CustomerCoupon(msgspec.Struct, frozen=True):
    reward_id: int
    code: str
    status: str
    amount: int
    currency: str
    expires_at: datetime
    created_at: datetime


async def customer_coupons(
    conn: asyncpg.Connection, merchant_id: int, reward_ids: list[int]
) -> list[CustomerCoupon]:
    rows = await conn.fetch(CUSTOMER_COUPONS, merchant_id, reward_ids)
    return [CustomerCoupon(**r) for r in rows]
