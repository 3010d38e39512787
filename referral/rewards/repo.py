"""SQL for rewards, their ledger entries, transitions and coupons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from referral.lib.pagination import CURSOR_CLAUSE

COLUMNS = """id, merchant_id, program_id, referral_id, advocate_id, side, payee_key, kind,
currency, amount, original_amount, basis_points, order_pk, milestone, status, reversed_from,
hold_until, earned_at, rule, created_at, approved_at, paid_at, reversed_at, updated_at"""

INSERT = f"""
INSERT INTO rewards (merchant_id, program_id, referral_id, advocate_id, side, payee_key, kind,
                     currency, amount, original_amount, basis_points, order_pk, milestone,
                     status, hold_until, earned_at, rule)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT DO NOTHING
RETURNING {COLUMNS}
"""

GET = f"SELECT {COLUMNS} FROM rewards WHERE merchant_id = $1 AND id = $2"
LOCK = GET + " FOR UPDATE"

SET_STATE = f"""
UPDATE rewards SET status = $3, amount = $4, reversed_from = $5,
    approved_at = CASE WHEN $3 = 'approved' THEN coalesce(approved_at, now()) ELSE approved_at END,
    paid_at = CASE WHEN $3 = 'paid' THEN now() ELSE paid_at END,
    reversed_at = CASE WHEN $3 = 'reversed' THEN now() ELSE NULL END,
    updated_at = now()
WHERE merchant_id = $1 AND id = $2
RETURNING {COLUMNS}
"""

INSERT_TRANSITION = """
INSERT INTO reward_transitions (merchant_id, reward_id, from_status, to_status, amount, delta,
                                reason, actor, note)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id
"""

INSERT_ENTRIES = """
INSERT INTO ledger_entries (merchant_id, reward_id, transition_id, payee_key, currency,
                            account, amount)
SELECT $1, $2, $3, $4, $5, account, amount
FROM unnest($6::text[], $7::bigint[]) AS e (account, amount)
"""

# The first transition also freezes the reward's public ids (for exports by COPY).
INSERT_FIRST_TRANSITION = """
WITH ids AS (UPDATE rewards SET public_id = $10, referral_public_id = $11
             WHERE merchant_id = $1 AND id = $2)
INSERT INTO reward_transitions (merchant_id, reward_id, from_status, to_status, amount, delta,
                                reason, actor, note)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id
"""

# $4: what each reward was paid in a frozen payout line (or NULL): a reward reversed or
# reduced after it was batched may then be paid; it may never be worth more than it is paid.
LOCK_MANY = """
WITH locked AS (SELECT r.id, r.status, r.reversed_from, r.amount, p.paid
                FROM rewards r JOIN unnest($2::bigint[], $4::bigint[]) AS p (id, paid)
                  ON p.id = r.id
                WHERE r.merchant_id = $1 AND r.id = ANY($2::bigint[])
                ORDER BY r.id FOR UPDATE OF r)
SELECT count(*) AS found,
       count(*) FILTER (WHERE NOT (status = $3 OR (paid IS NOT NULL AND status = 'reversed'
                                                   AND reversed_from = $3))
                           OR amount > coalesce(paid, amount)) AS unexpected,
       coalesce(array_agg(id ORDER BY id) FILTER (WHERE status = 'reversed' AND status <> $3),
                '{}') AS reversed
