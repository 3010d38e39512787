"""SQL for payout batches, their lines and items, and the CSV exports (COPY)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import asyncpg
import msgspec

from referral.lib.db import many, one
from referral.lib.pagination import CURSOR_CLAUSE, Cursor

BATCH_COLUMNS = """id, merchant_id, currency, kind, status, cutoff, minimum, total, line_count,
reward_count, created_at, exported_at, paid_at, cancelled_at"""

INSERT_BATCH = f"""
INSERT INTO payout_batches (merchant_id, currency, kind, cutoff, minimum)
VALUES ($1, $2, $3, $4, $5)
RETURNING {BATCH_COLUMNS}
"""

MINIMUM = "SELECT (payout_minimums ->> $2)::bigint FROM merchants WHERE id = $1"

# Held until the transaction ends: two creations for one merchant, currency and kind never
# see the same approved rewards.
CREATION_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, $2))"

# The CLI knows a batch by its id only.
MERCHANT_OF_BATCH = "SELECT merchant_id FROM payout_batches WHERE id = $1"

# What a batch pays, per payee: the approved rewards up to the cutoff that no active batch
# holds, less the receivables not yet netted; `enough` says whether the payee reaches the
# minimum (the others roll over). Creating a batch inserts these lines (`FILL_BATCH`, its
# rewards locked); a preview sums them (`PREVIEW`); the balances due sum them for every
# currency and kind at once (`BALANCES`): one definition, so none counts differently.
# `rewards_in` and `receivables_in` choose the money; `cutoff` and `minimum` are SQL.
_PAYEES_DUE = """
WITH due AS (
    SELECT r.id, r.currency, r.kind, r.payee_key, r.amount, r.original_amount, r.earned_at,
           r.public_id, r.referral_public_id, r.side, r.order_pk
    FROM rewards r
    WHERE r.merchant_id = $1 AND r.status = 'approved' AND {rewards_in}
      AND r.approved_at <= {cutoff}
      AND NOT EXISTS (SELECT 1 FROM payout_items i
                      WHERE i.merchant_id = $1 AND i.reward_id = r.id AND i.active
                        AND i.ledger_entry_id IS NULL)
    {lock}
),
receivable AS (
    SELECT e.id, e.currency, r.kind, e.payee_key, e.amount, e.reward_id, r.public_id,
           r.referral_public_id, r.side, r.order_pk, r.earned_at
    FROM ledger_entries e
    JOIN rewards r ON r.merchant_id = e.merchant_id AND r.id = e.reward_id
    WHERE e.merchant_id = $1 AND e.account = 'receivable' AND {receivables_in}
      AND e.created_at <= {cutoff}
      AND NOT EXISTS (SELECT 1 FROM payout_items i
                      WHERE i.merchant_id = $1 AND i.ledger_entry_id = e.id AND i.active)
),
netted AS (
    SELECT currency, kind, payee_key, sum(amount) AS netted
    FROM receivable GROUP BY currency, kind, payee_key
),
per_payee AS (
    SELECT d.currency, d.kind, d.payee_key, sum(d.amount) AS gross, count(*) AS reward_count,
           min(d.earned_at) AS first_at, max(d.earned_at) AS last_at
    FROM due d GROUP BY d.currency, d.kind, d.payee_key
),
payable AS (
    SELECT p.currency, p.kind, p.payee_key, p.gross, coalesce(n.netted, 0) AS netted,
           p.gross + coalesce(n.netted, 0) AS amount, p.reward_count, p.first_at, p.last_at,
           {minimum} AS minimum,
           p.gross + coalesce(n.netted, 0) >= greatest({minimum}, 1) AS enough
    FROM per_payee p LEFT JOIN netted n USING (currency, kind, payee_key)
)"""


def _payees_due(rewards_in: str, receivables_in: str, cutoff: str, minimum: str, lock: str) -> str:
    return _PAYEES_DUE.format(
        rewards_in=rewards_in,
        receivables_in=receivables_in,
        cutoff=cutoff,
        minimum=minimum,
        lock=lock,
    )


# A batch of ($1 merchant, $2 currency, $3 kind, $4 cutoff, $5 minimum).
def _one_batch(lock: str) -> str:
    return _payees_due(
        "r.currency = $2 AND r.kind = $3", "e.currency = $2 AND r.kind = $3", "$4", "$5::bigint",
        lock,
    )  # fmt: skip


# One statement, one snapshot: the rewards are locked, summed per payee, and linked to the
# lines they were summed into, so a reward approved meanwhile can never be linked without
# being counted. Receivables not yet netted are netted into the same lines. Each line freezes
# where its money goes: the payee's details on file (the payees room's table, read in this
# join), else by email to the advocate's address, their latest order's, or a guest's key.
# $1-$5 as `_one_batch`, $6 batch, $7 reference prefix
FILL_BATCH = (
    _one_batch(lock="FOR UPDATE OF r")
    + """,
