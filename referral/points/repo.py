"""SQL for points: rules versions, accounts, lots, their journal and redemptions. Every
statement names its merchant_id (the expiry job's first look finds the merchants)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from referral.lib.db import many, one

RULES = """
SELECT program_id, version, rules, created_at FROM points_rules
WHERE merchant_id = $1 AND program_id = $2 ORDER BY version DESC LIMIT 1
"""

# A new version; two changes at once both read the same last version, and the second
# finds its number taken (None: the caller says so).
INSERT_RULES = """
INSERT INTO points_rules (merchant_id, program_id, version, rules)
SELECT $1, $2, coalesce(max(version), 0) + 1, $3 FROM points_rules
WHERE merchant_id = $1 AND program_id = $2
ON CONFLICT DO NOTHING
RETURNING program_id, version, rules, created_at
"""

# The write every earning shares, after a CTE `e` of (program_id, version, points, months,
# since): the account (its last activity, and its expiry when the program counts from the
# last activity), the lot (once per source and key: a retry earns nothing more) and its
# first journal entry. $1 merchant, $2 customer, $3 source, $4 source key, $5 at, $6 order.
_EARN_TAIL = """
, a AS (
    INSERT INTO points_accounts AS acc (merchant_id, program_id, customer_id, last_activity_at,
                                        expires_at)
    SELECT $1, e.program_id, $2, $5::timestamptz,
           CASE WHEN e.since = 'activity' THEN $5::timestamptz + make_interval(months => e.months)
           END
    FROM e WHERE e.points > 0
    ON CONFLICT (merchant_id, program_id, customer_id) DO UPDATE
    SET last_activity_at = greatest(acc.last_activity_at, excluded.last_activity_at),
        expires_at = CASE WHEN excluded.expires_at IS NULL THEN NULL
                          ELSE greatest(acc.expires_at, excluded.expires_at) END,
        expiring_told_at = CASE WHEN excluded.expires_at > acc.expires_at THEN NULL
                                ELSE acc.expiring_told_at END
    RETURNING program_id
), lot AS (
    INSERT INTO points_lots (merchant_id, program_id, customer_id, source, source_key, points,
                             remaining, earned_at, expires_at, rules_version, order_pk)
    SELECT $1, e.program_id, $2, $3::text, $4::text, e.points, e.points, $5::timestamptz,
           CASE WHEN e.since = 'earned' THEN $5::timestamptz + make_interval(months => e.months)
           END,
           e.version, $6::bigint
    FROM e WHERE e.points > 0
    ON CONFLICT DO NOTHING
    RETURNING id, program_id, points
), entry AS (
    INSERT INTO points_entries (merchant_id, program_id, customer_id, lot_id, kind, delta, ref)
    SELECT $1, lot.program_id, $2, lot.id, 'earn', lot.points, $3::text || ':' || $4::text
    FROM lot
)
SELECT lot.program_id, lot.points, e.has_levels FROM lot JOIN e USING (program_id)
"""

# The current rules of each program of merchant $1 running at $5 (active, started, not
# ended): what an order or a signup earns by.
_RUNNING_RULES = """
r AS (
    SELECT DISTINCT ON (pr.program_id) pr.program_id, pr.version, pr.rules
    FROM points_rules pr
    JOIN programs p ON p.merchant_id = pr.merchant_id AND p.id = pr.program_id
    WHERE pr.merchant_id = $1 AND p.status = 'active' AND p.starts_at <= $5
      AND (p.ends_at IS NULL OR p.ends_at > $5)
    ORDER BY pr.program_id, pr.version DESC
)"""

# An order's points, in the order's transaction, one statement: each running program with
# an order rule for the currency earns `points` per `per` minor units of the subtotal,
# times the customer's level multiplier, rounded down. $7 subtotal, $8 currency.
EARN_ORDER = (
    "WITH"
    + _RUNNING_RULES
    + """, e AS (
    SELECT r.program_id, r.version,
           coalesce((r.rules #>> '{expiry,months}')::int, 12) AS months,
           coalesce(r.rules #>> '{expiry,since}', 'earned') AS since,
           r.rules ? 'levels' AS has_levels,
           coalesce((r.rules #>> '{earning,order,points}')::bigint, 1)
             * coalesce(l.multiplier_bp, 10000) * $7::bigint
             / ((r.rules #> '{earning,order,per}' ->> $8::text)::bigint * 10000) AS points
    FROM r LEFT JOIN customer_levels l
         ON l.merchant_id = $1 AND l.program_id = r.program_id AND l.customer_id = $2
    WHERE coalesce((r.rules #>> '{earning,order,enabled}')::boolean, true)
      AND r.rules #> '{earning,order,per}' ? $8::text
)"""
    + _EARN_TAIL
)

# A signup's points in every running program with a signup rule: the same write.
EARN_SIGNUP = (
    "WITH"
    + _RUNNING_RULES
    + """, e AS (
    SELECT r.program_id, r.version,
           coalesce((r.rules #>> '{expiry,months}')::int, 12) AS months,
           coalesce(r.rules #>> '{expiry,since}', 'earned') AS since,
           r.rules ? 'levels' AS has_levels,
           coalesce((r.rules #>> '{earning,signup,points}')::bigint, 1)
             * coalesce(l.multiplier_bp, 10000) / 10000 AS points
    FROM r LEFT JOIN customer_levels l
         ON l.merchant_id = $1 AND l.program_id = r.program_id AND l.customer_id = $2
    WHERE r.rules #> '{earning,signup}' IS NOT NULL
      AND coalesce((r.rules #>> '{earning,signup,enabled}')::boolean, true)
      AND $6::bigint IS NULL
)"""
    + _EARN_TAIL
)

# Birthdays on this day of the year, set at least 30 days before it, of the merchants'
# customers, in programs with a birthday rule: (merchant, program, customer).
BIRTHDAYS_DUE = """
SELECT cp.merchant_id, pr.program_id, cp.customer_id
FROM customer_preferences cp
JOIN LATERAL (
    SELECT DISTINCT ON (x.program_id) x.program_id, x.rules FROM points_rules x
    WHERE x.merchant_id = cp.merchant_id ORDER BY x.program_id, x.version DESC
) pr ON pr.rules #> '{earning,birthday}' IS NOT NULL
     AND coalesce((pr.rules #>> '{earning,birthday,enabled}')::boolean, true)
WHERE extract(month FROM cp.birthday) = $1 AND extract(day FROM cp.birthday) = $2
  AND cp.birthday_set_at <= $3::timestamptz - interval '30 days'
  AND NOT EXISTS (SELECT 1 FROM points_lots l WHERE l.merchant_id = cp.merchant_id
                  AND l.program_id = pr.program_id AND l.customer_id = cp.customer_id
                  AND l.source = 'birthday' AND l.source_key = $4)
LIMIT $5
"""

# Fixed points for one thing done (a referral, a share, a story, a birthday, a signup).
# $7 program, $8 rules version, $9 points, $10 expiry months, $11 expiry since.
EARN_FIXED = (
    """
WITH e AS (
    SELECT $7::bigint AS program_id, $8::int AS version, $9::bigint AS points,
           $10::int AS months, $11::text AS since, false AS has_levels
)"""
    + _EARN_TAIL
)

ACCOUNT = """
SELECT last_activity_at, expires_at, expiring_told_at FROM points_accounts
WHERE merchant_id = $1 AND program_id = $2 AND customer_id = $3
"""

LOCK_ACCOUNT = ACCOUNT + "FOR UPDATE"

# A customer's open lots, oldest first: what a spend takes from.
OPEN_LOTS = """
SELECT id, source, points, remaining, earned_at, expires_at, expiring_told_at AS told_at
FROM points_lots
WHERE merchant_id = $1 AND program_id = $2 AND customer_id = $3 AND remaining > 0
ORDER BY earned_at, id
"""

# Points moved on lots, each with its journal entry, in one statement.
MOVE = """
WITH t AS (SELECT * FROM unnest($4::bigint[], $5::bigint[]) AS t(lot_id, delta)),
u AS (
    UPDATE points_lots l SET remaining = l.remaining + t.delta
    FROM t WHERE l.merchant_id = $1 AND l.id = t.lot_id
    RETURNING l.id
)
INSERT INTO points_entries (merchant_id, program_id, customer_id, lot_id, kind, delta, ref)
SELECT $1, $2, $3, t.lot_id, $6, t.delta, $7 FROM t
"""

# The entries a reference made (a redemption's spend, an order's refunds).
ENTRIES_OF = """
SELECT lot_id, delta FROM points_entries
WHERE merchant_id = $1 AND program_id = $2 AND customer_id = $3 AND kind = $4 AND ref = $5
"""

HISTORY = """
SELECT kind, delta, lot_id, ref, created_at FROM points_entries
WHERE merchant_id = $1 AND program_id = $2 AND customer_id = $3
ORDER BY id DESC LIMIT $4
"""

# The lots an order earned (one per program), locked as the refund changes them.
ORDER_LOTS = """
SELECT id, program_id, customer_id, points FROM points_lots
WHERE merchant_id = $1 AND order_pk = $2 AND source = 'order'
ORDER BY id
"""

INSERT_REDEMPTION = """
INSERT INTO points_redemptions (merchant_id, program_id, customer_id, item, points, reward_id)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, program_id, customer_id, item, points, reward_id, status, created_at, cancelled_at
"""

REDEMPTION = """
SELECT id, program_id, customer_id, item, points, reward_id, status, created_at, cancelled_at
FROM points_redemptions WHERE merchant_id = $1 AND id = $2 AND customer_id = $3
"""

CANCEL_REDEMPTION = """
UPDATE points_redemptions SET status = 'cancelled', cancelled_at = now()
WHERE merchant_id = $1 AND id = $2
RETURNING id, program_id, customer_id, item, points, reward_id, status, created_at, cancelled_at
"""

REDEMPTIONS = """
SELECT id, program_id, customer_id, item, points, reward_id, status, created_at, cancelled_at
FROM points_redemptions WHERE merchant_id = $1 AND program_id = $2 AND customer_id = $3
ORDER BY id DESC LIMIT $4
"""

# --- the expiry job (any number of instances) --------------------------------------------
# Accounts with lots past their expiry, or whose last-activity expiry has passed, or that
# are due a `points.expiring` notice: found without a lock, then each account is taken
# FOR UPDATE SKIP LOCKED (another instance has the rest).
DUE_ACCOUNTS = """
SELECT DISTINCT merchant_id, program_id, customer_id FROM (
    SELECT merchant_id, program_id, customer_id FROM points_lots
    WHERE remaining > 0 AND expires_at <= $1::timestamptz + $2::interval
      AND (expires_at <= $1 OR expiring_told_at IS NULL)
    UNION ALL
    SELECT a.merchant_id, a.program_id, a.customer_id FROM points_accounts a
    WHERE a.expires_at <= $1::timestamptz + $2::interval
      AND (a.expires_at <= $1 OR a.expiring_told_at IS NULL)
      AND EXISTS (SELECT 1 FROM points_lots l WHERE l.merchant_id = a.merchant_id
                  AND l.program_id = a.program_id AND l.customer_id = a.customer_id
                  AND l.remaining > 0)
) due
LIMIT $3
"""

TAKE_ACCOUNT = """
SELECT last_activity_at, expires_at, expiring_told_at FROM points_accounts
WHERE merchant_id = $1 AND program_id = $2 AND customer_id = $3
FOR UPDATE SKIP LOCKED
"""

LOT_TOLD = """
UPDATE points_lots SET expiring_told_at = $4
WHERE merchant_id = $1 AND program_id = $2 AND customer_id = $3 AND id = ANY($5::bigint[])
"""

ACCOUNT_TOLD = """
UPDATE points_accounts SET expiring_told_at = $4
WHERE merchant_id = $1 AND program_id = $2 AND customer_id = $3
"""

# Points earned in the rolling year (levels that count points): lots earned since, less
# what refunds took back of them.
EARNED_SINCE = """
SELECT coalesce(sum(l.points), 0)::bigint
       + coalesce((SELECT sum(x.delta) FROM points_entries x JOIN points_lots y
                   ON y.merchant_id = x.merchant_id AND y.id = x.lot_id
                   WHERE x.merchant_id = $1 AND x.program_id = $2 AND x.customer_id = $3
                     AND x.kind = 'refund' AND y.earned_at >= $4), 0)::bigint
FROM points_lots l
WHERE l.merchant_id = $1 AND l.program_id = $2 AND l.customer_id = $3 AND l.earned_at >= $4
"""

# Customers whose order's points changed (for levels): by order.
ORDER_CUSTOMERS = """
SELECT DISTINCT program_id, customer_id FROM points_lots
WHERE merchant_id = $1 AND order_pk = $2 AND source = 'order'
"""

SHARES_TODAY = """
SELECT count(*) FROM points_lots
WHERE merchant_id = $1 AND program_id = $2 AND customer_id = $3 AND source = 'share'
  AND earned_at >= $4
"""


class RulesRow(msgspec.Struct, frozen=True):
    program_id: int
    version: int
    rules: dict[str, Any]
    created_at: datetime


class LotRow(msgspec.Struct, frozen=True):
    id: int
    source: str
    points: int
    remaining: int
    earned_at: datetime
    expires_at: datetime | None
    told_at: datetime | None


class EntryRow(msgspec.Struct, frozen=True):
    kind: str
    delta: int
    lot_id: int
    ref: str | None
    created_at: datetime


class AccountRow(msgspec.Struct, frozen=True):
    last_activity_at: datetime
    expires_at: datetime | None
    expiring_told_at: datetime | None = None


class OrderLot(msgspec.Struct, frozen=True):
    id: int
    program_id: int
    customer_id: str
    points: int


class RedemptionRow(msgspec.Struct, frozen=True):
    id: int
    program_id: int
    customer_id: str
    item: str
    points: int
    reward_id: int
    status: str
    created_at: datetime
    cancelled_at: datetime | None


class DueAccount(msgspec.Struct, frozen=True):
    merchant_id: int
    program_id: int
    customer_id: str


async def rules(conn: asyncpg.Connection, merchant_id: int, program_id: int) -> RulesRow | None:
    return one(RulesRow, await conn.fetchrow(RULES, merchant_id, program_id))


async def insert_rules(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, rules: dict[str, Any]
) -> RulesRow | None:
    return one(RulesRow, await conn.fetchrow(INSERT_RULES, merchant_id, program_id, rules))


async def earn_order(
    conn: asyncpg.Connection,
    merchant_id: int,
    customer_id: str,
    order_pk: int,
    at: datetime,
    subtotal: int,
    currency: str,
) -> list[tuple[int, bool]]:
    """(program, whether it has levels) for each program the order earned points in."""
    rows = await conn.fetch(
        EARN_ORDER,
        merchant_id,
        customer_id,
        "order",
        str(order_pk),
        at,
        order_pk,
        subtotal,
        currency,
    )
    return [(r["program_id"], r["has_levels"]) for r in rows]


async def earn_signup(
    conn: asyncpg.Connection, merchant_id: int, customer_id: str, at: datetime
) -> list[tuple[int, bool]]:
    rows = await conn.fetch(EARN_SIGNUP, merchant_id, customer_id, "signup", "signup", at, None)
    return [(r["program_id"], r["has_levels"]) for r in rows]


async def birthdays_due(
    conn: asyncpg.Connection, month: int, day: int, now: datetime, year: str, limit: int
) -> list[DueAccount]:
    return many(DueAccount, await conn.fetch(BIRTHDAYS_DUE, month, day, now, year, limit))


async def earn_fixed(
    conn: asyncpg.Connection,
    merchant_id: int,
    customer_id: str,
    source: str,
    source_key: str,
    at: datetime,
    program_id: int,
    version: int,
    points: int,
    months: int,
    since: str,
) -> int:
    """The points the lot holds (0: earned before under this key)."""
    row = await conn.fetchrow(
        EARN_FIXED,
        merchant_id,
        customer_id,
        source,
        source_key,
        at,
        None,
        program_id,
        version,
        points,
        months,
        since,
    )
    return row["points"] if row else 0


async def account(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, customer_id: str
) -> AccountRow | None:
    return one(AccountRow, await conn.fetchrow(ACCOUNT, merchant_id, program_id, customer_id))


async def lock_account(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, customer_id: str
) -> AccountRow | None:
    return one(AccountRow, await conn.fetchrow(LOCK_ACCOUNT, merchant_id, program_id, customer_id))


async def take_account(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, customer_id: str
) -> AccountRow | None:
    return one(AccountRow, await conn.fetchrow(TAKE_ACCOUNT, merchant_id, program_id, customer_id))


async def open_lots(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, customer_id: str
) -> list[LotRow]:
    return many(LotRow, await conn.fetch(OPEN_LOTS, merchant_id, program_id, customer_id))


async def move(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    moves: list[tuple[int, int]],
    kind: str,
    ref: str,
) -> None:
    if not moves:
        return
    await conn.execute(
        MOVE,
        merchant_id,
        program_id,
        customer_id,
        [m[0] for m in moves],
        [m[1] for m in moves],
        kind,
        ref,
    )


async def entries_of(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    kind: str,
    ref: str,
) -> list[tuple[int, int]]:
    rows = await conn.fetch(ENTRIES_OF, merchant_id, program_id, customer_id, kind, ref)
    return [(r["lot_id"], r["delta"]) for r in rows]


async def history(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, customer_id: str, limit: int
) -> list[EntryRow]:
    return many(EntryRow, await conn.fetch(HISTORY, merchant_id, program_id, customer_id, limit))


async def order_lots(conn: asyncpg.Connection, merchant_id: int, order_pk: int) -> list[OrderLot]:
    return many(OrderLot, await conn.fetch(ORDER_LOTS, merchant_id, order_pk))


async def insert_redemption(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    item: str,
    points: int,
    reward_id: int,
) -> RedemptionRow:
    row = await conn.fetchrow(
        INSERT_REDEMPTION, merchant_id, program_id, customer_id, item, points, reward_id
    )
    return msgspec.convert(dict(row), RedemptionRow)


async def redemption(
    conn: asyncpg.Connection, merchant_id: int, redemption_id: int, customer_id: str
) -> RedemptionRow | None:
    return one(
        RedemptionRow, await conn.fetchrow(REDEMPTION, merchant_id, redemption_id, customer_id)
    )


async def cancel_redemption(
    conn: asyncpg.Connection, merchant_id: int, redemption_id: int
) -> RedemptionRow:
    row = await conn.fetchrow(CANCEL_REDEMPTION, merchant_id, redemption_id)
    return msgspec.convert(dict(row), RedemptionRow)


async def redemptions(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, customer_id: str, limit: int
) -> list[RedemptionRow]:
    return many(
        RedemptionRow, await conn.fetch(REDEMPTIONS, merchant_id, program_id, customer_id, limit)
    )


async def due_accounts(
    conn: asyncpg.Connection, now: datetime, notice_days: int, limit: int
) -> list[DueAccount]:
    rows = await conn.fetch(DUE_ACCOUNTS, now, timedelta(days=notice_days), limit)
    return many(DueAccount, rows)


async def mark_told(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    at: datetime,
    lot_ids: list[int],
    account: bool,
) -> None:
    if lot_ids:
        await conn.execute(LOT_TOLD, merchant_id, program_id, customer_id, at, lot_ids)
    if account:
        await conn.execute(ACCOUNT_TOLD, merchant_id, program_id, customer_id, at)


async def earned_since(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, customer_id: str, since: datetime
) -> int:
    return await conn.fetchval(EARNED_SINCE, merchant_id, program_id, customer_id, since)


async def shares_since(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, customer_id: str, since: datetime
) -> int:
    return await conn.fetchval(SHARES_TODAY, merchant_id, program_id, customer_id, since)


ADVOCATE = """
SELECT a.customer_id, m.time_zone FROM advocates a JOIN merchants m ON m.id = a.merchant_id
WHERE a.merchant_id = $1 AND a.id = $2
"""


async def advocate(
    conn: asyncpg.Connection, merchant_id: int, advocate_id: int
) -> tuple[str, str] | None:
    """The advocate's customer id and their merchant's time zone."""
    row = await conn.fetchrow(ADVOCATE, merchant_id, advocate_id)
    return (row["customer_id"], row["time_zone"]) if row else None


# An erasure: the customer id becomes the tombstone (lots and redemptions follow their
# account by ON UPDATE CASCADE; the journal is changed in this one column only).
ERASE = """
WITH a AS (
    UPDATE points_accounts SET customer_id = $3 WHERE merchant_id = $1 AND customer_id = $2
    RETURNING 1
), e AS (
    UPDATE points_entries SET customer_id = $3 WHERE merchant_id = $1 AND customer_id = $2
    RETURNING 1
)
SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM e)
"""


async def erase(
    conn: asyncpg.Connection, merchant_id: int, customer_id: str, tombstone: str
) -> int:
    return await conn.fetchval(ERASE, merchant_id, customer_id, tombstone)


PROGRAM_EXISTS = "SELECT EXISTS (SELECT 1 FROM programs WHERE merchant_id = $1 AND id = $2)"


async def program_exists(conn: asyncpg.Connection, merchant_id: int, program_id: int) -> bool:
    return await conn.fetchval(PROGRAM_EXISTS, merchant_id, program_id)