FROM locked
"""

PUBLIC_IDS = """
SELECT public_id, referral_public_id FROM rewards WHERE merchant_id = $1 AND id = $2
"""

# The set-based twin of one transition, for many rewards that keep their amount (payouts):
# state, history row, ledger entries (from `ledger_moves` with unit amounts) and events.
# A reward paid more than it is worth now ($11, a frozen payout line) books the difference
# as paid and receivable, as a refund after payment would ($12: +1 paying, -1 undoing it).
# $1 merchant, $2 ids, $3 from, $4 to, $5 reason, $6 actor, $7 note, $8 accounts, $9 signs,
# $10 event, $11 paid amounts or NULL, $12 sign of the paid account's move
TRANSITION_MANY = """
WITH changed AS (
    UPDATE rewards r SET status = $4, updated_at = now(),
        paid_at = CASE WHEN $4 = 'paid' THEN now() ELSE r.paid_at END,
        approved_at = CASE WHEN $4 = 'approved' THEN coalesce(r.approved_at, now())
                           ELSE r.approved_at END
    FROM unnest($2::bigint[], $11::bigint[]) AS p (id, paid)
    WHERE r.merchant_id = $1 AND r.id = p.id AND r.status = $3
    RETURNING r.id, r.amount, coalesce(p.paid, r.amount) AS paid, r.payee_key, r.currency,
              r.kind, r.side, r.public_id, r.referral_public_id, r.advocate_id
),
history AS (
    INSERT INTO reward_transitions (merchant_id, reward_id, from_status, to_status, amount,
                                    delta, reason, actor, note)
    SELECT $1, id, $3, $4, amount, 0, $5, $6, $7 FROM changed
    RETURNING id, reward_id
),
entries AS (
    INSERT INTO ledger_entries (merchant_id, reward_id, transition_id, payee_key, currency,
                                account, amount)
    SELECT $1, c.id, h.id, c.payee_key, c.currency, m.account, m.amount
    FROM changed c JOIN history h ON h.reward_id = c.id
    CROSS JOIN LATERAL (
        SELECT u.account, u.sign * c.amount FROM unnest($8::text[], $9::int[]) AS u (account, sign)
        UNION ALL SELECT 'paid', $12 * (c.paid - c.amount)
        UNION ALL SELECT 'receivable', $12 * (c.amount - c.paid)
    ) AS m (account, amount)
    WHERE c.kind IN ('cash', 'store_credit') AND m.amount <> 0
    RETURNING 1
)
INSERT INTO events (merchant_id, type, data)
SELECT $1, $10, jsonb_build_object('reward_id', c.public_id, 'referral_id', c.referral_public_id,
                                   'side', c.side, 'kind', c.kind, 'status', $4,
                                   'amount', c.amount, 'currency', c.currency, 'reason', $5,
                                   'contact_preference', (SELECT a.contact_preference
                                       FROM advocates a WHERE c.side = 'advocate'
                                       AND a.merchant_id = $1 AND a.id = c.advocate_id))
FROM changed c
"""

# A reward event in the outbox, with the advocate's contact preference (email, sms, none)
# for an advocate-side reward, so whoever tells the advocate knows how; NULL for a friend's.
EMIT_EVENT = """
INSERT INTO events (merchant_id, type, data)
SELECT $1, $2, $3::jsonb || jsonb_build_object('contact_preference',
    (SELECT a.contact_preference FROM advocates a
     WHERE $5::text = 'advocate' AND a.merchant_id = $1 AND a.id = $4))