lines AS (
    INSERT INTO payout_lines (merchant_id, batch_id, payee_key, payee_email, payee_method,
                              payee_iban, payee_account_holder, payee_bic, gross, netted,
                              amount, reward_count, first_reward_at, last_reward_at, reference)
    SELECT $1, $6, p.payee_key,
           coalesce(
             y.email,
             (SELECT a.email FROM advocates a
               WHERE a.merchant_id = $1 AND a.customer_id = p.payee_key AND a.email IS NOT NULL
               ORDER BY a.created_at DESC LIMIT 1),
             (SELECT o.email_normalised FROM orders o
               WHERE o.merchant_id = $1 AND o.customer_id = p.payee_key
                 AND o.email_normalised IS NOT NULL
               ORDER BY o.occurred_at DESC LIMIT 1),
             CASE WHEN position('@' IN p.payee_key) > 0 THEN p.payee_key END),
           coalesce(y.method, 'email'), y.iban, y.account_holder, y.bic,
           p.gross, p.netted, p.amount, p.reward_count, p.first_at, p.last_at,
           $7 || '-' || lpad((row_number() OVER (ORDER BY p.payee_key))::text, 6, '0')
    FROM payable p
    LEFT JOIN payees y ON y.merchant_id = $1 AND y.customer_id = p.payee_key
    WHERE p.enough
    RETURNING id, payee_key, amount, reward_count
),
reward_items AS (
    INSERT INTO payout_items (merchant_id, batch_id, line_id, reward_id, amount,
                              reward_public_id, referral_public_id, order_id, side, gross,
                              reversed, earned_at)
    SELECT $1, $6, l.id, d.id, d.amount, d.public_id, d.referral_public_id, o.order_id, d.side,
           d.original_amount, d.amount - d.original_amount, d.earned_at
    FROM due d
    JOIN lines l ON l.payee_key = d.payee_key
    LEFT JOIN orders o ON o.merchant_id = $1 AND o.id = d.order_pk
    RETURNING 1
),
receivable_items AS (
    INSERT INTO payout_items (merchant_id, batch_id, line_id, reward_id, ledger_entry_id, amount,
                              reward_public_id, referral_public_id, order_id, side, gross,
                              reversed, earned_at)
    SELECT $1, $6, l.id, x.reward_id, x.id, x.amount, x.public_id, x.referral_public_id,
           o.order_id, x.side, 0, x.amount, x.earned_at
    FROM receivable x
    JOIN lines l ON l.payee_key = x.payee_key
    LEFT JOIN orders o ON o.merchant_id = $1 AND o.id = x.order_pk
    RETURNING 1
)
SELECT coalesce(sum(amount), 0)::bigint AS total, count(*)::int AS line_count,
       coalesce(sum(reward_count), 0)::int AS reward_count,
       (SELECT count(*) FROM reward_items) + (SELECT count(*) FROM receivable_items) AS items
