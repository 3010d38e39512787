"""SQL for programs. Every statement is scoped by merchant_id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from referral.lib.db import many, one
from referral.lib.pagination import CURSOR_CLAUSE, Cursor

COLUMNS = """id, name, status, landing_url, fallback_url, attribution_window_days, hold_days,
rewards, fraud_policy, fraud_policy_version, qr_foreground, qr_background, created_at,
updated_at, brand_colour, locale, stories_auto_publish, rules_version, starts_at, ends_at,
ended_at"""

INSERT = f"""
INSERT INTO programs (merchant_id, name, status, landing_url, fallback_url,
                      attribution_window_days, hold_days, rewards, fraud_policy,
                      qr_foreground, qr_background,
                      brand_colour, locale, stories_auto_publish, starts_at, ends_at)
VALUES ($1, $2, $3, $4, $5, $6::int, $7::int, $8, $9, $10, $11, $12, $13, $14,
        COALESCE($15::timestamptz, now()), $16::timestamptz)
RETURNING {COLUMNS}
"""

GET = f"SELECT {COLUMNS} FROM programs WHERE merchant_id = $1 AND id = $2"
GET_FOR_UPDATE = GET + " FOR UPDATE"

UPDATE = f"""
UPDATE programs SET name = $3, status = $4, landing_url = $5, fallback_url = $6,
       attribution_window_days = $7::int, hold_days = $8::int, rewards = $9, fraud_policy = $10,
       rules_version = rules_version + CASE WHEN rewards IS DISTINCT FROM $9 THEN 1 ELSE 0 END,
       qr_foreground = $11, qr_background = $12,
       brand_colour = $13, locale = $14, stories_auto_publish = $15,
       starts_at = $16::timestamptz, ends_at = $17::timestamptz, updated_at = now()
WHERE merchant_id = $1 AND id = $2
RETURNING {COLUMNS}
"""

# Pause, resume or end: the status, and when it ended (an end is final).
SET_STATUS = f"""
UPDATE programs SET status = $3::text,
       ended_at = CASE WHEN $3::text = 'ended' THEN now() ELSE ended_at END, updated_at = now()
WHERE merchant_id = $1 AND id = $2
RETURNING {COLUMNS}
"""

LIST = f"""
SELECT {COLUMNS} FROM programs t
WHERE t.merchant_id = $1 AND ($2::text IS NULL OR t.status = $2)
{CURSOR_CLAUSE.format(table="programs")}
ORDER BY t.created_at, t.id
LIMIT $6
"""

WRITABLE = (
    "name",
    "status",
    "landing_url",
    "fallback_url",
    "attribution_window_days",
    "hold_days",
    "rewards",
    "fraud_policy",
    "qr_foreground",
    "qr_background",
    "brand_colour",
    "locale",
    "stories_auto_publish",
    "starts_at",
    "ends_at",
)


class ProgramRow(msgspec.Struct, frozen=True):
    id: int
    name: str
    status: str
    landing_url: str
    fallback_url: str | None
    attribution_window_days: int
    hold_days: int
    rewards: dict[str, Any]
    fraud_policy: dict[str, Any]
    fraud_policy_version: int
    qr_foreground: str
    qr_background: str
    created_at: datetime
    updated_at: datetime
    brand_colour: str
    locale: str
    stories_auto_publish: bool
    rules_version: int
    starts_at: datetime
    ends_at: datetime | None
    ended_at: datetime | None


async def insert(conn: asyncpg.Connection, merchant_id: int, values: dict) -> ProgramRow:
    return one(ProgramRow, await conn.fetchrow(INSERT, merchant_id, *(values[k] for k in WRITABLE)))


async def get(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, *, for_update: bool = False
) -> ProgramRow | None:
    row = await conn.fetchrow(GET_FOR_UPDATE if for_update else GET, merchant_id, program_id)
    return one(ProgramRow, row)


async def update(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, values: dict
) -> ProgramRow:
    row = await conn.fetchrow(UPDATE, merchant_id, program_id, *(values[k] for k in WRITABLE))
    return one(ProgramRow, row)


async def set_status(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, status: str
) -> ProgramRow:
    return one(ProgramRow, await conn.fetchrow(SET_STATUS, merchant_id, program_id, status))


async def list_page(
    conn: asyncpg.Connection, merchant_id: int, *, status: str | None, cursor: Cursor
) -> list[ProgramRow]:
    return many(ProgramRow, await conn.fetch(LIST, merchant_id, status, *cursor.params))
