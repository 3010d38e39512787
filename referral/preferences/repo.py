"""SQL for preferences and the consents on record."""

from __future__ import annotations

from datetime import date, datetime

import asyncpg
import msgspec

from referral.lib.db import many, one

GET = """
SELECT customer_id, channels, topics, birthday, birthday_set_at, updated_at
FROM customer_preferences WHERE merchant_id = $1 AND customer_id = $2
"""

LOCK = GET + "FOR UPDATE"

# A birthday's `birthday_set_at` moves only when the date changes (the birthday rule reads it).
UPSERT = """
INSERT INTO customer_preferences AS p (merchant_id, customer_id, channels, topics, birthday,
                                       birthday_set_at, updated_by)
VALUES ($1, $2, $3, $4, $5, CASE WHEN $5::date IS NOT NULL THEN now() END, $6)
ON CONFLICT (merchant_id, customer_id) DO UPDATE
SET channels = excluded.channels, topics = excluded.topics, birthday = excluded.birthday,
    birthday_set_at = CASE WHEN excluded.birthday IS DISTINCT FROM p.birthday
                           THEN excluded.birthday_set_at ELSE p.birthday_set_at END,
    updated_at = now(), updated_by = excluded.updated_by
RETURNING customer_id, channels, topics, birthday, birthday_set_at, updated_at
"""

INSERT_CONSENTS = """
INSERT INTO preference_consents (merchant_id, customer_id, consent, given, by)
SELECT $1, $2, c, g, $5 FROM unnest($3::text[], $4::boolean[]) AS t(c, g)
"""

CONSENTS = """
SELECT consent, given, by, at FROM preference_consents
WHERE merchant_id = $1 AND customer_id = $2 ORDER BY id
"""

# Birthdays today (month and day) in the merchant's zone, with their programs' customers.
BIRTHDAYS = """
SELECT customer_id, birthday, birthday_set_at FROM customer_preferences
WHERE merchant_id = $1 AND extract(month FROM birthday) = $2 AND extract(day FROM birthday) = $3
"""


class PreferencesRow(msgspec.Struct, frozen=True):
    customer_id: str
    channels: list[str]
    topics: list[str]
    birthday: date | None
    birthday_set_at: datetime | None
    updated_at: datetime


class ConsentRow(msgspec.Struct, frozen=True):
    consent: str
    given: bool
    by: str
    at: datetime


async def get(
    conn: asyncpg.Connection, merchant_id: int, customer_id: str, lock: bool = False
) -> PreferencesRow | None:
    return one(PreferencesRow, await conn.fetchrow(LOCK if lock else GET, merchant_id, customer_id))


async def upsert(
    conn: asyncpg.Connection,
    merchant_id: int,
    customer_id: str,
    channels: list[str],
    topics: list[str],
    birthday: date | None,
    by: str,
) -> PreferencesRow:
    row = await conn.fetchrow(UPSERT, merchant_id, customer_id, channels, topics, birthday, by)
    return msgspec.convert(dict(row), PreferencesRow)


async def insert_consents(
    conn: asyncpg.Connection,
    merchant_id: int,
    customer_id: str,
    changes: list[tuple[str, bool]],
    by: str,
) -> None:
    if changes:
        await conn.execute(
            INSERT_CONSENTS,
            merchant_id,
            customer_id,
            [c for c, _ in changes],
            [g for _, g in changes],
            by,
        )


async def consents(
    conn: asyncpg.Connection, merchant_id: int, customer_id: str
) -> list[ConsentRow]:
    return many(ConsentRow, await conn.fetch(CONSENTS, merchant_id, customer_id))


async def birthdays(
    conn: asyncpg.Connection, merchant_id: int, month: int, day: int
) -> list[PreferencesRow]:
    rows = await conn.fetch(BIRTHDAYS, merchant_id, month, day)
    return [
        PreferencesRow(
            r["customer_id"], [], [], r["birthday"], r["birthday_set_at"], r["birthday_set_at"]
        )
        for r in rows
    ]


# An erasure: the tombstone, and nothing about them left but the record of consents.
ERASE = """
UPDATE customer_preferences
SET customer_id = $3, birthday = NULL, birthday_set_at = NULL, channels = '{}', topics = '{}'
WHERE merchant_id = $1 AND customer_id = $2
"""


async def erase(
    conn: asyncpg.Connection, merchant_id: int, customer_id: str, tombstone: str
) -> None:
    await conn.execute(ERASE, merchant_id, customer_id, tombstone)