FROM lines
"""
)

# For the rest of the creating transaction: no JIT (compiling FILL_BATCH's ~140 functions
# took 1.5-3.7 s of a million-reward batch, more than it saved), and memory enough to sum
# and sort a million rewards without spilling to disk.
FILL_SETTINGS = "SET LOCAL jit = off; SET LOCAL work_mem = '64MB'"

# What creating the batch would pay now, and who would roll over; nothing locked or written.
PREVIEW_FIGURES = """
SELECT {keys}
       count(*) FILTER (WHERE enough)::int AS line_count,
       coalesce(sum(amount) FILTER (WHERE enough), 0)::bigint AS total,
       coalesce(sum(reward_count) FILTER (WHERE enough), 0)::int AS reward_count,
       coalesce(sum(netted) FILTER (WHERE enough), 0)::bigint AS netted,
       count(*) FILTER (WHERE NOT enough)::int AS rolled_over_count,
       coalesce(sum(amount) FILTER (WHERE NOT enough), 0)::bigint AS rolled_over_total
FROM payable
{group}
"""

PREVIEW = _one_batch(lock="") + PREVIEW_FIGURES.format(keys="", group="")

# The balances due: the preview of a batch made now ($2) for every currency and kind with
# money due, each with the merchant's minimum for its currency. One scan for all of them.
BALANCES = _payees_due(
    "r.kind IN ('cash', 'store_credit')",
    "r.kind IN ('cash', 'store_credit')",
    "$2",
    "coalesce(((SELECT m.payout_minimums FROM merchants m WHERE m.id = $1)"
    " ->> p.currency::text)::bigint, 0)",
    lock="",
) + PREVIEW_FIGURES.format(
    keys="currency, kind, min(minimum)::bigint AS minimum,",
    group="GROUP BY currency, kind ORDER BY currency, kind",
)

ANALYZE_BATCHES = "ANALYZE payout_lines, payout_items"

# --- a customer's data rights (referral/customers/): their lines, found by payee key (the
# customer id, or a guest friend's email).
CUSTOMER_LINES = """
SELECT l.id, l.batch_id, l.payee_email, l.payee_method, l.payee_iban, l.payee_account_holder,
       l.payee_bic, l.amount, b.currency, l.status, l.reference,
       b.created_at AS batch_created_at, b.paid_at AS batch_paid_at
FROM payout_lines l
JOIN payout_batches b ON b.merchant_id = l.merchant_id AND b.id = l.batch_id
WHERE l.merchant_id = $1 AND l.payee_key = ANY($2::text[])
ORDER BY b.created_at, l.id
"""

# A line keeps its amounts, status, method and reference (what the bank statement and the
# exported file reconcile by); the payee becomes their tombstone ($2 from, $3 to) and has no
# address, IBAN or name.
ERASE_LINES = """
WITH erased AS (
    UPDATE payout_lines l SET payee_key = ($3::text[])[array_position($2::text[], l.payee_key)],
                              payee_email = NULL, payee_iban = NULL,
                              payee_account_holder = NULL, payee_bic = NULL
    WHERE l.merchant_id = $1 AND l.payee_key = ANY($2::text[])
    RETURNING 1
)
SELECT count(*) FROM erased
"""

SET_TOTALS = f"""
UPDATE payout_batches SET total = $3, line_count = $4::int, reward_count = $5::int
WHERE merchant_id = $1 AND id = $2
RETURNING {BATCH_COLUMNS}
"""

GET = f"SELECT {BATCH_COLUMNS} FROM payout_batches WHERE merchant_id = $1 AND id = $2"

SET_STATUS = f"""
UPDATE payout_batches SET status = $3,
    exported_at = CASE WHEN $3 = 'exported' THEN now() ELSE exported_at END,
    paid_at = CASE WHEN $3 = 'paid' THEN now() ELSE paid_at END,
    cancelled_at = CASE WHEN $3 = 'cancelled' THEN now() ELSE cancelled_at END
WHERE merchant_id = $1 AND id = $2
RETURNING {BATCH_COLUMNS}
"""

LINES = """
SELECT id, payee_key, payee_email, payee_method, payee_iban,
       payee_account_holder, payee_bic, gross, netted, amount, reward_count, status, failure_reason,
       reference
FROM payout_lines WHERE merchant_id = $1 AND batch_id = $2 ORDER BY payee_key
"""

# A page of a batch's lines in the CSV's order (payee), after the line `$3`; `$4` a status.
LINES_PAGE = """
SELECT id, payee_key, payee_email, payee_method, payee_iban,
       payee_account_holder, payee_bic, gross, netted, amount, reward_count, status, failure_reason,
       reference
