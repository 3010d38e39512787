"""SQL for orders and refunds. Every statement is scoped by merchant_id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from referral.lib.db import one

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
