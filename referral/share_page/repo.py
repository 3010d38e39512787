"""SQL for the advocate's share page. The advocate comes from a verified share token, so
the lookup is by advocate id and returns its merchant; everything after is scoped by it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from referral.lib.db import many, one

ADVOCATE = """
SELECT a.id, a.merchant_id, a.program_id, a.customer_id, a.name, a.contact_preference,
       p.rewards AS program_rewards, p.brand_colour, p.locale, p.stories_auto_publish,
       m.name AS shop, m.time_zone, p.status AS program_status, p.starts_at, p.ends_at
FROM advocates a
JOIN programs p ON p.merchant_id = a.merchant_id AND p.id = a.program_id
JOIN merchants m ON m.id = a.merchant_id
WHERE a.id = $1 AND a.erased_at IS NULL
"""

# The advocate's own friends: status and date only; the page masks who they are. Each is
# numbered in the order they came (first friend = 1), so a number never changes.
REFERRALS = """
SELECT friend_email_normalised, status, created_at, number FROM (
    SELECT id, friend_email_normalised, status, created_at,
           row_number() OVER (ORDER BY created_at, id) AS number
    FROM referrals
    WHERE merchant_id = $1 AND advocate_id = $2
) friends
ORDER BY created_at DESC, id DESC
LIMIT 50
"""

# The advocate's own rewards (referral rewards and milestone bonuses), what each was worth
# when earned, the friend it came from (numbered as above) and its story.
REWARDS = """
WITH friends AS (
    SELECT id, friend_email_normalised, row_number() OVER (ORDER BY created_at, id) AS number
    FROM referrals
    WHERE merchant_id = $1 AND advocate_id = $2
)
SELECT r.id, r.kind, r.amount, r.original_amount, r.currency, r.status, r.hold_until,
       r.milestone, r.earned_at, r.reversed_at, r.created_at, s.id AS story_id,
       f.friend_email_normalised, f.number AS friend_number
FROM rewards r
LEFT JOIN stories s ON s.merchant_id = r.merchant_id AND s.reward_id = r.id
LEFT JOIN friends f ON f.id = r.referral_id
WHERE r.merchant_id = $1 AND r.advocate_id = $2 AND r.side = 'advocate'
  AND (r.referral_id IS NOT NULL OR r.milestone IS NOT NULL)  -- points buys show with points
ORDER BY r.created_at DESC, r.id DESC
LIMIT 50
"""

STORIES = """
SELECT id, slug, body, status, created_at FROM stories
WHERE merchant_id = $1 AND advocate_id = $2
ORDER BY created_at DESC, id DESC
LIMIT 50
"""


class AdvocateRow(msgspec.Struct, frozen=True):
    id: int
    merchant_id: int
    program_id: int
    customer_id: str
    name: str | None
    contact_preference: str
    program_rewards: dict[str, Any]
    brand_colour: str
    locale: str
    stories_auto_publish: bool
    shop: str
    time_zone: str
    program_status: str
    starts_at: datetime
    ends_at: datetime | None


class ReferralRow(msgspec.Struct, frozen=True):
    friend_email_normalised: str | None
    status: str
    created_at: datetime
    number: int


class RewardRow(msgspec.Struct, frozen=True):
    id: int
    kind: str
    amount: int
    original_amount: int
    currency: str | None
    status: str
    hold_until: datetime
    milestone: int | None
    earned_at: datetime
    reversed_at: datetime | None
    created_at: datetime
    story_id: int | None
    friend_email_normalised: str | None
    friend_number: int | None


class StoryRow(msgspec.Struct, frozen=True):
    id: int
    slug: str
    body: str
    status: str
    created_at: datetime


async def advocate(conn: asyncpg.Connection, advocate_id: int) -> AdvocateRow | None:
    return one(AdvocateRow, await conn.fetchrow(ADVOCATE, advocate_id))


async def referrals(
    conn: asyncpg.Connection, merchant_id: int, advocate_id: int
) -> list[ReferralRow]:
    return many(ReferralRow, await conn.fetch(REFERRALS, merchant_id, advocate_id))


async def rewards(conn: asyncpg.Connection, merchant_id: int, advocate_id: int) -> list[RewardRow]:
    return many(RewardRow, await conn.fetch(REWARDS, merchant_id, advocate_id))


async def stories(conn: asyncpg.Connection, merchant_id: int, advocate_id: int) -> list[StoryRow]:
    return many(StoryRow, await conn.fetch(STORIES, merchant_id, advocate_id))
