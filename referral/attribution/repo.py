"""SQL for orders, refunds, signups and referrals. Every statement is scoped by merchant_id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from referral.lib.pagination import CURSOR_CLAUSE

INSERT_ORDER = """
INSERT INTO orders (merchant_id, order_id, customer_id, email_normalised, subtotal, total,
                    currency, occurred_at, is_import, fingerprint, metadata, ip_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (merchant_id, order_id) DO NOTHING
RETURNING id
"""

ORDER_BY_ID = """
SELECT id, order_id, customer_id, email_normalised, subtotal, total, currency, refunded,
       status, occurred_at, referral_id, fingerprint, result
FROM orders WHERE merchant_id = $1 AND order_id = $2
"""

SET_ORDER_RESULT = """
UPDATE orders SET referral_id = $3, result = $4 WHERE merchant_id = $1 AND id = $2
"""

SET_ORDER_REFUNDED = """
UPDATE orders SET refunded = $3, status = $4 WHERE merchant_id = $1 AND id = $2
"""

# The friend is known by customer id and/or email: one indexed probe per key, never an OR
# that a generic plan could answer by scanning every order of the merchant.
BOUGHT_BEFORE = """
SELECT EXISTS (SELECT 1 FROM orders
               WHERE merchant_id = $1 AND customer_id = $3 AND id <> $2
                 AND (occurred_at, id) < ($5, $2) AND status <> 'cancelled')
    OR EXISTS (SELECT 1 FROM orders
               WHERE merchant_id = $1 AND email_normalised = $4 AND id <> $2
                 AND (occurred_at, id) < ($5, $2) AND status <> 'cancelled')
"""

HAS_ORDERS = """
SELECT EXISTS (SELECT 1 FROM orders
               WHERE merchant_id = $1 AND customer_id = $2 AND status <> 'cancelled')
    OR EXISTS (SELECT 1 FROM orders
               WHERE merchant_id = $1 AND email_normalised = $3 AND status <> 'cancelled')
"""

INSERT_REFUND = """
INSERT INTO refunds (merchant_id, order_pk, refund_id, amount, currency, occurred_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (merchant_id, order_pk, refund_id) DO NOTHING
RETURNING id
"""

REFUND_BY_ID = """
SELECT amount, currency FROM refunds WHERE merchant_id = $1 AND order_pk = $2 AND refund_id = $3
"""

INSERT_SIGNUP = """
INSERT INTO signups (merchant_id, customer_id, email_normalised, occurred_at, ip_hash)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (merchant_id, customer_id) DO NOTHING
RETURNING id
"""

SIGNUP_RESULT = "SELECT result FROM signups WHERE merchant_id = $1 AND customer_id = $2"
SET_SIGNUP_RESULT = """
UPDATE signups SET referral_id = $3, result = $4 WHERE merchant_id = $1 AND id = $2
"""

REFERRAL_COLUMNS = """id, merchant_id, program_id, advocate_id, friend_key, friend_customer_id,
friend_email_normalised, status, source, attribution, decision, rejection_reason,
signed_up_at, converted_at, first_order_pk, created_at"""

LIVE_REFERRAL = f"""
SELECT {REFERRAL_COLUMNS} FROM (
    SELECT {REFERRAL_COLUMNS} FROM referrals
    WHERE merchant_id = $1 AND friend_customer_id = $3 AND status <> 'rejected'
      AND ($2::bigint IS NULL OR program_id = $2)
    UNION
    SELECT {REFERRAL_COLUMNS} FROM referrals
    WHERE merchant_id = $1 AND friend_email_normalised = $4 AND status <> 'rejected'
      AND ($2::bigint IS NULL OR program_id = $2)
) AS friend_referrals
ORDER BY created_at, id
LIMIT 1
"""

INSERT_REFERRAL = f"""
INSERT INTO referrals (merchant_id, program_id, advocate_id, friend_key, friend_customer_id,
                       friend_email_normalised, status, source, attribution, signed_up_at)
VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9)
ON CONFLICT (program_id, friend_key) WHERE status <> 'rejected' DO NOTHING
RETURNING {REFERRAL_COLUMNS}
"""

SETTLE_REFERRAL = f"""
UPDATE referrals SET status = $3, decision = $4, rejection_reason = $5,
       converted_at = CASE WHEN $3 IN ('converted', 'in_review') THEN $6 ELSE converted_at END,
       first_order_pk = coalesce(first_order_pk, $7)
WHERE merchant_id = $1 AND id = $2
RETURNING {REFERRAL_COLUMNS}
"""

GET_REFERRAL = f"SELECT {REFERRAL_COLUMNS} FROM referrals WHERE merchant_id = $1 AND id = $2"

LIST_REFERRALS = f"""
SELECT {REFERRAL_COLUMNS} FROM referrals t
WHERE t.merchant_id = $1 AND ($2::text IS NULL OR t.status = $2)
{CURSOR_CLAUSE.format(table="referrals")}
  AND ($7::bigint IS NULL OR t.advocate_id = $7)
  AND ($8::bigint IS NULL OR t.program_id = $8)
ORDER BY t.created_at, t.id
LIMIT $6
"""

CODE_TARGET = """
SELECT c.code, c.program_id, c.advocate_id, c.status = 'active' AS code_active
FROM codes c WHERE c.lookup_key = $1 AND c.merchant_id = $2
"""

PROGRAM = """
SELECT p.id, p.status, p.rewards, p.hold_days, p.attribution_window_days, p.starts_at,
       p.fraud_policy::text AS fraud_policy, p.fraud_policy_version, m.time_zone, m.mode
FROM programs p JOIN merchants m ON m.id = p.merchant_id
WHERE p.merchant_id = $1 AND p.id = $2
"""

ADVOCATE = "SELECT id, customer_id, email FROM advocates WHERE merchant_id = $1 AND id = $2"

ORDER_IDS_OF = "SELECT id, order_id FROM orders WHERE merchant_id = $1 AND id = ANY($2::bigint[])"

ORDER_BY_PK = """
SELECT id, subtotal, currency, occurred_at, is_import FROM orders
WHERE merchant_id = $1 AND id = $2
"""


async def insert_order(conn: asyncpg.Connection, *values: Any) -> int | None:
    return await conn.fetchval(INSERT_ORDER, *values)


async def order(
    conn: asyncpg.Connection, merchant_id: int, order_id: str, *, lock: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(ORDER_BY_ID + (" FOR UPDATE" if lock else ""), merchant_id, order_id)


async def set_order_result(
    conn: asyncpg.Connection, merchant_id: int, order_pk: int, referral_id: int | None, result: dict
) -> None:
    await conn.execute(SET_ORDER_RESULT, merchant_id, order_pk, referral_id, result)


async def set_order_refunded(
    conn: asyncpg.Connection, merchant_id: int, order_pk: int, refunded: int, status: str
) -> None:
    await conn.execute(SET_ORDER_REFUNDED, merchant_id, order_pk, refunded, status)


async def bought_before(
    conn: asyncpg.Connection,
    merchant_id: int,
    order_pk: int,
    customer_id: str | None,
    email: str | None,
    at: datetime,
) -> bool:
    return await conn.fetchval(BOUGHT_BEFORE, merchant_id, order_pk, customer_id, email, at)


async def has_orders(
    conn: asyncpg.Connection, merchant_id: int, customer_id: str | None, email: str | None
) -> bool:
    return await conn.fetchval(HAS_ORDERS, merchant_id, customer_id, email)


async def insert_refund(conn: asyncpg.Connection, *values: Any) -> int | None:
    return await conn.fetchval(INSERT_REFUND, *values)


async def refund(
    conn: asyncpg.Connection, merchant_id: int, order_pk: int, refund_id: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(REFUND_BY_ID, merchant_id, order_pk, refund_id)


async def insert_signup(
    conn: asyncpg.Connection,
    merchant_id: int,
    customer_id: str,
    email: str | None,
    at: datetime,
    ip_hash: bytes | None,
) -> int | None:
    return await conn.fetchval(INSERT_SIGNUP, merchant_id, customer_id, email, at, ip_hash)


async def signup_result(conn: asyncpg.Connection, merchant_id: int, customer_id: str) -> dict:
    return await conn.fetchval(SIGNUP_RESULT, merchant_id, customer_id)


async def set_signup_result(
    conn: asyncpg.Connection,
    merchant_id: int,
    signup_pk: int,
    referral_id: int | None,
    result: dict,
) -> None:
    await conn.execute(SET_SIGNUP_RESULT, merchant_id, signup_pk, referral_id, result)


async def live_referral(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int | None,
    customer_id: str | None,
    email: str | None,
) -> asyncpg.Record | None:
    return await conn.fetchrow(LIVE_REFERRAL, merchant_id, program_id, customer_id, email)


async def insert_referral(conn: asyncpg.Connection, *values: Any) -> asyncpg.Record | None:
    return await conn.fetchrow(INSERT_REFERRAL, *values)


async def settle_referral(
    conn: asyncpg.Connection,
    merchant_id: int,
    referral_id: int,
    status: str,
    decision: dict,
    rejection_reason: str | None,
    at: datetime,
    order_pk: int | None,
) -> asyncpg.Record:
    return await conn.fetchrow(
        SETTLE_REFERRAL, merchant_id, referral_id, status, decision, rejection_reason, at, order_pk
    )


async def referral(
    conn: asyncpg.Connection, merchant_id: int, referral_id: int
) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_REFERRAL, merchant_id, referral_id)


async def list_referrals(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    status: str | None,
    advocate_id: int | None,
    program_id: int | None,
    after_id: int | None,
    created_from: datetime | None,
    created_before: datetime | None,
    limit: int,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        LIST_REFERRALS,
        merchant_id,
        status,
        after_id,
        created_from,
        created_before,
        limit + 1,
        advocate_id,
        program_id,
    )


async def code_target(
    conn: asyncpg.Connection, key: str, merchant_id: int
) -> asyncpg.Record | None:
    return await conn.fetchrow(CODE_TARGET, key, merchant_id)


async def program(conn: asyncpg.Connection, merchant_id: int, program_id: int) -> asyncpg.Record:
    return await conn.fetchrow(PROGRAM, merchant_id, program_id)


async def advocate(
    conn: asyncpg.Connection, merchant_id: int, advocate_id: int, *, lock: bool = False
) -> asyncpg.Record:
    """The advocate; `lock` serialises orders that count towards its caps and tiers. NO KEY
    UPDATE, because the referral just inserted holds a key-share lock on this row through its
    foreign key: FOR UPDATE would deadlock two friends' orders of one advocate."""
    return await conn.fetchrow(
        ADVOCATE + (" FOR NO KEY UPDATE" if lock else ""), merchant_id, advocate_id
    )


async def order_by_pk(
    conn: asyncpg.Connection, merchant_id: int, order_pk: int
) -> asyncpg.Record | None:
    return await conn.fetchrow(ORDER_BY_PK, merchant_id, order_pk)


async def order_ids_of(
    conn: asyncpg.Connection, merchant_id: int, order_pks: list[int]
) -> dict[int, str]:
    """The shop's order ids of these orders, by internal id."""
    if not order_pks:
        return {}
    return {r["id"]: r["order_id"] for r in await conn.fetch(ORDER_IDS_OF, merchant_id, order_pks)}


async def lock_friend(conn: asyncpg.Connection, merchant_id: int, keys: list[str]) -> None:
    """Serialise everything about one friend: concurrent orders of one friend attribute once.
    Keys are locked in sorted order so two calls never deadlock."""
    for key in sorted(keys):
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, $2))", f"friend|{key}", merchant_id
        )
