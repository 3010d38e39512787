"""SQL for links: resolving a code to its program's link settings, and the click writer's
COPY and rollups."""

from __future__ import annotations

from datetime import date

import asyncpg
import msgspec

from referral.lib.db import one

RESOLVE_CODE = """
SELECT c.code, c.merchant_id, c.program_id, c.advocate_id,
       c.status = 'active' AND p.status = 'active' AND p.starts_at <= now() AS active,
       p.landing_url, p.fallback_url, p.qr_foreground, p.qr_background
FROM codes c JOIN programs p ON p.id = c.program_id
WHERE c.lookup_key = $1
"""

# The order of a click tuple (`links.clicks.Click`).
CLICK_COLUMNS = (
    "id",
    "clicked_at",
    "merchant_id",
    "program_id",
    "advocate_id",
    "code",
    "channel",
    "visitor_id",
    "ip_hash",
    "ip_net_hash",
    "user_agent",
    "referer_host",
    "story_id",
    "is_bot",
)

# One statement per flushed batch: the unique clicks it brings (the first human click of
# each (merchant, advocate, merchant's day, visitor) not already in `unique_clicks`), then
# the rollups with raw clicks, bot hits and those unique clicks, each unique click counted
# under its own click's rollup row (`slot`: its 1-based position in the rollup arrays).
# Answers the 1-based position (among the human clicks) of each new unique click.
ADD_ROLLUPS = """
WITH visits AS (
    SELECT * FROM unnest($8::bigint[], $9::bigint[], $10::text[], $11::timestamptz[],
                         $12::integer[])
        WITH ORDINALITY AS v(merchant_id, advocate_id, visitor_id, clicked_at, slot, idx)
), zones AS MATERIALIZED (
    SELECT m.id, click_time_zone(m.time_zone) AS zone FROM merchants m
    WHERE m.id IN (SELECT DISTINCT merchant_id FROM visits)
), firsts AS (
    SELECT DISTINCT ON (v.merchant_id, v.advocate_id, day, v.visitor_id)
           v.merchant_id, v.advocate_id, (v.clicked_at AT TIME ZONE z.zone)::date AS day,
           v.visitor_id, v.slot, v.idx
    FROM visits v JOIN zones z ON z.id = v.merchant_id
    ORDER BY v.merchant_id, v.advocate_id, day, v.visitor_id, v.clicked_at
), inserted AS (
    INSERT INTO unique_clicks (merchant_id, advocate_id, day, visitor_id)
    SELECT merchant_id, advocate_id, day, visitor_id FROM firsts
    ORDER BY 1, 2, 3, 4  -- a fixed lock order, as below
    ON CONFLICT DO NOTHING
    RETURNING merchant_id, advocate_id, day, visitor_id
), new_firsts AS (
    SELECT f.slot, f.idx
    FROM inserted i JOIN firsts f USING (merchant_id, advocate_id, day, visitor_id)
), uniques AS (
    SELECT slot, count(*) AS n FROM new_firsts GROUP BY slot
), rolled AS (
    INSERT INTO click_rollups AS r
        (merchant_id, program_id, advocate_id, channel, hour, clicks, bot_hits, unique_clicks)
    SELECT t.merchant_id, t.program_id, t.advocate_id, t.channel, t.hour, t.clicks, t.bot_hits,
           coalesce(u.n, 0)
    FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::timestamptz[],
                $6::bigint[], $7::bigint[])
         WITH ORDINALITY AS t(merchant_id, program_id, advocate_id, channel, hour, clicks,
                              bot_hits, slot)
    LEFT JOIN uniques u ON u.slot = t.slot
    ORDER BY 1, 3, 4, 5  -- a fixed lock order: concurrent writers never deadlock
    ON CONFLICT (merchant_id, advocate_id, channel, hour) DO UPDATE
    SET clicks = r.clicks + excluded.clicks, bot_hits = r.bot_hits + excluded.bot_hits,
        unique_clicks = r.unique_clicks + excluded.unique_clicks
)
SELECT idx FROM new_firsts
"""

# Deployment-wide upkeep, as the partitions: a day long over is never met again.
PRUNE_UNIQUE_CLICKS = "DELETE FROM unique_clicks WHERE day < $1"

# This month's and the next two months' partitions of `clicks` (the default one catches
# the rest).
ENSURE_PARTITIONS = "SELECT ensure_click_partitions(now(), 2)"


class CodeRow(msgspec.Struct, frozen=True):
    code: str
    merchant_id: int
    program_id: int
    advocate_id: int
    active: bool
    landing_url: str
    fallback_url: str | None
    qr_foreground: str
    qr_background: str


async def resolve_code(conn: asyncpg.Pool | asyncpg.Connection, key: str) -> CodeRow | None:
    return one(CodeRow, await conn.fetchrow(RESOLVE_CODE, key))


async def copy_clicks(conn: asyncpg.Connection, clicks: list[tuple]) -> None:
    await conn.copy_records_to_table("clicks", records=clicks, columns=CLICK_COLUMNS)


async def add_rollups(conn: asyncpg.Connection, columns: tuple[list, ...]) -> list[int]:
    """`columns`: per rollup row merchant, program and advocate ids, channels, hours, clicks
    and bot hits; then per human click merchant and advocate ids, visitor ids, click times
    and the 1-based rollup row the click belongs to. Answers the 1-based positions, among
    the human clicks, of the new unique clicks."""
    return [r[0] for r in await conn.fetch(ADD_ROLLUPS, *columns)]


async def prune_unique_clicks(conn: asyncpg.Pool | asyncpg.Connection, before: date) -> None:
    await conn.execute(PRUNE_UNIQUE_CLICKS, before)


async def ensure_partitions(conn: asyncpg.Pool | asyncpg.Connection) -> None:
    await conn.execute(ENSURE_PARTITIONS)