"""


async def emit_event(
    conn: asyncpg.Connection,
    merchant_id: int,
    type_: str,
    data: dict[str, Any],
    *,
    advocate_id: int,
    side: str,
) -> None:
    await conn.execute(EMIT_EVENT, merchant_id, type_, data, advocate_id, side)


HISTORIES = """
SELECT reward_id, from_status, to_status, amount, delta, reason, actor, note, created_at
FROM reward_transitions WHERE merchant_id = $1 AND reward_id = ANY($2::bigint[])
ORDER BY reward_id, id
"""

COUPON_CODES = """
SELECT reward_id, code FROM coupons WHERE merchant_id = $1 AND reward_id = ANY($2::bigint[])
"""

ENTRIES = """
SELECT account, amount, transition_id, created_at FROM ledger_entries
WHERE merchant_id = $1 AND reward_id = $2 ORDER BY id
"""

LAST_REVERSAL_DELTA = """
SELECT delta FROM reward_transitions
WHERE merchant_id = $1 AND reward_id = $2 AND to_status = 'reversed'
ORDER BY id DESC LIMIT 1
"""

FOR_ORDER = f"""
SELECT {COLUMNS} FROM rewards
WHERE merchant_id = $1 AND order_pk = $2 AND milestone IS NULL ORDER BY id
"""

FOR_REFERRAL = f"""
SELECT {COLUMNS} FROM rewards WHERE merchant_id = $1 AND referral_id = $2 ORDER BY id
"""

FOR_REFERRALS = f"""
SELECT {COLUMNS} FROM rewards WHERE merchant_id = $1 AND referral_id = ANY($2::bigint[])
ORDER BY id
"""

DUE = """
SELECT id, merchant_id, advocate_id FROM rewards
WHERE status = 'pending' AND hold_until <= $1
ORDER BY hold_until
LIMIT $2
FOR UPDATE SKIP LOCKED
"""

# The order a reward was earned on, locked like a refund locks it, with its program's rules.
ORDER_OF_REWARD = """
SELECT o.subtotal, o.total, o.refunded, o.status, o.currency, p.rewards
FROM orders o JOIN programs p ON p.merchant_id = o.merchant_id AND p.id = $3
WHERE o.merchant_id = $1 AND o.id = $2
FOR UPDATE OF o
"""

UNVOID_COUPON = """
UPDATE coupons SET status = 'issued' WHERE merchant_id = $1 AND reward_id = $2 AND status = 'void'
"""

# NO KEY UPDATE: serialises with the order transaction's advocate lock, but not with the
# key-share lock a referral's foreign key takes (FOR UPDATE would deadlock against it).
LOCK_ADVOCATE = "SELECT 1 FROM advocates WHERE merchant_id = $1 AND id = $2 FOR NO KEY UPDATE"

# Successful referrals of an advocate: an advocate reward that is approved or paid.
SUCCESSFUL_REFERRALS = """
SELECT count(DISTINCT referral_id) FROM rewards
WHERE merchant_id = $1 AND advocate_id = $2 AND side = 'advocate' AND milestone IS NULL
  AND status IN ('approved', 'paid')
"""

# Referrals that earned (or will earn) the advocate something: for tiers at conversion.
EARNING_REFERRALS = """
SELECT count(*) FROM rewards  -- one advocate reward per referral (rewards_one_per_side)
WHERE merchant_id = $1 AND advocate_id = $2 AND side = 'advocate' AND milestone IS NULL
  AND status <> 'reversed'
"""

CAP_USAGE = """
SELECT count(*) FILTER (WHERE earned_at >= $4) AS in_period,
       count(*) AS total,
       coalesce(sum(amount) FILTER (WHERE earned_at >= $4 AND currency = $3), 0) AS amount
FROM rewards
WHERE merchant_id = $1 AND advocate_id = $2 AND side = 'advocate' AND milestone IS NULL
  AND status <> 'reversed'
