"""SQL for the outbox: events are written in the transaction of the change they announce.
This is the only module that writes the `events` table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

INSERT = "INSERT INTO events (merchant_id, type, data) VALUES ($1, $2, $3)"

# An event about an advocate's own money carries their contact preference (email, sms,
# none) and their preference centre (channels, topics), so whoever tells the advocate
# knows how and whether.
INSERT_FOR_ADVOCATE = """
INSERT INTO events (merchant_id, type, data)
SELECT $1, $2, $3::jsonb || jsonb_build_object(
    'contact_preference', a.contact_preference,
    'preferences', jsonb_build_object('channels', coalesce(to_jsonb(p.channels), '[]'),
                                      'topics', coalesce(to_jsonb(p.topics), '[]')))
FROM (SELECT 1) AS one
LEFT JOIN advocates a ON a.merchant_id = $1 AND a.id = $4
LEFT JOIN customer_preferences p ON p.merchant_id = $1 AND p.customer_id = a.customer_id
"""

# Many events of one type at once (a payout batch paid): payloads as one jsonb array.
INSERT_MANY = """
INSERT INTO events (merchant_id, type, data)
SELECT $1, $2, d FROM jsonb_array_elements($3::jsonb) AS d
"""

LIST = """
SELECT id, type, data, created_at FROM events
WHERE merchant_id = $1 AND ($2::text IS NULL OR type = $2) AND ($3::bigint IS NULL OR id > $3)
ORDER BY id
LIMIT $4
"""

# An erasure (referral/customers/): the person's values in the merchant's events replaced
# by `$4` (`jsonb_scrub`: strings equal to one of `$2`, or containing one of the lower-cased
# `$3`). Payloads carry ids, not people, so this finds free text: a vanity code in a
# suspension, an address in a reviewer's note or a fraud policy's blocklist. The events are
# read whole (no index knows their text): an erasure is rare.
SCRUB = """
WITH scrubbed AS (
    UPDATE events e SET data = jsonb_scrub(e.data, $2::text[], $3::text[], $4)
    WHERE e.merchant_id = $1
      AND (EXISTS (SELECT 1 FROM unnest($2::text[]) AS w(v)
                   WHERE strpos(e.data::text, to_jsonb(w.v)::text) > 0)
           OR EXISTS (SELECT 1 FROM unnest($3::text[]) AS w(v)
                      WHERE strpos(lower(e.data::text), w.v) > 0))
    RETURNING e.id
)
SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM scrubbed
"""


class EventRow(msgspec.Struct, frozen=True):
    id: int
    type: str
    data: dict[str, Any]
    created_at: datetime


async def insert(
    conn: asyncpg.Connection,
    merchant_id: int,
    type_: str,
    data: dict[str, Any],
    advocate_id: int | None,
) -> None:
    if advocate_id is None:
        await conn.execute(INSERT, merchant_id, type_, data)
    else:
        await conn.execute(INSERT_FOR_ADVOCATE, merchant_id, type_, data, advocate_id)


async def insert_many(
    conn: asyncpg.Connection, merchant_id: int, type_: str, payloads: list[dict[str, Any]]
) -> None:
    if payloads:
        await conn.execute(INSERT_MANY, merchant_id, type_, payloads)


async def list_after(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    type_: str | None,
    after_id: int | None,
    fetch: int,
) -> list[EventRow]:
    rows = await conn.fetch(LIST, merchant_id, type_, after_id, fetch)
    return [EventRow(**r) for r in rows]


async def scrub(
    conn: asyncpg.Connection, merchant_id: int, whole: list[str], within: list[str], tombstone: str
) -> list[int]:
    return list(await conn.fetchval(SCRUB, merchant_id, whole, within, tombstone))
