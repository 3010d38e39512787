"""SQL for rewards, their ledger entries and transitions. Every statement is scoped by
merchant_id, except the release worker's pick, which takes due rewards of every merchant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from referral.lib.db import many, one
from referral.lib.pagination import CURSOR_CLAUSE, Cursor

COLUMNS = """id, merchant_id, program_id, referral_id, advocate_id, side, payee_key, kind,
currency, amount, original_amount, basis_points, order_pk, milestone, status, reversed_from,
hold_until, earned_at, rule, created_at, approved_at, paid_at, reversed_at, updated_at,
rules_version, minimum_order"""

INSERT = f"""
INSERT INTO rewards (merchant_id, program_id, referral_id, advocate_id, side, payee_key, kind,
                     currency, amount, original_amount, basis_points, order_pk, milestone,
                     status, hold_until, earned_at, rule, rules_version, minimum_order)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10::int, $11, $12::int, $13, $14, $15, $16,
        $17::int, $18::bigint)
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
# state, history row, ledger entries (from `ledger_moves` with unit amounts), and the
# events' payloads for the outbox.
# A reward paid more than it is worth now ($10, a frozen payout line) books the difference
# as paid and receivable, as a refund after payment would ($11: +1 paying, -1 undoing it).
# $1 merchant, $2 ids, $3 from, $4 to, $5 reason, $6 actor, $7 note, $8 accounts, $9 signs,
# $10 paid amounts or NULL, $11 sign of the paid account's move
TRANSITION_MANY = """
WITH changed AS (
    UPDATE rewards r SET status = $4, updated_at = now(),
        paid_at = CASE WHEN $4 = 'paid' THEN now() ELSE r.paid_at END,
        approved_at = CASE WHEN $4 = 'approved' THEN coalesce(r.approved_at, now())
                           ELSE r.approved_at END
    FROM unnest($2::bigint[], $10::bigint[]) AS p (id, paid)
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
        UNION ALL SELECT 'paid', $11 * (c.paid - c.amount)
        UNION ALL SELECT 'receivable', $11 * (c.amount - c.paid)
    ) AS m (account, amount)
    WHERE c.kind IN ('cash', 'store_credit') AND m.amount <> 0
    RETURNING 1
)
SELECT coalesce(jsonb_agg(jsonb_build_object(
           'reward_id', c.public_id, 'referral_id', c.referral_public_id, 'side', c.side,
           'kind', c.kind, 'status', $4, 'amount', c.amount, 'currency', c.currency,
           'reason', $5,
           'contact_preference', (SELECT a.contact_preference FROM advocates a
                                  WHERE c.side = 'advocate' AND a.merchant_id = $1
                                    AND a.id = c.advocate_id))), '[]'::jsonb)
FROM changed c
"""

HISTORIES = """
SELECT reward_id, from_status, to_status, amount, delta, reason, actor, note, created_at
FROM reward_transitions WHERE merchant_id = $1 AND reward_id = ANY($2::bigint[])
ORDER BY reward_id, id
"""

ENTRIES = """
INSERT INTO ledger_entries (merchant_id, reward_id, transition_id, payee_key, currency,
                            account, amount)
SELECT $1, $2, $3, $4, $5, account, amount
FROM unnest($6::text[], $7::bigint[]) AS e (account, amount)
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

# The release worker's lag: the longest a reward due for approval has waited (deployment-wide).
OLDEST_DUE = """
SELECT min(hold_until) FROM rewards WHERE status = 'pending' AND hold_until <= now()
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

LIST = f"""
SELECT {COLUMNS} FROM rewards t
WHERE t.merchant_id = $1 AND ($2::text IS NULL OR t.status = $2)
{CURSOR_CLAUSE.format(table="rewards")}
  AND ($7::bigint IS NULL OR t.advocate_id = $7)
ORDER BY t.created_at, t.id
LIMIT $6
"""

