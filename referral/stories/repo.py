"""SQL for stories, their views and shares. Every statement is scoped by merchant_id except
the public lookup of a slug's merchant (`story_slugs`, deployment-wide, as `codes` is)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from referral.lib.db import many, one
from referral.lib.pagination import CURSOR_CLAUSE, Cursor

COLUMNS = """t.id, t.merchant_id, t.program_id, t.advocate_id, t.reward_id, t.slug, t.body,
t.display_name, t.status, t.created_at, t.published_at"""

# The reward a story tells about, with what the story's default sentence needs.
REWARD = """
SELECT r.id, r.program_id, r.advocate_id, r.side, r.status, r.kind, r.amount, r.currency,
       a.name AS advocate_name, p.locale, p.stories_auto_publish, m.name AS shop
FROM rewards r
JOIN advocates a ON a.merchant_id = r.merchant_id AND a.id = r.advocate_id
JOIN programs p ON p.merchant_id = r.merchant_id AND p.id = r.program_id
JOIN merchants m ON m.id = r.merchant_id
WHERE r.merchant_id = $1 AND r.id = $2
"""

INSERT = f"""
INSERT INTO stories AS t (merchant_id, program_id, advocate_id, reward_id, slug, body,
                          display_name, status, published_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $8 = 'published' THEN now() END)
ON CONFLICT DO NOTHING
RETURNING {COLUMNS}
"""

# The slug, deployment-wide, for the story just made; nothing when another merchant has it.
CLAIM_SLUG = """
INSERT INTO story_slugs (slug, merchant_id, story_id) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING story_id
"""

SLUG_OWNER = "SELECT merchant_id FROM story_slugs WHERE slug = $1"

GET = f"SELECT {COLUMNS} FROM stories t WHERE t.merchant_id = $1 AND t.id = $2"
GET_FOR_UPDATE = GET + " FOR UPDATE"
BY_REWARD = f"SELECT {COLUMNS} FROM stories t WHERE t.merchant_id = $1 AND t.reward_id = $2"

UPDATE = f"""
UPDATE stories t SET status = $3, body = $4, display_name = $5, updated_at = now(),
    published_at = CASE WHEN $3 = 'published' THEN coalesce(t.published_at, now())
                        ELSE t.published_at END
WHERE t.merchant_id = $1 AND t.id = $2
RETURNING {COLUMNS}
"""

LIST = f"""
SELECT {COLUMNS} FROM stories t
WHERE t.merchant_id = $1
  AND ($2::bigint IS NULL OR t.program_id = $2)
  AND ($7::bigint IS NULL OR t.advocate_id = $7)
  AND ($8::text IS NULL OR t.status = $8)
{CURSOR_CLAUSE.format(table="stories")}
ORDER BY t.created_at, t.id
LIMIT $6
"""

# The name of the story's advocate, for a story that starts or stops showing it.
ADVOCATE_NAME = """
SELECT a.name FROM stories t
JOIN advocates a ON a.merchant_id = t.merchant_id AND a.id = t.advocate_id
WHERE t.merchant_id = $1 AND t.id = $2
"""

# A story with its program's look and offer: what its page and image show.
PAGE_SELECT = f"""
SELECT {COLUMNS}, a.name AS advocate_name, p.rewards AS program_rewards, p.brand_colour,
       p.locale, p.status AS program_status, p.starts_at AS program_starts_at,
       p.ends_at AS program_ends_at, m.name AS shop
FROM stories t
JOIN advocates a ON a.merchant_id = t.merchant_id AND a.id = t.advocate_id
JOIN programs p ON p.merchant_id = t.merchant_id AND p.id = t.program_id
JOIN merchants m ON m.id = t.merchant_id
"""
# A story page, once its slug's merchant is known (`SLUG_OWNER`).
PAGE = PAGE_SELECT + "WHERE t.merchant_id = $1 AND t.slug = $2\n"
# The same for the merchant, whatever the story's status (the console's preview).
PAGE_BY_ID = PAGE_SELECT + "WHERE t.merchant_id = $1 AND t.id = $2\n"

STATUS_COUNTS = """
SELECT status, count(*)::int AS n FROM stories WHERE merchant_id = $1 GROUP BY status
"""

# A referral rejected as fraud takes its stories off the public pages.
HIDE_FOR_REWARDS = """
UPDATE stories SET status = 'hidden', updated_at = now()
WHERE merchant_id = $1 AND reward_id = ANY($2::bigint[]) AND status <> 'hidden'
"""

INSERT_VIEW = "INSERT INTO story_views (merchant_id, story_id) VALUES ($1, $2)"

INSERT_SHARE = """
INSERT INTO shares (merchant_id, program_id, advocate_id, story_id, channel)
VALUES ($1, $2, $3, $4, $5)
"""

# $1 merchant, $2 story id, $3 story public id (what click tokens and attributions carry).
STATS = """
WITH referred AS (
    SELECT id FROM referrals
    WHERE merchant_id = $1 AND attribution ? 'story_id' AND attribution ->> 'story_id' = $3
      AND status <> 'rejected'
), referred_orders AS (
    SELECT o.total - o.refunded AS revenue, o.currency FROM orders o
    WHERE o.merchant_id = $1 AND o.referral_id IN (SELECT id FROM referred)
      AND o.status <> 'cancelled'
)
SELECT
    (SELECT count(*) FROM story_views WHERE merchant_id = $1 AND story_id = $2) AS views,
    (SELECT coalesce(jsonb_object_agg(channel, n), '{}'::jsonb) FROM (
        SELECT channel, count(*) AS n FROM shares
        WHERE merchant_id = $1 AND story_id = $2 GROUP BY channel) s) AS shares,
    (SELECT count(*) FROM clicks
     WHERE merchant_id = $1 AND story_id = $2 AND NOT is_bot) AS clicks,
    (SELECT count(*) FROM referred) AS signups,
    (SELECT count(*) FROM referred_orders) AS orders,
    (SELECT coalesce(jsonb_object_agg(currency, total), '{}'::jsonb) FROM (
        SELECT currency, sum(revenue)::bigint AS total FROM referred_orders
        GROUP BY currency) r) AS referred_revenue