"""

INSERT_COUPON = """
INSERT INTO coupons (code, merchant_id, reward_id, amount, currency, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING code
"""

VOID_COUPON = """
UPDATE coupons SET status = 'void' WHERE merchant_id = $1 AND reward_id = $2 AND status = 'issued'
"""

COUPON_FOR_REWARD = (
    "SELECT code, status, expires_at FROM coupons WHERE merchant_id = $1 AND reward_id = $2"
)

REDEEM_COUPON = """
UPDATE coupons SET status = 'redeemed', redeemed_order_pk = $3
WHERE merchant_id = $1 AND code = $2 AND status = 'issued' AND expires_at > $4
RETURNING reward_id
"""

EXPIRED_COUPONS = """
SELECT c.merchant_id, c.reward_id FROM coupons c
WHERE c.status = 'issued' AND c.expires_at <= $1
ORDER BY c.expires_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""

MARK_COUPON_EXPIRED = """
UPDATE coupons SET status = 'expired' WHERE merchant_id = $1 AND reward_id = $2
"""

LIST = f"""
SELECT {COLUMNS} FROM rewards t
WHERE t.merchant_id = $1 AND ($2::text IS NULL OR t.status = $2)
{CURSOR_CLAUSE.format(table="rewards")}
  AND ($7::bigint IS NULL OR t.advocate_id = $7)
ORDER BY t.created_at, t.id
LIMIT $6
"""


async def insert(conn: asyncpg.Connection, *values: Any) -> asyncpg.Record | None:
    return await conn.fetchrow(INSERT, *values)


async def get(
    conn: asyncpg.Connection, merchant_id: int, reward_id: int, *, lock: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(LOCK if lock else GET, merchant_id, reward_id)


async def set_state(
    conn: asyncpg.Connection,
    merchant_id: int,
    reward_id: int,
    status: str,
    amount: int,
    reversed_from: str | None,
) -> asyncpg.Record:
    return await conn.fetchrow(SET_STATE, merchant_id, reward_id, status, amount, reversed_from)


async def insert_transition(
    conn: asyncpg.Connection,
    merchant_id: int,
    reward_id: int,
    from_status: str | None,
    to_status: str,
    amount: int,
    delta: int,
    reason: str,
    actor: str,
    note: str | None,
) -> int:
    return await conn.fetchval(
        INSERT_TRANSITION,
        merchant_id,
        reward_id,
        from_status,
        to_status,
        amount,
        delta,
        reason,
        actor,
        note,
    )


async def insert_first_transition(
    conn: asyncpg.Connection,
    merchant_id: int,
    reward_id: int,
    status: str,
    amount: int,
    reason: str,
    public_id: str,
    referral_public_id: str | None,
) -> int:
    return await conn.fetchval(
        INSERT_FIRST_TRANSITION,
        merchant_id,
        reward_id,
        None,
        status,
        amount,
        amount,
        reason,
        "system",
        None,
        public_id,
        referral_public_id,
    )


async def lock_many(
    conn: asyncpg.Connection,
    merchant_id: int,
    reward_ids: list[int],
    expected: str,
    paid: list[int] | None = None,
) -> asyncpg.Record:
    return await conn.fetchrow(LOCK_MANY, merchant_id, reward_ids, expected, paid)


async def public_ids(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> asyncpg.Record:
    return await conn.fetchrow(PUBLIC_IDS, merchant_id, reward_id)


async def transition_many(
    conn: asyncpg.Connection,
    merchant_id: int,
    reward_ids: list[int],
    from_status: str,
    to_status: str,
    reason: str,
    actor: str,
    note: str | None,
    moves: list[tuple[str, int]],
    event: str,
    paid: list[int] | None = None,
    paid_sign: int = 1,
) -> None:
    await conn.execute(
        TRANSITION_MANY,
        merchant_id,
        reward_ids,
        from_status,
        to_status,
        reason,
        actor,
        note,
        [a for a, _ in moves],
        [s for _, s in moves],
        event,
        paid,
        paid_sign,
    )


async def insert_entries(
    conn: asyncpg.Connection,
    merchant_id: int,
    reward_id: int,
    transition_id: int,
    payee_key: str,
    currency: str,
    entries: list[tuple[str, int]],
) -> None:
    if entries:
        await conn.execute(
            INSERT_ENTRIES,
            merchant_id,
            reward_id,
            transition_id,
            payee_key,
            currency,
            [a for a, _ in entries],
            [v for _, v in entries],
        )


async def histories(
    conn: asyncpg.Connection, merchant_id: int, reward_ids: list[int]
) -> list[asyncpg.Record]:
    return await conn.fetch(HISTORIES, merchant_id, reward_ids)


async def coupon_codes(
    conn: asyncpg.Connection, merchant_id: int, reward_ids: list[int]
) -> dict[int, str]:
    if not reward_ids:
        return {}
    return {
        r["reward_id"]: r["code"] for r in await conn.fetch(COUPON_CODES, merchant_id, reward_ids)
    }


async def for_referrals(
    conn: asyncpg.Connection, merchant_id: int, referral_ids: list[int]
) -> list[asyncpg.Record]:
    return await conn.fetch(FOR_REFERRALS, merchant_id, referral_ids)


async def entries(
    conn: asyncpg.Connection, merchant_id: int, reward_id: int
) -> list[asyncpg.Record]:
    return await conn.fetch(ENTRIES, merchant_id, reward_id)


async def last_reversal_delta(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> int:
    return await conn.fetchval(LAST_REVERSAL_DELTA, merchant_id, reward_id) or 0


async def for_order(
    conn: asyncpg.Connection, merchant_id: int, order_pk: int
) -> list[asyncpg.Record]:
    return await conn.fetch(FOR_ORDER, merchant_id, order_pk)


async def for_referral(
    conn: asyncpg.Connection, merchant_id: int, referral_id: int
) -> list[asyncpg.Record]:
    return await conn.fetch(FOR_REFERRAL, merchant_id, referral_id)


async def due(conn: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(DUE, now, limit)


async def order_of_reward(
    conn: asyncpg.Connection, merchant_id: int, order_pk: int, program_id: int
) -> asyncpg.Record | None:
    return await conn.fetchrow(ORDER_OF_REWARD, merchant_id, order_pk, program_id)


async def unvoid_coupon(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> None:
    await conn.execute(UNVOID_COUPON, merchant_id, reward_id)


async def lock_advocate(conn: asyncpg.Connection, merchant_id: int, advocate_id: int) -> None:
    await conn.execute(LOCK_ADVOCATE, merchant_id, advocate_id)


async def successful_referrals(conn: asyncpg.Connection, merchant_id: int, advocate_id: int) -> int:
    return await conn.fetchval(SUCCESSFUL_REFERRALS, merchant_id, advocate_id)


async def earning_referrals(conn: asyncpg.Connection, merchant_id: int, advocate_id: int) -> int:
    return await conn.fetchval(EARNING_REFERRALS, merchant_id, advocate_id)


async def cap_usage(
    conn: asyncpg.Connection,
    merchant_id: int,
    advocate_id: int,
    currency: str | None,
    period_start: datetime,
) -> asyncpg.Record:
    return await conn.fetchrow(CAP_USAGE, merchant_id, advocate_id, currency, period_start)


async def insert_coupon(
    conn: asyncpg.Connection,
    code: str,
    merchant_id: int,
    reward_id: int,
    amount: int,
    currency: str,
    expires_at: datetime,
) -> bool:
    return (
        await conn.fetchval(
            INSERT_COUPON, code, merchant_id, reward_id, amount, currency, expires_at
        )
        is not None
    )


async def void_coupon(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> None:
    await conn.execute(VOID_COUPON, merchant_id, reward_id)


async def coupon_for_reward(
    conn: asyncpg.Connection, merchant_id: int, reward_id: int
) -> asyncpg.Record | None:
    return await conn.fetchrow(COUPON_FOR_REWARD, merchant_id, reward_id)


async def redeem_coupon(
    conn: asyncpg.Connection, merchant_id: int, code: str, order_pk: int, at: datetime
) -> int | None:
    return await conn.fetchval(REDEEM_COUPON, merchant_id, code, order_pk, at)


async def expired_coupons(
    conn: asyncpg.Connection, now: datetime, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(EXPIRED_COUPONS, now, limit)


async def mark_coupon_expired(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> None:
    await conn.execute(MARK_COUPON_EXPIRED, merchant_id, reward_id)


async def list_page(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    status: str | None,
    advocate_id: int | None,
    after_id: int | None,
    created_from: datetime | None,
    created_before: datetime | None,
    limit: int,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        LIST, merchant_id, status, after_id, created_from, created_before, limit + 1, advocate_id
    )