PROGRAM_RULES = "SELECT rewards, rules_version FROM programs WHERE merchant_id = $1 AND id = $2"

# --- a customer's data rights (referral/customers/): the rewards that pay them (as the
# advocate, and as the friend of their referrals) and those rewards' ledger entries.
CUSTOMER_REWARDS = """
SELECT id, referral_id, side, kind, status, amount, currency, milestone, earned_at, created_at,
       approved_at, paid_at, reversed_at
FROM rewards
WHERE merchant_id = $1 AND ((side = 'advocate' AND advocate_id = ANY($2::bigint[]))
                            OR (side = 'friend' AND referral_id = ANY($3::bigint[])))
ORDER BY created_at, id
"""

CUSTOMER_ENTRIES = """
SELECT reward_id, account, amount, currency, created_at FROM ledger_entries
WHERE merchant_id = $1 AND reward_id = ANY($2::bigint[])
ORDER BY reward_id, id
"""

# The payee key (the person's customer id or guest email) replaced by its tombstone ($3
# from, $4 to, $5 otherwise): amounts, states and entries stay, so the books do not move,
# and a clawback still nets against the same (now erased) payee.
ERASE_PAYEES = """
WITH erased AS (
    UPDATE rewards w SET
        payee_key = coalesce(($4::text[])[array_position($3::text[], w.payee_key)], $5)
    WHERE w.merchant_id = $1 AND w.id = ANY($2::bigint[])
    RETURNING 1
)
SELECT count(*) FROM erased
"""

ERASE_ENTRY_PAYEES = """
WITH erased AS (
    UPDATE ledger_entries e SET
        payee_key = coalesce(($4::text[])[array_position($3::text[], e.payee_key)], $5)
    WHERE e.merchant_id = $1 AND e.reward_id = ANY($2::bigint[])
    RETURNING 1
)
SELECT count(*) FROM erased
"""

# Staff notes on reward actions are free text: one naming the person ($2: lower-cased
# values, found anywhere in it) is replaced by `$3`. The action, actor and time stay.
SCRUB_NOTES = """
WITH scrubbed AS (
    UPDATE reward_transitions t SET note = $3
    WHERE t.merchant_id = $1 AND t.note IS NOT NULL
      AND EXISTS (SELECT 1 FROM unnest($2::text[]) AS w(v) WHERE strpos(lower(t.note), w.v) > 0)
    RETURNING 1
)
SELECT count(*) FROM scrubbed
"""


class RewardRow(msgspec.Struct, frozen=True):
    id: int
    merchant_id: int
    program_id: int
    referral_id: int | None
    advocate_id: int
    side: str
    payee_key: str
    kind: str
    currency: str | None
    amount: int
    original_amount: int
    basis_points: int | None
    order_pk: int | None
    milestone: int | None
    status: str
    reversed_from: str | None
    hold_until: datetime
    earned_at: datetime
    rule: dict[str, Any]
    created_at: datetime
    approved_at: datetime | None
    paid_at: datetime | None
    reversed_at: datetime | None
    updated_at: datetime
    rules_version: int | None = None  # None: granted before rules were versioned
    minimum_order: int | None = None  # the program's minimum order when granted, if any


class HistoryRow(msgspec.Struct, frozen=True):
    reward_id: int
    from_status: str | None
    to_status: str
    amount: int
    delta: int
    reason: str
    actor: str
    note: str | None
    created_at: datetime


class Locked(msgspec.Struct, frozen=True):
    found: int
    unexpected: int
    reversed: list[int]


class PublicIds(msgspec.Struct, frozen=True):
    public_id: str | None
    referral_public_id: str | None


class DueReward(msgspec.Struct, frozen=True):
    id: int
    merchant_id: int
    advocate_id: int


class OrderOfReward(msgspec.Struct, frozen=True):
    subtotal: int
    total: int
    refunded: int
    status: str
    currency: str
    rewards: dict[str, Any]


