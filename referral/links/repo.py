"""SQL for links: resolving a code to its program's link settings, and the click writer's
COPY and rollups."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime

import asyncpg
import msgspec

from referral.lib.db import many, stream

# A program's link settings. `live_from` and `live_until`: its start and end (`ends_at`,
# infinity for none) as Unix seconds, compared with the clock on each redirect (a cached code
# of a program that starts or ends later follows it without a change to hear of);
# `plain`: a paused, ended or not yet started program, whose links still redirect, without
# the offer (a draft or archived one: as an inactive code); `experiment`: its running
# experiment (migration 0029), whose variant the redirect assigns and signs into the token.
PROGRAM_LINK_COLUMNS = """p.status = 'active' AS live,
       extract(epoch FROM p.starts_at)::float8 AS live_from,
       p.landing_url, p.fallback_url, p.qr_foreground, p.qr_background,
       COALESCE(extract(epoch FROM p.ends_at)::float8, 'Infinity') AS live_until,
       p.status IN ('active', 'paused', 'ended') AS plain,
       (SELECT jsonb_build_object(
                   'id', x.id, 'key', encode(x.hash_key, 'hex'),
                   'from', extract(epoch FROM x.starts_at)::float8,
                   'until', extract(epoch FROM x.ends_at)::float8,
                   'variants', x.variants)
        FROM experiments x
        WHERE x.merchant_id = p.merchant_id AND x.program_id = p.id AND x.status = 'running')
           AS experiment"""

# A code with its program's link settings (the program in the code's merchant: one shard).
RESOLVE_CODE = f"""
SELECT c.lookup_key, c.code, c.merchant_id, c.program_id, c.advocate_id,
       c.status = 'active' AS code_active, {PROGRAM_LINK_COLUMNS}
FROM codes c JOIN programs p ON p.merchant_id = c.merchant_id AND p.id = c.program_id
WHERE c.lookup_key = $1
"""

# The codes after `$1` in lookup-key order, `$2` of them: the resolver's warm-up.
CODES_AFTER = """
SELECT lookup_key, code, merchant_id, program_id, advocate_id, status = 'active' AS code_active
FROM codes WHERE lookup_key > $1 ORDER BY lookup_key LIMIT $2
"""

# Programs' link settings by (merchant, program) pairs.
PROGRAM_LINKS = f"""
SELECT p.merchant_id, p.id AS program_id, {PROGRAM_LINK_COLUMNS}
FROM programs p JOIN unnest($1::bigint[], $2::bigint[]) AS k(merchant_id, id)
  ON p.merchant_id = k.merchant_id AND p.id = k.id