FROM payout_lines l
WHERE l.merchant_id = $1 AND l.batch_id = $2
  AND ($3::bigint IS NULL OR l.payee_key >
       (SELECT c.payee_key FROM payout_lines c WHERE c.merchant_id = $1 AND c.id = $3))
  AND ($4::text IS NULL OR l.status = $4)
ORDER BY l.payee_key
LIMIT $5
"""

LINE_STATUSES = """
SELECT status, count(*)::int AS n, sum(amount)::bigint AS amount FROM payout_lines
WHERE merchant_id = $1 AND batch_id = $2 GROUP BY status
"""

LINE = """
SELECT id, batch_id, payee_key, amount, status FROM payout_lines
WHERE merchant_id = $1 AND batch_id = $2 AND id = $3 FOR UPDATE
"""

SET_LINES_PAID = """
UPDATE payout_lines SET status = 'paid' WHERE merchant_id = $1 AND batch_id = $2 AND status = 'open'
"""

FAIL_LINE = """
UPDATE payout_lines SET status = 'failed', failure_reason = $3, failed_at = now()
WHERE merchant_id = $1 AND id = $2
"""

# The books (referral/rewards/books.py): receivable entries netted off in payout lines that
# stood paid at $2 (their batch paid by then, the line not failed by then), per currency: the
# money owed back that payouts had recovered. $3: one program's rewards, or NULL for all.
NETTED_AS_OF = """
SELECT b.currency, sum(i.amount)::bigint AS netted
FROM payout_items i
JOIN payout_lines l ON l.merchant_id = i.merchant_id AND l.id = i.line_id
JOIN payout_batches b ON b.merchant_id = i.merchant_id AND b.id = i.batch_id
WHERE i.merchant_id = $1 AND i.ledger_entry_id IS NOT NULL AND b.paid_at <= $2
  AND (l.status = 'paid' OR (l.status = 'failed' AND l.failed_at > b.paid_at AND l.failed_at > $2))
  AND ($3::bigint IS NULL OR i.reward_id IN (SELECT r.id FROM rewards r
                                             WHERE r.merchant_id = $1 AND r.program_id = $3))
GROUP BY b.currency
"""

# Every batch made up to $2, for naming them in the ledger export.
BATCH_IDS = """
SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM payout_batches
WHERE merchant_id = $1 AND created_at <= $2
"""

# Rewards (not receivables) of the batch, or of one line, with what the line pays for each.
REWARDS_OF_LINES = """
SELECT i.reward_id, i.amount FROM payout_lines l
JOIN payout_items i ON i.merchant_id = l.merchant_id AND i.line_id = l.id
WHERE l.merchant_id = $1 AND l.batch_id = $2 AND i.active AND i.ledger_entry_id IS NULL
  AND ($3::bigint IS NULL OR l.id = $3)
ORDER BY i.reward_id
"""

DEACTIVATE_ITEMS = """
UPDATE payout_items SET active = false
WHERE merchant_id = $1 AND active
  AND line_id IN (SELECT l.id FROM payout_lines l
                  WHERE l.merchant_id = $1 AND l.batch_id = $2
                    AND ($3::bigint IS NULL OR l.id = $3))
"""

LIST = f"""
SELECT {BATCH_COLUMNS} FROM payout_batches t
WHERE t.merchant_id = $1 AND ($2::text IS NULL OR t.status = $2)
{CURSOR_CLAUSE.format(table="payout_batches")}
ORDER BY t.created_at, t.id
LIMIT $6
"""

# The same list, newest first (what finance looks at): after the batch $3 means older.
LIST_NEWEST = f"""
SELECT {BATCH_COLUMNS} FROM payout_batches t
WHERE t.merchant_id = $1 AND ($2::text IS NULL OR t.status = $2)
  AND ($3::bigint IS NULL OR (t.created_at, t.id) <
       (SELECT c.created_at, c.id FROM payout_batches c WHERE c.merchant_id = $1 AND c.id = $3))
  AND ($4::timestamptz IS NULL OR t.created_at >= $4)
  AND ($5::timestamptz IS NULL OR t.created_at < $5)