class CapUsageRow(msgspec.Struct, frozen=True):
    in_period: int
    total: int
    amount: int


async def insert(conn: asyncpg.Connection, *values: Any) -> RewardRow | None:
    return one(RewardRow, await conn.fetchrow(INSERT, *values))


async def get(
    conn: asyncpg.Connection, merchant_id: int, reward_id: int, *, lock: bool = False
) -> RewardRow | None:
    return one(RewardRow, await conn.fetchrow(LOCK if lock else GET, merchant_id, reward_id))


async def set_state(
    conn: asyncpg.Connection,
    merchant_id: int,
    reward_id: int,
    status: str,
    amount: int,
    reversed_from: str | None,
) -> RewardRow:
    row = await conn.fetchrow(SET_STATE, merchant_id, reward_id, status, amount, reversed_from)
    return RewardRow(**row)


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
) -> Locked:
    row = await conn.fetchrow(LOCK_MANY, merchant_id, reward_ids, expected, paid)
    return Locked(found=row["found"], unexpected=row["unexpected"], reversed=list(row["reversed"]))


async def public_ids(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> PublicIds:
    return PublicIds(**await conn.fetchrow(PUBLIC_IDS, merchant_id, reward_id))


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
    paid: list[int] | None = None,
    paid_sign: int = 1,
) -> list[dict[str, Any]]:
    """The moves, and the payload of each moved reward's event (for the outbox)."""
    return await conn.fetchval(
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
) -> list[HistoryRow]:
    return many(HistoryRow, await conn.fetch(HISTORIES, merchant_id, reward_ids))


async def for_referrals(
    conn: asyncpg.Connection, merchant_id: int, referral_ids: list[int]
) -> list[RewardRow]:
    return many(RewardRow, await conn.fetch(FOR_REFERRALS, merchant_id, referral_ids))


async def last_reversal_delta(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> int:
    return await conn.fetchval(LAST_REVERSAL_DELTA, merchant_id, reward_id) or 0


async def for_order(conn: asyncpg.Connection, merchant_id: int, order_pk: int) -> list[RewardRow]:
    return many(RewardRow, await conn.fetch(FOR_ORDER, merchant_id, order_pk))


async def for_referral(
    conn: asyncpg.Connection, merchant_id: int, referral_id: int
) -> list[RewardRow]:
    return many(RewardRow, await conn.fetch(FOR_REFERRAL, merchant_id, referral_id))


async def oldest_due(conn: asyncpg.Connection) -> datetime | None:
    return await conn.fetchval(OLDEST_DUE)


async def due(conn: asyncpg.Connection, now: datetime, limit: int) -> list[DueReward]:
    return many(DueReward, await conn.fetch(DUE, now, limit))


async def order_of_reward(
    conn: asyncpg.Connection, merchant_id: int, order_pk: int, program_id: int
) -> OrderOfReward | None:
    row = await conn.fetchrow(ORDER_OF_REWARD, merchant_id, order_pk, program_id)
    return one(OrderOfReward, row)


async def program_rules(
    conn: asyncpg.Connection, merchant_id: int, program_id: int
) -> tuple[Any, int]:
    """A program's reward settings as stored (JSON), and their version."""
    row = await conn.fetchrow(PROGRAM_RULES, merchant_id, program_id)
    return row["rewards"], row["rules_version"]


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
) -> CapUsageRow:
    row = await conn.fetchrow(CAP_USAGE, merchant_id, advocate_id, currency, period_start)
    return CapUsageRow(**row)


async def list_page(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    status: str | None,
    advocate_id: int | None,
    cursor: Cursor,
) -> list[RewardRow]:
    rows = await conn.fetch(
        LIST,
        merchant_id,
        status,
        *cursor.params,
        advocate_id,
    )
    return many(RewardRow, rows)


# --- the books (books.py) ---------------------------------------------------------------