WHERE p.merchant_id = ANY($1)
"""

# Where code changes are announced (migration 0014): `c:KEY,KEY…` or `p:ID,ID…`.
CODE_CHANGES_CHANNEL = "referral_codes"

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

# --- a customer's data rights (referral/customers/) ---------------------------------------
# The clicks on their links, and theirs as a friend (by the visitor cookie their referral's
# click token carried). Clicks have no index but their time (COPY stays fast): this reads
# the merchant's clicks, which retention keeps to a bounded number of months.
CUSTOMER_CLICKS = """
SELECT advocate_id, clicked_at, channel, is_bot, advocate_id = ANY($2::bigint[]) AS own_link
FROM clicks
WHERE merchant_id = $1 AND (advocate_id = ANY($2::bigint[]) OR visitor_id = ANY($3::text[]))
ORDER BY clicked_at, id
"""

# Their clicks as a friend lose the visitor cookie (each its own tombstone, so the rebuild
# still counts one visitor per cookie), the IP hashes and the browser.
ERASE_VISITOR_CLICKS = """
WITH erased AS (
    UPDATE clicks c SET visitor_id = m.tombstone, ip_hash = NULL, ip_net_hash = NULL,
                        user_agent = NULL
    FROM unnest($2::text[], $3::text[]) AS m(visitor_id, tombstone)
    WHERE c.merchant_id = $1 AND c.visitor_id = m.visitor_id
    RETURNING 1
)
SELECT count(*) FROM erased
"""

# Clicks on their links keep their counts; a vanity code in them becomes its tombstone.
ERASE_CLICKED_CODES = """
WITH erased AS (
    UPDATE clicks c SET code = m.tombstone
    FROM unnest($3::text[], $4::text[]) AS m(code, tombstone)
    WHERE c.merchant_id = $1 AND c.advocate_id = ANY($2::bigint[]) AND c.code = m.code
    RETURNING 1
)
SELECT count(*) FROM erased
"""

ERASE_UNIQUE_CLICKS = """
DELETE FROM unique_clicks WHERE merchant_id = $1 AND visitor_id = ANY($2::text[])
"""

# --- retention: raw clicks of old months go with their partition ---------------------------
# The monthly partitions of `clicks` and where each ends (the default one: NULL).
CLICK_PARTITIONS = r"""
SELECT c.relname AS name,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
           AS ends
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'clicks'::regclass
ORDER BY c.relname
"""

# Rows the default partition caught (no monthly partition existed for them) before `$2`.
DELETE_DEFAULT_CLICKS = """
WITH gone AS (
    DELETE FROM clicks_default WHERE merchant_id = $1 AND clicked_at < $2 RETURNING 1
)
SELECT count(*) FROM gone
"""

# Dropping a partition waits for the click writer's COPY in flight; it must never make the
# writer wait long behind it: the job gives up and tries again the next day.
DROP_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '10s'"
DROP_PARTITION = "DROP TABLE {name}"
_PARTITION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class CodeRow(msgspec.Struct, frozen=True):
    lookup_key: str
    code: str
    merchant_id: int
    program_id: int
    advocate_id: int
    code_active: bool


class ProgramLinkRow(msgspec.Struct, frozen=True):
    merchant_id: int
    program_id: int
    live: bool  # status active; the start is `live_from`
    live_from: float
    landing_url: str
    fallback_url: str | None
    qr_foreground: str
    qr_background: str
    live_until: float = math.inf
    plain: bool = False  # while not running, its links still lead on (without the offer)
    experiment: dict | None = None


async def resolve_code(
    conn: asyncpg.Pool | asyncpg.Connection, key: str
) -> tuple[CodeRow, ProgramLinkRow] | None:
    row = await conn.fetchrow(RESOLVE_CODE, key)
    if row is None:
        return None
    return CodeRow(*row[:6]), ProgramLinkRow(row[2], row[3], *row[6:])


async def codes_after(
    conn: asyncpg.Pool | asyncpg.Connection, after: str, limit: int
) -> list[CodeRow]:
    return [CodeRow(*r) for r in await conn.fetch(CODES_AFTER, after, limit)]


async def program_links(
    conn: asyncpg.Pool | asyncpg.Connection, keys: list[tuple[int, int]]
) -> list[ProgramLinkRow]:
    merchants, programs = [k[0] for k in keys], [k[1] for k in keys]
    return many(ProgramLinkRow, await conn.fetch(PROGRAM_LINKS, merchants, programs))


async def listen_for_code_changes(
    dsn: str, on_change: Callable[[str], None], on_lost: Callable[[], None]
) -> asyncpg.Connection:
    """A dedicated connection (not the pool's: its no-op reset never UNLISTENs) that calls
    `on_change(payload)` for each announced change, and `on_lost()` when it closes."""
    conn = await asyncpg.connect(
        dsn, timeout=5, server_settings={"application_name": "referral-code-listener"}
    )
    try:
        conn.add_termination_listener(lambda _conn: on_lost())
        await conn.add_listener(
            CODE_CHANGES_CHANNEL, lambda _conn, _pid, _channel, payload: on_change(payload)
        )
    except BaseException:
        conn.terminate()
        raise
    return conn


async def heartbeat(conn: asyncpg.Connection, within_seconds: float) -> None:
    """Raise unless the listening connection answers within `within_seconds`."""
    await asyncio.wait_for(conn.fetchval("SELECT 1"), within_seconds)


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


class CustomerClickRow(msgspec.Struct, frozen=True):
    advocate_id: int
    clicked_at: datetime
    channel: str
    is_bot: bool
    own_link: bool


class ClickPartition(msgspec.Struct, frozen=True):
    name: str
    ends: datetime | None  # None: the default partition


async def customer_clicks(
    conn: asyncpg.Connection, merchant_id: int, advocate_ids: list[int], visitor_ids: list[str]
) -> AsyncIterator[CustomerClickRow]:
    """Read with a cursor (inside the caller's transaction): a popular advocate's clicks are
    never all in memory at once."""
    async for rows in stream(conn, CUSTOMER_CLICKS, merchant_id, advocate_ids, visitor_ids):
        for row in rows:
            yield CustomerClickRow(**row)


async def erase_visitor_clicks(
    conn: asyncpg.Connection, merchant_id: int, visitor_ids: list[str], tombstones: list[str]
) -> int:
    return await conn.fetchval(ERASE_VISITOR_CLICKS, merchant_id, visitor_ids, tombstones)


async def erase_clicked_codes(
    conn: asyncpg.Connection,
    merchant_id: int,
    advocate_ids: list[int],
    codes: list[str],
    tombstones: list[str],
) -> int:
    return await conn.fetchval(ERASE_CLICKED_CODES, merchant_id, advocate_ids, codes, tombstones)


async def erase_unique_clicks(
    conn: asyncpg.Connection, merchant_id: int, visitor_ids: list[str]
) -> None:
    await conn.execute(ERASE_UNIQUE_CLICKS, merchant_id, visitor_ids)


async def click_partitions(conn: asyncpg.Connection) -> list[ClickPartition]:
    return many(ClickPartition, await conn.fetch(CLICK_PARTITIONS))


async def delete_default_clicks(
    conn: asyncpg.Connection, merchant_id: int, before: datetime
) -> int:
    return await conn.fetchval(DELETE_DEFAULT_CLICKS, merchant_id, before)


async def drop_partitions(conn: asyncpg.Connection, names: list[str]) -> None:
    await conn.execute(DROP_LOCK_TIMEOUT)
    for name in names:
        if not _PARTITION_NAME.match(name):  # from the catalog; never quoted into SQL raw
            raise ValueError(f"unexpected partition name {name!r}")
        await conn.execute(DROP_PARTITION.format(name=name))
