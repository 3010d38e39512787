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
       r.hold_until, f.friend_customer_id, c.redeemed_order_id
FROM coupons c JOIN rewards r ON r.merchant_id = c.merchant_id AND r.id = c.reward_id
LEFT JOIN referrals f ON f.merchant_id = r.merchant_id AND f.id = r.referral_id
WHERE c.merchant_id = $1 AND c.code = $2
"""

# A code as the shop typed it, found without case (pool codes keep the shop's spelling).
FIND_CODE = """
SELECT code FROM coupons WHERE merchant_id = $1 AND lower(code) = lower($2) LIMIT 1
"""

# Redeeming locks the coupon first: a concurrent approval or reversal of its reward updates
# this row in its transaction, so the lock waits for it, and the checks after it read the
# coupon as that transaction left it. (A bare `UPDATE ... WHERE status = 'issued'` would
# skip a row its snapshot still saw held, while the approval commits.)
LOCK = "SELECT 1 FROM coupons WHERE merchant_id = $1 AND code = $2 FOR UPDATE"

# $3 the order's row when the order is reported, $4 the shop's order id (a redemption
# reported on its own names only that; the order, when it comes, fills in its row).
REDEEM = """
UPDATE coupons SET status = 'redeemed', redeemed_order_pk = coalesce($3, redeemed_order_pk),
                   redeemed_order_id = $4, redeemed_at = coalesce(redeemed_at, now())
WHERE merchant_id = $1 AND code = $2 AND status IN ('issued', 'redeemed')
"""

# A cancelled or fully refunded order gives back the coupons it redeemed, where the
# coupon's program says so ($3: the order's row).
RELEASE_FOR_ORDER = """
UPDATE coupons c SET status = 'issued', redeemed_order_pk = NULL, redeemed_order_id = NULL,
                     redeemed_at = NULL
FROM rewards r JOIN programs p ON p.merchant_id = r.merchant_id AND p.id = r.program_id
WHERE c.merchant_id = $1 AND c.redeemed_order_pk = $2 AND c.status = 'redeemed'
  AND r.merchant_id = c.merchant_id AND r.id = c.reward_id
  AND coalesce((p.rewards ->> 'release_coupon_on_refund')::boolean, false)
RETURNING c.code
"""

# --- pools -------------------------------------------------------------------------------

_POOL = """p.id, p.program_id, p.currency, p.name, p.low_below, p.low_days, p.low_since,
    p.created_at,
    (SELECT count(*) FROM coupon_pool_codes k
     WHERE k.merchant_id = p.merchant_id AND k.pool_id = p.id AND k.reward_id IS NULL)
        AS available,
    (SELECT count(*) FROM coupon_pool_codes k
     WHERE k.merchant_id = p.merchant_id AND k.pool_id = p.id AND k.reward_id IS NOT NULL)
        AS assigned"""

INSERT_POOL = """
INSERT INTO coupon_pools (merchant_id, program_id, currency, name, low_below, low_days)
VALUES ($1, $2, $3, $4, $5::int, $6::int) RETURNING id
"""

POOL = f"SELECT {_POOL} FROM coupon_pools p WHERE p.merchant_id = $1 AND p.id = $2"

LOCK_POOL = "SELECT 1 FROM coupon_pools WHERE merchant_id = $1 AND id = $2 FOR UPDATE"

POOLS = f"""
SELECT {_POOL} FROM coupon_pools p WHERE p.merchant_id = $1 AND p.program_id = $2
ORDER BY p.id
"""

# New codes ($3), each kept once: a code already in any pool of the merchant, or given as a
# coupon, compared without case, is a duplicate. Answers the codes added.
ADD_CODES = """
WITH given AS (
    SELECT DISTINCT ON (lower(code)) code, n FROM unnest($3::text[]) WITH ORDINALITY AS g(code, n)
    ORDER BY lower(code), n
), added AS (
    INSERT INTO coupon_pool_codes (merchant_id, pool_id, code, added_at)
    SELECT $1, $2, g.code, clock_timestamp() FROM given g
    WHERE NOT EXISTS (SELECT 1 FROM coupons c
                      WHERE c.merchant_id = $1 AND lower(c.code) = lower(g.code))
    ORDER BY g.n
    ON CONFLICT DO NOTHING
    RETURNING code
)
SELECT count(*) FROM added
"""

# The oldest free code of the program's pools in the currency, given to the reward ($5).
# SKIP LOCKED: concurrent orders take different codes, none waits for another.
TAKE_CODE = """
WITH free AS (
    SELECT k.merchant_id, k.pool_id, k.code FROM coupon_pool_codes k
    JOIN coupon_pools p ON p.merchant_id = k.merchant_id AND p.id = k.pool_id
    WHERE k.merchant_id = $1 AND p.program_id = $2 AND p.currency = $3 AND k.reward_id IS NULL
    ORDER BY p.id, k.added_at, k.code
    LIMIT 1
    FOR UPDATE OF k SKIP LOCKED
)
UPDATE coupon_pool_codes k SET reward_id = $4, assigned_at = now()
FROM free WHERE k.merchant_id = free.merchant_id AND k.pool_id = free.pool_id
                AND k.code = free.code
