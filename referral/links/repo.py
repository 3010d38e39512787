"""SQL for links: resolving a code to its program's link settings, and the click writer's
COPY and rollups."""

from __future__ import annotations

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

ADD_ROLLUPS = """
INSERT INTO click_rollups AS r
    (merchant_id, program_id, advocate_id, channel, hour, clicks, bot_hits)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::timestamptz[],
                     $6::bigint[], $7::bigint[])
ORDER BY 1, 3, 4, 5  -- a fixed lock order: concurrent writers never deadlock
ON CONFLICT (merchant_id, advocate_id, channel, hour) DO UPDATE
SET clicks = r.clicks + excluded.clicks, bot_hits = r.bot_hits + excluded.bot_hits
"""

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


async def add_rollups(conn: asyncpg.Connection, columns: tuple[list, ...]) -> None:
    """`columns`: merchant, program and advocate ids, channels, hours, clicks, bot hits."""
    await conn.execute(ADD_ROLLUPS, *columns)


async def ensure_partitions(conn: asyncpg.Pool | asyncpg.Connection) -> None:
    await conn.execute(ENSURE_PARTITIONS)