# As of $2, per currency: every cash and store-credit reward's balance per account from its
# entries up to then, and, where the ledger alone does not tell, its state then (its last
# transition up to then): the pending account holds pending and in-review money alike, and a
# reward whose entries sum to zero may be reversed, worth what its last reversal took off.
# $3: one program's rewards, or NULL for all.
BALANCES_AS_OF = """
WITH per_reward AS (
    SELECT e.reward_id, e.currency,
           coalesce(sum(e.amount) FILTER (WHERE e.account = 'pending'), 0) AS pending,
           coalesce(sum(e.amount) FILTER (WHERE e.account = 'payable'), 0) AS payable,
           coalesce(sum(e.amount) FILTER (WHERE e.account = 'paid'), 0) AS paid,
           coalesce(sum(e.amount) FILTER (WHERE e.account = 'receivable'), 0) AS receivable,
           sum(e.amount) AS value
    FROM ledger_entries e
    WHERE e.merchant_id = $1 AND e.created_at <= $2
      AND ($3::bigint IS NULL OR e.reward_id IN (SELECT r.id FROM rewards r
                                                 WHERE r.merchant_id = $1 AND r.program_id = $3))
    GROUP BY e.reward_id, e.currency
),
stated AS (
    SELECT p.currency, p.pending, p.payable, p.paid, p.receivable, s.to_status, s.delta
    FROM per_reward p
    LEFT JOIN LATERAL (
        SELECT t.to_status, t.delta FROM reward_transitions t
        WHERE (p.pending <> 0 OR p.value = 0)
          AND t.merchant_id = $1 AND t.reward_id = p.reward_id AND t.created_at <= $2
        ORDER BY t.id DESC LIMIT 1
    ) s ON true
)
SELECT currency,
       coalesce(sum(pending) FILTER (WHERE to_status IS DISTINCT FROM 'in_review'), 0)::bigint
           AS pending,
       coalesce(sum(pending) FILTER (WHERE to_status = 'in_review'), 0)::bigint AS in_review,
       sum(payable)::bigint AS payable,
       sum(paid)::bigint AS paid,
       sum(receivable)::bigint AS receivable,
       coalesce(sum(-delta) FILTER (WHERE to_status = 'reversed'), 0)::bigint AS reversed
FROM stated
GROUP BY currency
ORDER BY currency
"""

# The ledger export, for COPY: every entry booked after $2 up to $3 (so it sums to the
# balances' change between the two), oldest first. $4 one program or NULL; $5/$6 the payout
# batches' internal and public ids; $7/$8 currencies and their exponents.
# `payout_batch_id`: the batch whose payment (or a paid line's failure) booked the entry;
# `netted_in_batch_id`: for a receivable entry, the batch whose line nets it off.
ENTRIES_CSV = """
SELECT to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS booked_at,
       w.public_id AS reward_id, w.referral_public_id AS referral_id,
       csv_safe(o.order_id) AS order_id,
       booked.public_id AS payout_batch_id, netted.public_id AS netted_in_batch_id,
       csv_safe(e.payee_key) AS payee, w.kind, e.account,
       minor_to_decimal(e.amount, x.exponent) AS amount, e.amount AS amount_minor, e.currency,
       csv_safe(t.reason) AS reason, t.to_status AS reward_status
FROM ledger_entries e
JOIN rewards w ON w.merchant_id = e.merchant_id AND w.id = e.reward_id
JOIN reward_transitions t ON t.merchant_id = e.merchant_id AND t.id = e.transition_id
JOIN unnest($7::text[], $8::int[]) AS x (currency, exponent) ON x.currency = e.currency
LEFT JOIN orders o ON o.merchant_id = e.merchant_id AND o.id = w.order_pk
LEFT JOIN LATERAL (
    SELECT i.batch_id FROM payout_items i
    JOIN payout_batches pb ON pb.merchant_id = i.merchant_id AND pb.id = i.batch_id
    JOIN payout_lines pl ON pl.merchant_id = i.merchant_id AND pl.id = i.line_id
    WHERE t.reason IN ('payout_paid', 'reversed_before_payment', 'payout_failed')
      AND i.merchant_id = $1 AND i.reward_id = e.reward_id AND i.ledger_entry_id IS NULL
      AND (pb.paid_at = e.created_at OR pl.failed_at = e.created_at)
    ORDER BY i.id DESC LIMIT 1
) bi ON true
LEFT JOIN LATERAL (
    SELECT n.batch_id FROM payout_items n
    WHERE e.account = 'receivable'
      AND n.merchant_id = $1 AND n.ledger_entry_id = e.id AND n.active
    ORDER BY n.id DESC LIMIT 1
) ni ON true
LEFT JOIN unnest($5::bigint[], $6::text[]) AS booked (id, public_id) ON booked.id = bi.batch_id
LEFT JOIN unnest($5::bigint[], $6::text[]) AS netted (id, public_id) ON netted.id = ni.batch_id
WHERE e.merchant_id = $1 AND e.created_at > $2 AND e.created_at <= $3
  AND ($4::bigint IS NULL OR w.program_id = $4)
ORDER BY e.created_at, e.id
"""

