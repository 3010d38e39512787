"""SQL for a customer's erasures and the retention job's lock. What each room holds about the
person is read and replaced by that room's own repo; this keeps only the erasures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from referral.lib.db import many, one

START_ERASURE = """
INSERT INTO customer_erasures (merchant_id, subject_hash, erased)
VALUES ($1, $2, '{}') RETURNING id, created_at
"""

FINISH_ERASURE = """
UPDATE customer_erasures SET advocate_ids = $3, erased = $4::text::jsonb
WHERE merchant_id = $1 AND id = $2
"""

ERASURES = """
SELECT id, created_at, advocate_ids, erased::text AS erased FROM customer_erasures
WHERE merchant_id = $1 AND subject_hash = $2
ORDER BY id
"""

# Stored Idempotency-Key answers that name the person (`$2` as whole JSON strings, `$3`
# lower-cased addresses anywhere) are deleted: a replay would hand their data back. The
# table is the HTTP layer's, which no service may import; an erasure is the one change that
# must reach it. A retry with such a key then runs again, as a new person's call would.
FORGET_ANSWERS = """
WITH gone AS (
    DELETE FROM idempotency_keys k
    WHERE k.merchant_id = $1
      AND (EXISTS (SELECT 1 FROM unnest($2::text[]) AS w(v)
                   WHERE strpos(convert_from(k.response, 'UTF8'), to_jsonb(w.v)::text) > 0)
           OR EXISTS (SELECT 1 FROM unnest($3::text[]) AS w(v)
                      WHERE strpos(lower(convert_from(k.response, 'UTF8')), w.v) > 0))
    RETURNING 1
)
SELECT count(*) FROM gone
"""


# Serialises erasures of one person (two at once would both find them and tombstone twice).
LOCK_SUBJECT = "SELECT pg_advisory_xact_lock(hashtextextended('erasure|' || $2, $1))"

# One retention run at a time across every instance; the others skip the turn. A session
# lock: the run is several transactions (a partition is dropped in one of its own).
TRY_RETENTION_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('retention', 0))"
RETENTION_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended('retention', 0))"


class ErasureRow(msgspec.Struct, frozen=True):
    id: int
    created_at: datetime
    advocate_ids: list[int]
    erased: str


class Started(msgspec.Struct, frozen=True):
    id: int
    created_at: datetime


async def lock_subject(conn: asyncpg.Connection, merchant_id: int, subject_hash: bytes) -> None:
    await conn.execute(LOCK_SUBJECT, merchant_id, subject_hash.hex())


async def start_erasure(conn: asyncpg.Connection, merchant_id: int, subject_hash: bytes) -> Started:
    row = one(Started, await conn.fetchrow(START_ERASURE, merchant_id, subject_hash))
    assert row is not None  # INSERT … RETURNING always answers
    return row


async def finish_erasure(
    conn: asyncpg.Connection,
    merchant_id: int,
    erasure_id: int,
    advocate_ids: list[int],
    erased: dict[str, Any],
) -> None:
    encoded = msgspec.json.encode(erased).decode()
    await conn.execute(FINISH_ERASURE, merchant_id, erasure_id, advocate_ids, encoded)


async def erasures(
    conn: asyncpg.Connection, merchant_id: int, subject_hash: bytes
) -> list[ErasureRow]:
    return many(ErasureRow, await conn.fetch(ERASURES, merchant_id, subject_hash))


async def try_retention_lock(conn: asyncpg.Connection) -> bool:
    return await conn.fetchval(TRY_RETENTION_LOCK)


async def retention_unlock(conn: asyncpg.Connection) -> None:
    await conn.execute(RETENTION_UNLOCK)


async def forget_answers(
    conn: asyncpg.Connection, merchant_id: int, values: list[str], emails: list[str]
) -> int:
    if not values and not emails:
        return 0
    return await conn.fetchval(FORGET_ANSWERS, merchant_id, values, [e.lower() for e in emails])