ORDER BY t.created_at DESC, t.id DESC
LIMIT $6
"""

# --- exports: plain SELECTs fed to COPY ... TO STDOUT; $1 merchant, $2 batch ----------------

PAYOUTS_CSV = """
SELECT $3::text AS batch_id, csv_safe(l.payee_key) AS payee_customer_id,
       csv_safe(l.payee_email) AS payee_email,
       minor_to_decimal(l.amount, $4::int) AS amount, l.amount AS amount_minor,
       b.currency, l.reward_count, utc_iso(l.first_reward_at) AS first_reward_at,
       utc_iso(l.last_reward_at) AS last_reward_at, l.reference, l.payee_method AS payout_method,
       l.payee_iban AS iban, l.payee_bic AS bic, csv_safe(l.payee_account_holder) AS account_holder
FROM payout_lines l JOIN payout_batches b ON b.merchant_id = l.merchant_id AND b.id = l.batch_id
WHERE l.merchant_id = $1 AND l.batch_id = $2
ORDER BY l.payee_key
"""


# Why PayPal cannot pay a line: its email (`payout_email_problem`, the strict rule of
# referral.lib.emails), or an amount PayPal would round (HUF, JPY and TWD go in whole units;
# the divisor is 100 for HUF and TWD, 1 otherwise). NULL: PayPal can pay it.
# A payee who asked for a bank transfer is paid by the bank file, not PayPal's.
def _paypal_problem(divisor: str) -> str:
    return f"""coalesce(
         CASE WHEN l.payee_method = 'bank_transfer' THEN 'paid_by_bank_transfer' END,
         payout_email_problem(l.payee_email),
         CASE WHEN l.amount % {divisor}::bigint <> 0 THEN 'amount_not_whole_units' END)"""


# Why a bank transfer cannot pay a line: the payee asked for email, or the IBAN frozen on the
# line fails its check (`payout_iban_problem`, sql/0025), or there is no account holder.
_BANK_PROBLEM = """coalesce(
         CASE WHEN l.payee_method <> 'bank_transfer' THEN 'paid_by_email' END,
         payout_iban_problem(l.payee_iban),
         CASE WHEN coalesce(btrim(l.payee_account_holder), '') = '' THEN 'no_account_holder'
         END)"""


# What a file pays ($1 merchant, $2 batch), and the lines it leaves out with their reason.
_PAYABLE = """
SELECT count(*)::int AS lines, coalesce(sum(l.amount), 0)::bigint AS total
FROM payout_lines l
WHERE l.merchant_id = $1 AND l.batch_id = $2 AND {problem} IS NULL
"""

_UNPAYABLE = """
SELECT l.id, l.payee_key, l.payee_email, l.amount, l.reference, {problem} AS reason
FROM payout_lines l
WHERE l.merchant_id = $1 AND l.batch_id = $2 AND {problem} IS NOT NULL
ORDER BY l.payee_key
"""

# $3 divisor.
PAYPAL_PAYABLE = _PAYABLE.format(problem=_paypal_problem("$3"))
PAYPAL_UNPAYABLE = _UNPAYABLE.format(problem=_paypal_problem("$3"))
BANK_PAYABLE = _PAYABLE.format(problem=_BANK_PROBLEM)
BANK_UNPAYABLE = _UNPAYABLE.format(problem=_BANK_PROBLEM)

# PayPal Payouts web upload: no header, one currency, at most 5,000 rows per file, the lines
# PayPal can pay only (the others are listed beside the file). The email is validated, so it
# is written as it is: nothing a spreadsheet runs can pass the check.
# $4 decimals to print, $5 divisor (100 for HUF and TWD, which PayPal takes in whole units).
# Escape first, then crop: the quote a formula cell gains counts towards PayPal's limits.
PAYOUTS_PAYPAL = f"""
SELECT l.payee_email, minor_to_decimal(l.amount / $5::bigint, $4::int),
       b.currency, left(csv_safe(regexp_replace(l.payee_key, '[[:space:]]', '_', 'g')), 30),
       left(csv_safe($3::text || ' referral rewards ' || l.reference), 400), 'PAYPAL'