ENTRIES_CSV_COLUMNS = (
    "booked_at",
    "reward_id",
    "referral_id",
    "order_id",
    "payout_batch_id",
    "netted_in_batch_id",
    "payee",
    "kind",
    "account",
    "amount",
    "amount_minor",
    "currency",
    "reason",
    "reward_status",
)


class BalancesRow(msgspec.Struct, frozen=True):
    currency: str
    pending: int
    in_review: int
    payable: int
    paid: int
    receivable: int
    reversed: int


async def balances_as_of(
    conn: asyncpg.Connection, merchant_id: int, as_of: datetime, program_id: int | None
) -> list[BalancesRow]:
    rows = await conn.fetch(BALANCES_AS_OF, merchant_id, as_of, program_id)
    return [BalancesRow(**{**r, "currency": r["currency"].strip()}) for r in rows]


class CustomerRewardRow(msgspec.Struct, frozen=True):
    id: int
    referral_id: int | None
    side: str
    kind: str
    status: str
    amount: int
    currency: str | None
    milestone: int | None
    earned_at: datetime
    created_at: datetime
    approved_at: datetime | None
    paid_at: datetime | None
    reversed_at: datetime | None


class CustomerEntryRow(msgspec.Struct, frozen=True):
    reward_id: int
    account: str
    amount: int
    currency: str
    created_at: datetime


async def customer_rewards(
    conn: asyncpg.Connection, merchant_id: int, advocate_ids: list[int], referral_ids: list[int]
) -> list[CustomerRewardRow]:
    rows = await conn.fetch(CUSTOMER_REWARDS, merchant_id, advocate_ids, referral_ids)
    return [CustomerRewardRow(**r) for r in rows]


async def customer_entries(
    conn: asyncpg.Connection, merchant_id: int, reward_ids: list[int]
) -> list[CustomerEntryRow]:
    return [
        CustomerEntryRow(**r) for r in await conn.fetch(CUSTOMER_ENTRIES, merchant_id, reward_ids)
    ]


async def erase_payees(
    conn: asyncpg.Connection,
    merchant_id: int,
    reward_ids: list[int],
    keys_from: list[str],
    keys_to: list[str],
    otherwise: str,
) -> tuple[int, int]:
    rewards = await conn.fetchval(
        ERASE_PAYEES, merchant_id, reward_ids, keys_from, keys_to, otherwise
    )
    entries = await conn.fetchval(
        ERASE_ENTRY_PAYEES, merchant_id, reward_ids, keys_from, keys_to, otherwise
    )
    return rewards, entries


async def scrub_notes(
    conn: asyncpg.Connection, merchant_id: int, values: list[str], note: str
) -> int:
    return await conn.fetchval(SCRUB_NOTES, merchant_id, values, note)
