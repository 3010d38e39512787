"""SQL for orders and refunds. Every statement is scoped by merchant_id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from referral.lib.db import many, one

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

INSERT_REFUND = """
INSERT INTO refunds (merchant_id, order_pk, refund_id, amount, currency, occurred_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (merchant_id, order_pk, refund_id) DO NOTHING
RETURNING id
"""

REFUND_BY_ID = """
SELECT amount, currency FROM refunds WHERE merchant_id = $1 AND order_pk = $2 AND refund_id = $3
"""

# Past orders from the service the shop switched from (referral/imports/), a batch at a
# time: history (is_import), never attributed; the answer a retry of one of them gets says so.
IMPORT_ORDERS = """
INSERT INTO orders (merchant_id, order_id, customer_id, email_normalised, subtotal, total,
                    currency, occurred_at, is_import, fingerprint, result)
SELECT $1, o.order_id, o.customer_id, o.email, o.subtotal, o.total, o.currency,
       o.occurred_at, true, o.fingerprint,
       jsonb_build_object('order_id', o.order_id, 'referred', false, 'referral', NULL,
                          'rewards', '[]'::jsonb, 'coupons_redeemed', '[]'::jsonb,
                          'notes', '["imported_order"]'::jsonb, 'coupons', '[]'::jsonb,
                          'object', 'order')
FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[],
            $8::timestamptz[], $9::bytea[])
     AS o(order_id, customer_id, email, subtotal, total, currency, occurred_at, fingerprint)
ON CONFLICT (merchant_id, order_id) DO NOTHING
RETURNING order_id
"""

FINGERPRINTS = """
SELECT order_id, fingerprint FROM orders WHERE merchant_id = $1 AND order_id = ANY($2::text[])
"""

# --- a customer's data rights (referral/customers/) ---------------------------------------
# Their orders: by customer id, or by email where the shop sent none (a guest order).
CUSTOMER_ORDER_KEYS = """
SELECT id, customer_id, email_normalised FROM orders
WHERE merchant_id = $1 AND (customer_id = $2
      OR (customer_id IS NULL AND email_normalised = ANY($3::text[])))
"""

CUSTOMER_ORDERS = """
SELECT id, order_id, customer_id, email_normalised, subtotal, total, refunded, currency, status,
       occurred_at, metadata, referral_id
FROM orders WHERE merchant_id = $1 AND id = ANY($2::bigint[])
ORDER BY occurred_at, id
"""

# Customer id and email replaced by their tombstones ($3 the customer id's; $4 from, $5 to),
# the IP hash and the shop's metadata (free text: an address, a phone) dropped, and the
# fingerprint (a hash of who and how much) made again from the tombstones ($6, per order in
# $2). Amounts, status, times and the referral stay: the order still counts where it did.
ERASE_ORDERS = """
WITH erased AS (
    UPDATE orders o SET
        customer_id = CASE WHEN o.customer_id IS NOT NULL THEN $3 END,
        email_normalised = CASE WHEN o.email_normalised IS NOT NULL THEN
            coalesce(($5::text[])[array_position($4::text[], o.email_normalised)], $3) END,
        ip_hash = NULL, metadata = '{}', fingerprint = f.fingerprint
    FROM unnest($2::bigint[], $6::bytea[]) AS f(id, fingerprint)
    WHERE o.merchant_id = $1 AND o.id = f.id
    RETURNING 1
)
SELECT count(*) FROM erased
"""


class OrderRow(msgspec.Struct, frozen=True):
    id: int
    order_id: str
    customer_id: str | None
    email_normalised: str | None
    subtotal: int
    total: int
    currency: str  # char(3): strip before comparing
    refunded: int
    status: str
    occurred_at: datetime
    referral_id: int | None
    fingerprint: bytes
    result: dict[str, Any] | None


class RefundRow(msgspec.Struct, frozen=True):
    amount: int
    currency: str


async def insert_order(conn: asyncpg.Connection, *values: Any) -> int | None:
    return await conn.fetchval(INSERT_ORDER, *values)


async def order(
    conn: asyncpg.Connection, merchant_id: int, order_id: str, *, lock: bool = False
) -> OrderRow | None:
    query = ORDER_BY_ID + (" FOR UPDATE" if lock else "")
    return one(OrderRow, await conn.fetchrow(query, merchant_id, order_id))


async def set_order_result(
    conn: asyncpg.Connection, merchant_id: int, order_pk: int, referral_id: int | None, result: dict
) -> None:
    await conn.execute(SET_ORDER_RESULT, merchant_id, order_pk, referral_id, result)


async def set_order_refunded(
    conn: asyncpg.Connection, merchant_id: int, order_pk: int, refunded: int, status: str
) -> None:
    await conn.execute(SET_ORDER_REFUNDED, merchant_id, order_pk, refunded, status)


async def insert_refund(conn: asyncpg.Connection, *values: Any) -> int | None:
    return await conn.fetchval(INSERT_REFUND, *values)


async def refund(
    conn: asyncpg.Connection, merchant_id: int, order_pk: int, refund_id: str
) -> RefundRow | None:
    return one(RefundRow, await conn.fetchrow(REFUND_BY_ID, merchant_id, order_pk, refund_id))


class CustomerOrderKey(msgspec.Struct, frozen=True):
    id: int
    customer_id: str | None
    email_normalised: str | None


class CustomerOrderRow(msgspec.Struct, frozen=True):
    id: int
    order_id: str
    customer_id: str | None
    email_normalised: str | None
    subtotal: int
    total: int
    refunded: int
    currency: str
    status: str
    occurred_at: datetime
    metadata: dict[str, Any]
    referral_id: int | None


async def customer_order_keys(
    conn: asyncpg.Connection, merchant_id: int, customer_id: str, emails: list[str]
) -> list[CustomerOrderKey]:
    rows = await conn.fetch(CUSTOMER_ORDER_KEYS, merchant_id, customer_id, emails)
    return many(CustomerOrderKey, rows)


async def customer_orders(
    conn: asyncpg.Connection, merchant_id: int, order_ids: list[int]
) -> list[CustomerOrderRow]:
    return many(CustomerOrderRow, await conn.fetch(CUSTOMER_ORDERS, merchant_id, order_ids))


async def erase_orders(
    conn: asyncpg.Connection,
    merchant_id: int,
    order_ids: list[int],
    tombstone: str,
    emails_from: list[str],
    emails_to: list[str],
    fingerprints: list[bytes],
) -> int:
    return await conn.fetchval(
        ERASE_ORDERS, merchant_id, order_ids, tombstone, emails_from, emails_to, fingerprints
    )


async def import_orders(
    conn: asyncpg.Connection,
    merchant_id: int,
    columns: tuple[list[Any], ...],
) -> set[str]:
    """The order ids inserted now, of the columns of IMPORT_ORDERS ($2-$9)."""
    return {r["order_id"] for r in await conn.fetch(IMPORT_ORDERS, merchant_id, *columns)}


async def fingerprints(
    conn: asyncpg.Connection, merchant_id: int, order_ids: list[str]
) -> dict[str, bytes]:
    rows = await conn.fetch(FINGERPRINTS, merchant_id, order_ids)
    return {r["order_id"]: r["fingerprint"] for r in rows}