FROM payout_lines l JOIN payout_batches b ON b.merchant_id = l.merchant_id AND b.id = l.batch_id
WHERE l.merchant_id = $1 AND l.batch_id = $2 AND {_paypal_problem("$5")} IS NULL
ORDER BY l.payee_key
OFFSET $6 LIMIT 5000
"""

# A bank-transfer file: one row per line a bank transfer can pay (the others are listed
# beside it). The IBAN is validated (on input, and by `payout_iban_problem` here) and the BIC
# on input, so both are written as they are; the account holder's name is free text, escaped.
# $3 batch public id, $4 decimals.
PAYOUTS_BANK = f"""
SELECT l.reference, csv_safe(l.payee_account_holder) AS account_holder, l.payee_iban AS iban,
       l.payee_bic AS bic, minor_to_decimal(l.amount, $4::int) AS amount,
       l.amount AS amount_minor, b.currency, csv_safe(l.payee_key) AS payee_customer_id,
       csv_safe($3::text || ' referral rewards ' || l.reference) AS note
FROM payout_lines l JOIN payout_batches b ON b.merchant_id = l.merchant_id AND b.id = l.batch_id
WHERE l.merchant_id = $1 AND l.batch_id = $2 AND {_BANK_PROBLEM} IS NULL
ORDER BY l.payee_key
"""

REWARDS_CSV = """
SELECT $3::text AS batch_id, csv_safe(l.payee_key) AS payee_customer_id,
       i.reward_public_id AS reward_id, i.referral_public_id AS referral_id,
       csv_safe(i.order_id) AS order_id, i.side,
       CASE WHEN i.ledger_entry_id IS NULL THEN 'reward' ELSE 'clawback' END AS line_type,
       i.gross AS gross_minor, i.reversed AS reversed_minor, i.amount AS net_minor,
       minor_to_decimal(i.amount, $4::int) AS net, b.currency, utc_iso(i.earned_at) AS earned_at,
       l.reference