"""

PUBLIC_PROGRAM = """
SELECT p.id, p.merchant_id, p.locale, m.time_zone,
       to_char(now() AT TIME ZONE m.time_zone, 'YYYY-MM') AS month,
       date_trunc('month', now() AT TIME ZONE m.time_zone) AT TIME ZONE m.time_zone AS month_start
FROM programs p JOIN merchants m ON m.id = p.merchant_id
WHERE p.id = $1 AND p.status IN ('active', 'paused')
"""

FRIENDS_SINCE = """
SELECT count(*) FROM referrals
WHERE merchant_id = $1 AND program_id = $2 AND created_at >= $3 AND status <> 'rejected'
"""

LATEST_PUBLISHED = f"""
SELECT {COLUMNS} FROM stories t
WHERE t.merchant_id = $1 AND t.program_id = $2 AND t.status = 'published'
ORDER BY t.published_at DESC, t.id DESC
LIMIT $3
"""

# --- a customer's data rights (referral/customers/): their stories and shares.
CUSTOMER_STORIES = f"""
SELECT {COLUMNS} FROM stories t WHERE t.merchant_id = $1 AND t.advocate_id = ANY($2::bigint[])
ORDER BY t.created_at, t.id
"""

CUSTOMER_SHARES = """
SELECT advocate_id, story_id, channel, shared_at FROM shares
WHERE merchant_id = $1 AND advocate_id = ANY($2::bigint[])
ORDER BY shared_at
"""

# Their words ($3: what an erased story says) and first name gone, and off the public pages.
# The slug stays (it was random, never theirs), so the page answers as for a hidden story.
ERASE_STORIES = f"""
UPDATE stories t SET body = $3, display_name = NULL, status = 'hidden', updated_at = now()
FROM (SELECT s.id, s.status FROM stories s
      WHERE s.merchant_id = $1 AND s.advocate_id = ANY($2::bigint[]) FOR UPDATE) before
WHERE t.merchant_id = $1 AND t.id = before.id
RETURNING {COLUMNS}, before.status AS status_before
"""


class StoryRow(msgspec.Struct, frozen=True):
    id: int
    merchant_id: int
    program_id: int
    advocate_id: int
    reward_id: int
    slug: str
    body: str
    display_name: str | None
    status: str
    created_at: datetime
    published_at: datetime | None


class RewardRow(msgspec.Struct, frozen=True):
    id: int
    program_id: int
    advocate_id: int
    side: str
    status: str
    kind: str
    amount: int
    currency: str | None
    advocate_name: str | None
    locale: str
    stories_auto_publish: bool
    shop: str


class PageRow(StoryRow, frozen=True):
    advocate_name: str | None
    program_rewards: dict[str, Any]
    brand_colour: str
    locale: str
    program_status: str
    program_starts_at: datetime
    program_ends_at: datetime | None
    shop: str


class StatsRow(msgspec.Struct, frozen=True):
    views: int
    shares: dict[str, int]
    clicks: int
    signups: int
    orders: int
    referred_revenue: dict[str, int]


class PublicProgramRow(msgspec.Struct, frozen=True):
    id: int
    merchant_id: int
    locale: str
    time_zone: str
    month: str
    month_start: datetime


async def reward(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> RewardRow | None:
    return one(RewardRow, await conn.fetchrow(REWARD, merchant_id, reward_id))


async def insert(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    advocate_id: int,
    reward_id: int,
    slug: str,
    body: str,
    display_name: str | None,
    status: str,
) -> StoryRow | None:
    """The new story, or None when the reward already has one (or, rarely, the slug is
    taken, in this merchant or another): ON CONFLICT DO NOTHING, and a savepoint that undoes
    the story when its slug is another merchant's, so the transaction stays usable."""
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                INSERT,
                merchant_id, program_id, advocate_id, reward_id, slug, body, display_name, status,
            )  # fmt: skip
            if row is None:
                return None
            if not await conn.fetchval(CLAIM_SLUG, slug, merchant_id, row["id"]):
                raise _SlugTaken
            return one(StoryRow, row)
    except _SlugTaken:
        return None