RETURNING k.pool_id, k.code
"""

# Typed codes that are referral codes (by their folded form): a pool code must not be one.
REFERRAL_CODES = "SELECT lookup_key FROM codes WHERE lookup_key = ANY($1::text[])"


# Whether the pool runs low: fewer than `low_below` codes left, or fewer than `low_days` days
# of use at the last seven days' rate. Both counts stop early (LIMIT): a large pool costs no
# more to check than a small one.
LOW = """
WITH pool AS (
    SELECT id, low_below, low_days FROM coupon_pools WHERE merchant_id = $1 AND id = $2
), recent AS (
    SELECT count(*) AS n FROM (
        SELECT 1 FROM coupon_pool_codes k, pool
        WHERE k.merchant_id = $1 AND k.pool_id = pool.id AND k.reward_id IS NOT NULL
          AND k.assigned_at > now() - interval '7 days'
        LIMIT 100000) r
), threshold AS (
    SELECT greatest(pool.low_below, ceil(recent.n * pool.low_days / 7.0))::bigint AS t
    FROM pool, recent
), free AS (
    SELECT count(*) AS n FROM (
        SELECT 1 FROM coupon_pool_codes k, pool, threshold
        WHERE k.merchant_id = $1 AND k.pool_id = pool.id AND k.reward_id IS NULL
        LIMIT (SELECT t FROM threshold)) f
)
SELECT free.n AS available, threshold.t AS threshold, recent.n AS used_last_7_days
FROM free, threshold, recent
"""

MARK_LOW = """
UPDATE coupon_pools SET low_since = now()
WHERE merchant_id = $1 AND id = $2 AND low_since IS NULL RETURNING id
"""

CLEAR_LOW = "UPDATE coupon_pools SET low_since = NULL WHERE merchant_id = $1 AND id = $2"

INSERT_WAIT = """
INSERT INTO coupon_waits (merchant_id, reward_id, program_id, currency, amount, valid_days)
VALUES ($1, $2, $3, $4, $5, $6::int) ON CONFLICT DO NOTHING
"""

# The rewards waiting for a code of this program and currency, oldest first, with their
# reward's state now (a reversed one waits on, in case it is reinstated).
WAITING = """
SELECT w.reward_id, w.amount, w.valid_days, r.status AS reward_status
FROM coupon_waits w JOIN rewards r ON r.merchant_id = w.merchant_id AND r.id = w.reward_id
WHERE w.merchant_id = $1 AND w.program_id = $2 AND w.currency = $3 AND r.status <> 'reversed'
ORDER BY w.since, w.reward_id
LIMIT $4
FOR UPDATE OF w SKIP LOCKED
"""

END_WAIT = "DELETE FROM coupon_waits WHERE merchant_id = $1 AND reward_id = $2"

WAITS_OF = """
SELECT reward_id FROM coupon_waits WHERE merchant_id = $1 AND reward_id = ANY($2::bigint[])
"""

WAITING_COUNT = """
SELECT count(*) FROM coupon_waits w JOIN rewards r ON r.merchant_id = w.merchant_id
    AND r.id = w.reward_id
WHERE w.merchant_id = $1 AND w.program_id = $2 AND w.currency = $3 AND r.status <> 'reversed'
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
    code: str | None  # None: awaiting a code from the program's pool
    status: str
    expires_at: datetime | None


class TypedCoupon(msgspec.Struct, frozen=True):
    code: str
    status: str
    amount: int
    currency: str
    expires_at: datetime
    reward_status: str
    hold_until: datetime
    friend_customer_id: str | None
    redeemed_order_id: str | None


