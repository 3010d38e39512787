"""SQL for payees: their payout details, and what their payout lines paid them in a year.

The totals read the payouts room's lines and batches in a join (what was paid to this payee
is this room's question; the payouts room's service never needs it): a line counts when it
stands paid (its batch marked paid, the line not failed since), in the year its batch was
paid, in the merchant's time zone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import msgspec

from referral.lib.db import many, one

COLUMNS = """id, customer_id, method, email, iban, account_holder, bic, created_at, updated_at,
updated_by"""

GET = f"SELECT {COLUMNS} FROM payees WHERE merchant_id = $1 AND customer_id = $2"

# Held until the transaction ends: two changes of one payee at once (the first one too,
# when there is no row to lock yet) run one after the other, so each audits the other's
# result as its `before`.
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('payee|' || $2, $1))"

UPSERT = f"""
INSERT INTO payees (merchant_id, customer_id, method, email, iban, account_holder, bic,
                    updated_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (merchant_id, customer_id) DO UPDATE
SET method = EXCLUDED.method, email = EXCLUDED.email, iban = EXCLUDED.iban,
    account_holder = EXCLUDED.account_holder, bic = EXCLUDED.bic,
    updated_by = EXCLUDED.updated_by, updated_at = now()
RETURNING {COLUMNS}
"""

# --- a customer's data rights: their row, by any of the keys that name them as a payee.
CUSTOMER_ROWS = f"""
SELECT {COLUMNS} FROM payees WHERE merchant_id = $1 AND customer_id = ANY($2::text[])
ORDER BY customer_id
"""

ERASE = """
WITH gone AS (
    DELETE FROM payees WHERE merchant_id = $1 AND customer_id = ANY($2::text[]) RETURNING 1
)
SELECT count(*)::int FROM gone
"""

# The year [$y-01-01, $y+1-01-01) in the merchant's zone (an unknown zone is UTC).
_PAID_IN_YEAR = """
FROM payout_lines l
JOIN payout_batches b ON b.merchant_id = l.merchant_id AND b.id = l.batch_id
CROSS JOIN (SELECT click_time_zone(m.time_zone) AS tz FROM merchants m WHERE m.id = $1) z
WHERE l.merchant_id = $1 AND l.status = 'paid' AND b.paid_at IS NOT NULL
  AND b.paid_at >= make_timestamptz({year}, 1, 1, 0, 0, 0, z.tz)
  AND b.paid_at < make_timestamptz({year} + 1, 1, 1, 0, 0, 0, z.tz)
"""

TIME_ZONE = "SELECT click_time_zone(time_zone) FROM merchants WHERE id = $1"

# $1 merchant, $2 customer id, $3 year.
PAYEE_TOTALS = f"""
SELECT btrim(b.currency) AS currency, b.kind, sum(l.amount)::bigint AS amount,
       count(*)::int AS lines
{_PAID_IN_YEAR.format(year="$3::int")}
  AND l.payee_key = $2
GROUP BY b.currency, b.kind
ORDER BY b.currency, b.kind
"""

# Every payee paid in the year $2, per currency and kind, with the details on file now.
YEAR_TOTALS = f"""
WITH paid AS (
    SELECT l.payee_key, btrim(b.currency) AS currency, b.kind, sum(l.amount)::bigint AS amount,
           count(*)::int AS lines
    {_PAID_IN_YEAR.format(year="$2::int")}
    GROUP BY l.payee_key, b.currency, b.kind
)
SELECT p.payee_key AS customer_id, y.account_holder, y.method, y.email, y.iban, p.currency,
       p.kind, p.amount, p.lines
FROM paid p
LEFT JOIN payees y ON y.merchant_id = $1 AND y.customer_id = p.payee_key
ORDER BY p.payee_key, p.currency, p.kind
"""


class PayeeRow(msgspec.Struct, frozen=True):
    id: int
    customer_id: str
    method: str
    email: str | None
    iban: str | None
    account_holder: str | None
    bic: str | None
    created_at: datetime
    updated_at: datetime
    updated_by: str


class TotalRow(msgspec.Struct, frozen=True):
    currency: str
    kind: str
    amount: int
    lines: int


class YearRow(msgspec.Struct, frozen=True):
    customer_id: str
    account_holder: str | None
    method: str | None
    email: str | None
    iban: str | None
    currency: str
    kind: str
    amount: int
    lines: int


async def lock(conn: asyncpg.Connection, merchant_id: int, customer_id: str) -> None:
    await conn.execute(LOCK, merchant_id, customer_id)


async def get(conn: asyncpg.Connection, merchant_id: int, customer_id: str) -> PayeeRow | None:
    return one(PayeeRow, await conn.fetchrow(GET, merchant_id, customer_id))


async def upsert(
    conn: asyncpg.Connection,
    merchant_id: int,
    customer_id: str,
    *,
    method: str,
    email: str | None,
    iban: str | None,
    account_holder: str | None,
    bic: str | None,
    updated_by: str,
) -> PayeeRow:
    row = await conn.fetchrow(
        UPSERT, merchant_id, customer_id, method, email, iban, account_holder, bic, updated_by
    )
    return PayeeRow(**row)


async def customer_rows(
    conn: asyncpg.Connection, merchant_id: int, keys: list[str]
) -> list[PayeeRow]:
    return many(PayeeRow, await conn.fetch(CUSTOMER_ROWS, merchant_id, keys))


async def erase(conn: asyncpg.Connection, merchant_id: int, keys: list[str]) -> int:
    return await conn.fetchval(ERASE, merchant_id, keys)


async def time_zone(conn: asyncpg.Connection, merchant_id: int) -> str:
    return await conn.fetchval(TIME_ZONE, merchant_id) or "UTC"


async def payee_totals(
    conn: asyncpg.Connection, merchant_id: int, customer_id: str, year: int
) -> list[TotalRow]:
    return many(TotalRow, await conn.fetch(PAYEE_TOTALS, merchant_id, customer_id, year))


async def year_totals(
    conn: asyncpg.Connection, merchant_id: int, year: int, *, prefetch: int = 1000
) -> AsyncIterator[YearRow]:
    """Row by row from a cursor (inside the caller's transaction): constant memory."""
    async for row in conn.cursor(YEAR_TOTALS, merchant_id, year, prefetch=prefetch):
        yield YearRow(**row)