class _SlugTaken(Exception):
    """Another merchant's story has the slug: roll this one back (the caller draws again)."""


async def get(
    conn: asyncpg.Connection, merchant_id: int, story_id: int, *, for_update: bool = False
) -> StoryRow | None:
    query = GET_FOR_UPDATE if for_update else GET
    return one(StoryRow, await conn.fetchrow(query, merchant_id, story_id))


async def by_reward(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> StoryRow | None:
    return one(StoryRow, await conn.fetchrow(BY_REWARD, merchant_id, reward_id))


async def update(
    conn: asyncpg.Connection,
    merchant_id: int,
    story_id: int,
    *,
    status: str,
    body: str,
    display_name: str | None,
) -> StoryRow:
    row = await conn.fetchrow(UPDATE, merchant_id, story_id, status, body, display_name)
    return StoryRow(**row)


async def advocate_name(conn: asyncpg.Connection, merchant_id: int, story_id: int) -> str | None:
    return await conn.fetchval(ADVOCATE_NAME, merchant_id, story_id)


async def list_page(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    program_id: int | None,
    advocate_id: int | None,
    status: str | None,
    cursor: Cursor,
) -> list[StoryRow]:
    rows = await conn.fetch(
        LIST,
        merchant_id,
        program_id,
        *cursor.params,
        advocate_id,
        status,
    )
    return many(StoryRow, rows)


async def page(conn: asyncpg.Connection, slug: str) -> PageRow | None:
    """Two statements, each on one merchant's shard when distributed: whose slug, then the page."""
    merchant_id = await conn.fetchval(SLUG_OWNER, slug)
    if merchant_id is None:
        return None
    return one(PageRow, await conn.fetchrow(PAGE, merchant_id, slug))


async def page_by_id(conn: asyncpg.Connection, merchant_id: int, story_id: int) -> PageRow | None:
    return one(PageRow, await conn.fetchrow(PAGE_BY_ID, merchant_id, story_id))


async def status_counts(conn: asyncpg.Connection, merchant_id: int) -> dict[str, int]:
    return {r["status"]: r["n"] for r in await conn.fetch(STATUS_COUNTS, merchant_id)}


async def hide_for_rewards(
    conn: asyncpg.Connection, merchant_id: int, reward_ids: list[int]
) -> None:
    await conn.execute(HIDE_FOR_REWARDS, merchant_id, reward_ids)


async def record_view(conn: asyncpg.Connection, merchant_id: int, story_id: int) -> None:
    await conn.execute(INSERT_VIEW, merchant_id, story_id)


async def record_share(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    advocate_id: int,
    story_id: int | None,
    channel: str,
) -> None:
    await conn.execute(INSERT_SHARE, merchant_id, program_id, advocate_id, story_id, channel)


async def stats(
    conn: asyncpg.Connection, merchant_id: int, story_id: int, public_id: str
) -> StatsRow:
    return StatsRow(**await conn.fetchrow(STATS, merchant_id, story_id, public_id))


async def public_program(conn: asyncpg.Connection, program_id: int) -> PublicProgramRow | None:
    return one(PublicProgramRow, await conn.fetchrow(PUBLIC_PROGRAM, program_id))


async def friends_since(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, since: datetime
) -> int:
    return await conn.fetchval(FRIENDS_SINCE, merchant_id, program_id, since)


async def latest_published(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, limit: int
) -> list[StoryRow]:
    return many(StoryRow, await conn.fetch(LATEST_PUBLISHED, merchant_id, program_id, limit))


class CustomerShareRow(msgspec.Struct, frozen=True):
    advocate_id: int
    story_id: int | None
    channel: str
    shared_at: datetime


class ErasedStoryRow(StoryRow, frozen=True):
    status_before: str


async def customer_stories(
    conn: asyncpg.Connection, merchant_id: int, advocate_ids: list[int]
) -> list[StoryRow]:
    return many(StoryRow, await conn.fetch(CUSTOMER_STORIES, merchant_id, advocate_ids))


async def customer_shares(
    conn: asyncpg.Connection, merchant_id: int, advocate_ids: list[int]
) -> list[CustomerShareRow]:
    return many(CustomerShareRow, await conn.fetch(CUSTOMER_SHARES, merchant_id, advocate_ids))


async def erase_stories(
    conn: asyncpg.Connection, merchant_id: int, advocate_ids: list[int], body: str
) -> list[ErasedStoryRow]:
    return many(ErasedStoryRow, await conn.fetch(ERASE_STORIES, merchant_id, advocate_ids, body))