FROM payout_lines l
JOIN payout_items i ON i.merchant_id = l.merchant_id AND i.line_id = l.id
JOIN payout_batches b ON b.merchant_id = l.merchant_id AND b.id = l.batch_id
WHERE l.merchant_id = $1 AND l.batch_id = $2
ORDER BY l.payee_key, i.id
"""


class BatchRow(msgspec.Struct, frozen=True):
    id: int
    merchant_id: int
    currency: str
    kind: str
    status: str
    cutoff: datetime
    minimum: int
    total: int
    line_count: int
    reward_count: int
    created_at: datetime
    exported_at: datetime | None
    paid_at: datetime | None
    cancelled_at: datetime | None


class Filled(msgspec.Struct, frozen=True):
    total: int
    line_count: int
    reward_count: int
    items: int


class LineRow(msgspec.Struct, frozen=True):
    id: int
    payee_key: str
    payee_email: str | None
    payee_method: str
    payee_iban: str | None
    payee_account_holder: str | None
    payee_bic: str | None
    gross: int
    netted: int
    amount: int
    reward_count: int
    status: str
    failure_reason: str | None
    reference: str


class Preview(msgspec.Struct, frozen=True):
    line_count: int
    total: int
    reward_count: int
    netted: int
    rolled_over_count: int
    rolled_over_total: int


class DueKind(msgspec.Struct, frozen=True):
    currency: str
    kind: str


class LockedLine(msgspec.Struct, frozen=True):
    id: int
    batch_id: int
    payee_key: str
    amount: int
    status: str


class RewardItem(msgspec.Struct, frozen=True):
    reward_id: int
    amount: int


async def lock_creation(
    conn: asyncpg.Connection, merchant_id: int, currency: str, kind: str
) -> None:
    await conn.execute(CREATION_LOCK, f"payouts|{currency}|{kind}", merchant_id)


async def merchant_of_batch(conn: asyncpg.Connection, batch_id: int) -> int | None:
    return await conn.fetchval(MERCHANT_OF_BATCH, batch_id)


async def insert_batch(
    conn: asyncpg.Connection,
    merchant_id: int,
    currency: str,
    kind: str,
    cutoff: datetime,
    minimum: int,
) -> BatchRow:
    row = await conn.fetchrow(INSERT_BATCH, merchant_id, currency, kind, cutoff, minimum)
    return BatchRow(**row)


async def merchant_minimum(conn: asyncpg.Connection, merchant_id: int, currency: str) -> int:
    return await conn.fetchval(MINIMUM, merchant_id, currency) or 0


async def fill_batch(
    conn: asyncpg.Connection,
    merchant_id: int,
    batch_id: int,
    currency: str,
    kind: str,
    cutoff: datetime,
    minimum: int,
    reference: str,
) -> Filled:
    await conn.execute(FILL_SETTINGS)
    row = await conn.fetchrow(
        FILL_BATCH, merchant_id, currency, kind, cutoff, minimum, batch_id, reference
    )
    return Filled(**row)


async def preview(
    conn: asyncpg.Connection,
    merchant_id: int,
    currency: str,
    kind: str,
    cutoff: datetime,
    minimum: int,
) -> Preview:
    return Preview(**await conn.fetchrow(PREVIEW, merchant_id, currency, kind, cutoff, minimum))


async def balances(
    conn: asyncpg.Connection, merchant_id: int, cutoff: datetime
) -> list[tuple[DueKind, int, Preview]]:
    """(currency and kind, minimum, what a batch would hold) for each with money due."""
    rows = await conn.fetch(BALANCES, merchant_id, cutoff)
    fields = Preview.__struct_fields__
    return [
        (
            DueKind(currency=r["currency"].strip(), kind=r["kind"]),
            r["minimum"],
            Preview(**{f: r[f] for f in fields}),
        )
        for r in rows
    ]


async def analyze_batches(conn: asyncpg.Connection) -> None:
    await conn.execute(ANALYZE_BATCHES)


async def set_totals(
    conn: asyncpg.Connection,
    merchant_id: int,
    batch_id: int,
    total: int,
    line_count: int,
    reward_count: int,
) -> BatchRow:
    row = await conn.fetchrow(SET_TOTALS, merchant_id, batch_id, total, line_count, reward_count)
    return BatchRow(**row)


async def get(
    conn: asyncpg.Connection, merchant_id: int, batch_id: int, *, lock: bool = False
) -> BatchRow | None:
    row = await conn.fetchrow(GET + (" FOR UPDATE" if lock else ""), merchant_id, batch_id)
    return one(BatchRow, row)


async def set_status(
    conn: asyncpg.Connection, merchant_id: int, batch_id: int, status: str
) -> BatchRow:
    return BatchRow(**await conn.fetchrow(SET_STATUS, merchant_id, batch_id, status))


async def lines(conn: asyncpg.Connection, merchant_id: int, batch_id: int) -> list[LineRow]:
    return many(LineRow, await conn.fetch(LINES, merchant_id, batch_id))


async def lines_page(
    conn: asyncpg.Connection,
    merchant_id: int,
    batch_id: int,
    *,
    after_id: int | None,
    status: str | None,
    limit: int,
) -> list[LineRow]:
    rows = await conn.fetch(LINES_PAGE, merchant_id, batch_id, after_id, status, limit)
    return many(LineRow, rows)


async def line_statuses(
    conn: asyncpg.Connection, merchant_id: int, batch_id: int
) -> dict[str, tuple[int, int]]:
    """Per line status: (lines, their amount)."""
    rows = await conn.fetch(LINE_STATUSES, merchant_id, batch_id)
    return {r["status"]: (r["n"], r["amount"]) for r in rows}


async def line(
    conn: asyncpg.Connection, merchant_id: int, batch_id: int, line_id: int
) -> LockedLine | None:
    return one(LockedLine, await conn.fetchrow(LINE, merchant_id, batch_id, line_id))


async def set_lines_paid(conn: asyncpg.Connection, merchant_id: int, batch_id: int) -> None:
    await conn.execute(SET_LINES_PAID, merchant_id, batch_id)


async def fail_line(conn: asyncpg.Connection, merchant_id: int, line_id: int, reason: str) -> None:
    await conn.execute(FAIL_LINE, merchant_id, line_id, reason)


async def netted_as_of(
    conn: asyncpg.Connection, merchant_id: int, as_of: datetime, program_id: int | None
) -> dict[str, int]:
    """Per currency, the receivable entries netted off in lines that stood paid at `as_of`."""
    rows = await conn.fetch(NETTED_AS_OF, merchant_id, as_of, program_id)
    return {r["currency"].strip(): r["netted"] for r in rows}


async def batch_ids(conn: asyncpg.Connection, merchant_id: int, until: datetime) -> list[int]:
    return list(await conn.fetchval(BATCH_IDS, merchant_id, until))


async def reward_items(
    conn: asyncpg.Connection, merchant_id: int, batch_id: int, line_id: int | None = None
) -> list[RewardItem]:
    """Every active reward in the batch (or line) with what it pays."""
    return many(RewardItem, await conn.fetch(REWARDS_OF_LINES, merchant_id, batch_id, line_id))


async def deactivate_items(
    conn: asyncpg.Connection, merchant_id: int, batch_id: int, line_id: int | None = None
) -> None:
    await conn.execute(DEACTIVATE_ITEMS, merchant_id, batch_id, line_id)


class Payable(msgspec.Struct, frozen=True):
    lines: int
    total: int


class UnpayableRow(msgspec.Struct, frozen=True):
    id: int
    payee_key: str
    payee_email: str | None
    amount: int
    reference: str
    reason: str


async def paypal_payable(
    conn: asyncpg.Connection, merchant_id: int, batch_id: int, divisor: int
) -> Payable:
    return Payable(**await conn.fetchrow(PAYPAL_PAYABLE, merchant_id, batch_id, divisor))


async def paypal_unpayable(
    conn: asyncpg.Connection, merchant_id: int, batch_id: int, divisor: int
) -> list[UnpayableRow]:
    rows = await conn.fetch(PAYPAL_UNPAYABLE, merchant_id, batch_id, divisor)
    return [UnpayableRow(**r) for r in rows]


async def bank_payable(conn: asyncpg.Connection, merchant_id: int, batch_id: int) -> Payable:
    return Payable(**await conn.fetchrow(BANK_PAYABLE, merchant_id, batch_id))


async def bank_unpayable(
    conn: asyncpg.Connection, merchant_id: int, batch_id: int
) -> list[UnpayableRow]:
    return many(UnpayableRow, await conn.fetch(BANK_UNPAYABLE, merchant_id, batch_id))


async def copy_csv(
    conn: asyncpg.Connection,
    sql: str,
    args: tuple,
    *,
    output: Callable[[bytes], Awaitable[None]],
    header: bool,
) -> None:
    """`COPY (sql) TO STDOUT` as CSV, each chunk handed to `output` as PostgreSQL sends it."""
    await conn.copy_from_query(sql, *args, output=output, format="csv", header=header)


async def list_page(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    status: str | None,
    cursor: Cursor,
    newest_first: bool = False,
) -> list[BatchRow]:
    query = LIST_NEWEST if newest_first else LIST
    return many(BatchRow, await conn.fetch(query, merchant_id, status, *cursor.params))


class CustomerLineRow(msgspec.Struct, frozen=True):
    id: int
    batch_id: int
    payee_email: str | None
    payee_method: str
    payee_iban: str | None
    payee_account_holder: str | None
    payee_bic: str | None
    amount: int
    currency: str
    status: str
    reference: str
    batch_created_at: datetime
    batch_paid_at: datetime | None


async def customer_lines(
    conn: asyncpg.Connection, merchant_id: int, payee_keys: list[str]
) -> list[CustomerLineRow]:
    return many(CustomerLineRow, await conn.fetch(CUSTOMER_LINES, merchant_id, payee_keys))


async def erase_lines(
    conn: asyncpg.Connection, merchant_id: int, keys_from: list[str], keys_to: list[str]
) -> int:
    return await conn.fetchval(ERASE_LINES, merchant_id, keys_from, keys_to)