class PoolRow(msgspec.Struct, frozen=True):
    id: int
    program_id: int
    currency: str
    name: str
    low_below: int
    low_days: int
    low_since: datetime | None
    created_at: datetime
    available: int
    assigned: int


class Taken(msgspec.Struct, frozen=True):
    pool_id: int
    code: str


class Low(msgspec.Struct, frozen=True):
    available: int
    threshold: int
    used_last_7_days: int


class Waiting(msgspec.Struct, frozen=True):
    reward_id: int
    amount: int
    valid_days: int
    reward_status: str


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


async def redeem(
    conn: asyncpg.Connection, merchant_id: int, code: str, order_pk: int | None, order_id: str
) -> None:
    await conn.execute(REDEEM, merchant_id, code, order_pk, order_id)


async def find_code(conn: asyncpg.Connection, merchant_id: int, typed: str) -> str | None:
    return await conn.fetchval(FIND_CODE, merchant_id, typed)


async def release_for_order(conn: asyncpg.Connection, merchant_id: int, order_pk: int) -> list[str]:
    return [r["code"] for r in await conn.fetch(RELEASE_FOR_ORDER, merchant_id, order_pk)]


async def insert_pool(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    currency: str,
    name: str,
    low_below: int,
    low_days: int,
) -> int:
    return await conn.fetchval(
        INSERT_POOL, merchant_id, program_id, currency, name, low_below, low_days
    )


def _pool(row: asyncpg.Record) -> PoolRow:
    return PoolRow(**{**row, "currency": row["currency"].strip()})


async def pool(conn: asyncpg.Connection, merchant_id: int, pool_id: int) -> PoolRow | None:
    row = await conn.fetchrow(POOL, merchant_id, pool_id)
    return None if row is None else _pool(row)


async def lock_pool(conn: asyncpg.Connection, merchant_id: int, pool_id: int) -> None:
    await conn.execute(LOCK_POOL, merchant_id, pool_id)


async def pools(conn: asyncpg.Connection, merchant_id: int, program_id: int) -> list[PoolRow]:
    return [_pool(r) for r in await conn.fetch(POOLS, merchant_id, program_id)]


async def add_codes(
    conn: asyncpg.Connection, merchant_id: int, pool_id: int, codes: list[str]
) -> int:
    return await conn.fetchval(ADD_CODES, merchant_id, pool_id, codes)


async def take_code(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, currency: str, reward_id: int
) -> Taken | None:
    row = await conn.fetchrow(TAKE_CODE, merchant_id, program_id, currency, reward_id)
    return None if row is None else Taken(**row)


async def low(conn: asyncpg.Connection, merchant_id: int, pool_id: int) -> Low:
    return Low(**await conn.fetchrow(LOW, merchant_id, pool_id))


async def mark_low(conn: asyncpg.Connection, merchant_id: int, pool_id: int) -> bool:
    return await conn.fetchval(MARK_LOW, merchant_id, pool_id) is not None


async def clear_low(conn: asyncpg.Connection, merchant_id: int, pool_id: int) -> None:
    await conn.execute(CLEAR_LOW, merchant_id, pool_id)


async def insert_wait(
    conn: asyncpg.Connection,
    merchant_id: int,
    reward_id: int,
    program_id: int,
    currency: str,
    amount: int,
    valid_days: int,
) -> None:
    await conn.execute(
        INSERT_WAIT, merchant_id, reward_id, program_id, currency, amount, valid_days
    )


async def waiting(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, currency: str, limit: int
) -> list[Waiting]:
    rows = await conn.fetch(WAITING, merchant_id, program_id, currency, limit)
    return [Waiting(**r) for r in rows]


async def end_wait(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> None:
    await conn.execute(END_WAIT, merchant_id, reward_id)


async def waits_of(conn: asyncpg.Connection, merchant_id: int, reward_ids: list[int]) -> set[int]:
    return {r["reward_id"] for r in await conn.fetch(WAITS_OF, merchant_id, reward_ids)}


async def waiting_count(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, currency: str
) -> int:
    return await conn.fetchval(WAITING_COUNT, merchant_id, program_id, currency)


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


async def referral_codes(conn: asyncpg.Connection, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    return {r["lookup_key"] for r in await conn.fetch(REFERRAL_CODES, keys)}
