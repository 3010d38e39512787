"""SQL for analytics: the stream facts, the rollup worker (marked entities in, their facts
recomputed, the deltas folded into the rollups), the rebuild, and the reports' reads.

Every statement names its merchant, except the worker's taking of work, which like the
release worker takes whatever is due across merchants (`FOR UPDATE SKIP LOCKED`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import asyncpg
import msgspec

from referral.analytics.rules import (
    AdvocateIn,
    Fact,
    OrderIn,
    ReferralIn,
    ReferralOf,
    RewardIn,
)
from referral.lib.db import many

DELTA_COLUMNS = (
    "merchant_id",
    "program_id",
    "day",
    "metric",
    "dim",
    "currency",
    "story_id",
    "advocate_id",
    "value",
)

# --- stream facts ------------------------------------------------------------------------

# A flushed batch of clicks: raw clicks and bot hits per (program, day, channel, story,
# advocate), the unique clicks the batch brought (given by the click writer: the index of each
# new unique key's first click, and its day), and each human visitor once per program and day
# for the visitors sketch.
ADD_CLICKS = """
WITH c AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[],
                         $6::timestamptz[], $7::boolean[], $8::text[])
        WITH ORDINALITY AS c(merchant_id, program_id, advocate_id, channel, story_id, clicked_at,
                             is_bot, visitor_id, idx)
), zones AS MATERIALIZED (
    SELECT m.id, click_time_zone(m.time_zone) AS zone FROM merchants m
    WHERE m.id IN (SELECT DISTINCT merchant_id FROM c)
), d AS (
    SELECT c.*, (c.clicked_at AT TIME ZONE z.zone)::date AS day
    FROM c JOIN zones z ON z.id = c.merchant_id
), firsts AS (
    SELECT * FROM unnest($9::bigint[]) AS f(idx)
)
INSERT INTO analytics_deltas
    (merchant_id, program_id, day, metric, dim, story_id, advocate_id, value, member)
SELECT merchant_id, program_id, day, CASE WHEN is_bot THEN 'bot_hits' ELSE 'clicks' END,
       channel, coalesce(story_id, 0), advocate_id, count(*), NULL::bigint
FROM d GROUP BY 1, 2, 3, 4, 5, 6, 7
UNION ALL
SELECT d.merchant_id, d.program_id, d.day, 'unique_clicks', d.channel, coalesce(d.story_id, 0),
       d.advocate_id, count(*), NULL
FROM d JOIN firsts f ON f.idx = d.idx GROUP BY 1, 2, 3, 4, 5, 6, 7
UNION ALL
SELECT DISTINCT merchant_id, program_id, day, 'visitors', '', 0::bigint, 0::bigint, 0::bigint,
       hashtextextended(visitor_id, 0)
FROM d WHERE NOT is_bot
"""

# Stream facts at `at` (the merchant's day of it; NULL: the transaction's time, as the raw
# row's default); a distinct member is hashed as the rebuild hashes it.
ADD_EVENT = """
INSERT INTO analytics_deltas
    (merchant_id, program_id, day, metric, dim, story_id, advocate_id, value, member)
SELECT $1, $2,
       (coalesce($3::timestamptz, now()) AT TIME ZONE click_time_zone(m.time_zone))::date, t.metric,
       $4, $5, $6, t.value, hashtextextended(t.member, 0)
FROM merchants m,
     unnest($7::text[], $8::bigint[], $9::text[]) AS t(metric, value, member)
WHERE m.id = $1
"""

INSERT_SHARE_PAGE_VIEW = """
INSERT INTO share_page_views (merchant_id, program_id, advocate_id) VALUES ($1, $2, $3)
"""

# The advocate's first share: the earliest of a share button and the first click on their
# link. Updated only when it moves earlier, which is rare, so an order locking the advocate
# row is seldom waited for.
SET_FIRST_SHARED = """
UPDATE advocates a SET first_shared_at = t.at
FROM (SELECT advocate_id, min(coalesce(at, now())) AS at
      FROM unnest($2::bigint[], $3::timestamptz[]) AS u(advocate_id, at) GROUP BY 1) t
WHERE a.merchant_id = $1 AND a.id = t.advocate_id
  AND (a.first_shared_at IS NULL OR a.first_shared_at > t.at)
"""

MERCHANT_ZONES = "SELECT id, time_zone FROM merchants WHERE id = ANY($1::bigint[])"


async def add_clicks(
    conn: asyncpg.Connection, columns: tuple[list, ...], firsts: list[int]
) -> None:
    await conn.execute(ADD_CLICKS, *columns, firsts)


async def add_event(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    program_id: int,
    at: datetime | None,
    dim: str,
    story_id: int,
    advocate_id: int,
    values: Sequence[tuple[str, int, str | None]],
) -> None:
    await conn.execute(
        ADD_EVENT,
        merchant_id,
        program_id,
        at,
        dim,
        story_id,
        advocate_id,
        [v[0] for v in values],
        [v[1] for v in values],
        [v[2] for v in values],
    )


async def insert_share_page_view(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, advocate_id: int
) -> None:
    await conn.execute(INSERT_SHARE_PAGE_VIEW, merchant_id, program_id, advocate_id)


async def set_first_shared(
    conn: asyncpg.Connection,
    merchant_id: int,
    advocate_ids: list[int],
    times: list[datetime | None],
) -> None:
    await conn.execute(SET_FIRST_SHARED, merchant_id, advocate_ids, times)


async def merchant_zones(conn: asyncpg.Connection, merchant_ids: list[int]) -> dict[int, str]:
    return {r["id"]: r["time_zone"] for r in await conn.fetch(MERCHANT_ZONES, merchant_ids)}


# --- the worker: marked entities -------------------------------------------------------

# The worker's batch of marks: picked first (oldest first, skipping another worker's), then
# deleted by key, so no plan can rescan the pick per row (a plan made while the table was
# small once did, for minutes), and without nested loops (see fold()).
PICK_DIRTY = """
SELECT merchant_id, entity, key FROM analytics_dirty
ORDER BY marked_at LIMIT $1 FOR UPDATE SKIP LOCKED
"""
DELETE_DIRTY = """
DELETE FROM analytics_dirty d
USING unnest($1::bigint[], $2::text[], $3::text[]) AS t(merchant_id, entity, key)
WHERE d.merchant_id = t.merchant_id AND d.entity = t.entity AND d.key = t.key
"""

# What else a marked referral's change counts in: its orders, its advocate (a friend turned
# advocate), its friend's cohort and, when the friend is an advocate too, theirs. $2 ids.
REFERRALS_REACH = """
SELECT 'order' AS entity, o.id::text AS key FROM orders o
WHERE o.merchant_id = $1 AND o.referral_id = ANY($2::bigint[])
UNION ALL
SELECT 'advocate', r.advocate_id::text FROM referrals r
WHERE r.merchant_id = $1 AND r.id = ANY($2::bigint[])
UNION ALL
SELECT 'customer', analytics_customer_key(r.friend_customer_id, r.friend_email_normalised)
FROM referrals r
WHERE r.merchant_id = $1 AND r.id = ANY($2::bigint[])
  AND (r.friend_customer_id IS NOT NULL OR r.friend_email_normalised IS NOT NULL)
UNION ALL
SELECT 'advocate', a.id::text FROM referrals r
JOIN advocates a ON a.merchant_id = r.merchant_id AND a.customer_id = r.friend_customer_id
WHERE r.merchant_id = $1 AND r.id = ANY($2::bigint[])
"""

# A marked order's change counts in its customer's cohort. $2 ids.
ORDERS_REACH = """
SELECT 'customer' AS entity, analytics_customer_key(o.customer_id, o.email_normalised) AS key
FROM orders o
WHERE o.merchant_id = $1 AND o.id = ANY($2::bigint[])
  AND (o.customer_id IS NOT NULL OR o.email_normalised IS NOT NULL)
"""

# The customers who ordered, a distinct count per merchant day (never taken back; adding a
# member twice changes no sketch, so an order booked again may add it again). $2 ids.
ADD_ORDERING_CUSTOMERS = """
INSERT INTO analytics_deltas (merchant_id, program_id, day, metric, member)
SELECT o.merchant_id, 0, (o.occurred_at AT TIME ZONE click_time_zone(m.time_zone))::date,
       'ordering_customers', hashtextextended(analytics_customer_key(o.customer_id,
                                                                     o.email_normalised), 0)
FROM orders o JOIN merchants m ON m.id = o.merchant_id
WHERE o.merchant_id = $1 AND o.id = ANY($2::bigint[])
  AND (o.customer_id IS NOT NULL OR o.email_normalised IS NOT NULL)
"""

REFERRAL_OF = """
CASE WHEN r.id IS NULL THEN NULL ELSE jsonb_build_object(
    'id', r.id, 'program_id', r.program_id, 'advocate_id', r.advocate_id, 'status', r.status,
    'first_order_pk', r.first_order_pk, 'attribution', r.attribution) END AS referral
"""

ORDERS = f"""
SELECT o.id, o.occurred_at, o.currency, o.total, o.refunded, o.status, {REFERRAL_OF}
FROM orders o LEFT JOIN referrals r ON r.merchant_id = o.merchant_id AND r.id = o.referral_id
WHERE o.merchant_id = $1 AND o.id = ANY($2::bigint[])
"""

CUSTOMER_ORDERS = f"""
WITH k AS (SELECT unnest($2::text[]) AS key)
SELECT k.key, o.id, o.occurred_at, o.currency, o.total, o.refunded, o.status, {REFERRAL_OF}
FROM k
JOIN orders o ON o.merchant_id = $1 AND (
        (left(k.key, 2) = 'c:' AND o.customer_id = substr(k.key, 3))
     OR (left(k.key, 2) = 'e:' AND o.customer_id IS NULL AND o.email_normalised = substr(k.key, 3)))
LEFT JOIN referrals r ON r.merchant_id = o.merchant_id AND r.id = o.referral_id
"""

REFERRALS = """
SELECT r.id, r.program_id, r.advocate_id, r.status, r.rejection_reason, r.attribution,
       r.decision, r.signed_up_at, r.created_at, r.first_order_pk,
       o.occurred_at AS first_order_at, a.first_shared_at AS advocate_first_shared_at
FROM referrals r
JOIN advocates a ON a.merchant_id = r.merchant_id AND a.id = r.advocate_id
LEFT JOIN orders o ON o.merchant_id = r.merchant_id AND o.id = r.first_order_pk
WHERE r.merchant_id = $1 AND r.id = ANY($2::bigint[])
"""

REWARDS = """
SELECT w.id, w.program_id, w.advocate_id, w.side, w.kind, w.currency, w.amount,
       w.original_amount, w.status, w.earned_at, r.status AS referral_status,
       r.rejection_reason AS referral_rejection_reason, r.attribution
FROM rewards w
LEFT JOIN referrals r ON r.merchant_id = w.merchant_id AND r.id = w.referral_id
WHERE w.merchant_id = $1 AND w.id = ANY($2::bigint[])
"""

ADVOCATES = """
SELECT a.id, a.program_id,
       EXISTS (SELECT 1 FROM referrals f
               WHERE f.merchant_id = a.merchant_id AND f.friend_customer_id = a.customer_id
                 AND f.status <> 'rejected' AND f.first_order_pk IS NOT NULL) AS was_referred,
       (SELECT min(o.occurred_at) FROM referrals r
        JOIN orders o ON o.merchant_id = r.merchant_id AND o.id = r.first_order_pk
        WHERE r.merchant_id = a.merchant_id AND r.advocate_id = a.id
          AND r.status <> 'rejected') AS first_conversion_at
FROM advocates a
WHERE a.merchant_id = $1 AND a.id = ANY($2::bigint[])
"""

# The entities a worker is about to book, locked until its transaction ends: the same
# customer or advocate can be reached from marks two workers took. In one global order
# (the subquery's), so workers never deadlock.
LOCK_ENTITIES = """
SELECT count(pg_advisory_xact_lock(h)) FROM (
    SELECT DISTINCT hashtextextended($1::bigint || ':' || e || ':' || k, 0) AS h
    FROM unnest($2::text[], $3::text[]) AS t(e, k)
    ORDER BY h
) s
"""

ENTITY_FACTS = """
SELECT key, program_id, day, metric, dim, currency, story_id, advocate_id, value
FROM analytics_entity_facts
WHERE merchant_id = $1 AND entity = $2 AND key = ANY($3::text[])
"""

DELETE_ENTITY_FACTS = """
DELETE FROM analytics_entity_facts
WHERE merchant_id = $1 AND entity = $2 AND key = ANY($3::text[])
"""

ENTITY_FACT_COLUMNS = ("merchant_id", "entity", "key", *DELTA_COLUMNS[1:])


def _referral_of(row: Any) -> ReferralOf | None:
    ref = row["referral"]
    return None if ref is None else msgspec.convert(ref, ReferralOf)


def _order(row: Any) -> OrderIn:
    return OrderIn(
        id=row["id"],
        occurred_at=row["occurred_at"],
        currency=row["currency"],
        total=row["total"],
        refunded=row["refunded"],
        status=row["status"],
        referral=_referral_of(row),
    )


async def take_dirty(conn: asyncpg.Connection, limit: int) -> list[tuple[int, str, str]]:
    """Up to `limit` marks, removed in the caller's transaction (back if it fails)."""
    marks = [tuple(r) for r in await conn.fetch(PICK_DIRTY, limit)]
    if marks:
        await conn.execute(NO_NESTED_LOOPS)  # see fold()
        await conn.execute(DELETE_DIRTY, *(list(column) for column in zip(*marks, strict=True)))
        await conn.execute(NESTED_LOOPS_AGAIN)
    return marks


async def reach(
    conn: asyncpg.Connection, merchant_id: int, entity: str, ids: list[int]
) -> list[tuple[str, str]]:
    """The (entity, key) a change of these orders or referrals also counts in."""
    query = {"order": ORDERS_REACH, "referral": REFERRALS_REACH}[entity]
    return [(r["entity"], r["key"]) for r in await conn.fetch(query, merchant_id, ids)]


async def add_ordering_customers(
    conn: asyncpg.Connection, merchant_id: int, ids: list[int]
) -> None:
    await conn.execute(ADD_ORDERING_CUSTOMERS, merchant_id, ids)


async def orders(conn: asyncpg.Connection, merchant_id: int, ids: list[int]) -> list[OrderIn]:
    return [_order(r) for r in await conn.fetch(ORDERS, merchant_id, ids)]


async def customer_orders(
    conn: asyncpg.Connection, merchant_id: int, keys: list[str]
) -> dict[str, list[OrderIn]]:
    found: dict[str, list[OrderIn]] = {key: [] for key in keys}
    for r in await conn.fetch(CUSTOMER_ORDERS, merchant_id, keys):
        found[r["key"]].append(_order(r))
    return found


async def referrals(conn: asyncpg.Connection, merchant_id: int, ids: list[int]) -> list[ReferralIn]:
    return many(ReferralIn, await conn.fetch(REFERRALS, merchant_id, ids))


async def rewards(conn: asyncpg.Connection, merchant_id: int, ids: list[int]) -> list[RewardIn]:
    return many(RewardIn, await conn.fetch(REWARDS, merchant_id, ids))


async def advocates(conn: asyncpg.Connection, merchant_id: int, ids: list[int]) -> list[AdvocateIn]:
    return many(AdvocateIn, await conn.fetch(ADVOCATES, merchant_id, ids))


async def lock_entities(
    conn: asyncpg.Connection, merchant_id: int, entities: list[tuple[str, str]]
) -> None:
    await conn.fetchval(
        LOCK_ENTITIES, merchant_id, [e for e, _ in entities], [k for _, k in entities]
    )


async def entity_facts(
    conn: asyncpg.Connection, merchant_id: int, entity: str, keys: list[str]
) -> list[tuple[str, Fact]]:
    """The facts booked for these entities (the worker holds their marks, so no other
    worker books them meanwhile)."""
    return [
        (r["key"], Fact(*tuple(r)[1:]))
        for r in await conn.fetch(ENTITY_FACTS, merchant_id, entity, keys)
    ]


async def delete_entity_facts(
    conn: asyncpg.Connection, merchant_id: int, entity: str, keys: list[str]
) -> None:
    if keys:
        await conn.execute(DELETE_ENTITY_FACTS, merchant_id, entity, keys)


async def insert_entity_facts(
    conn: asyncpg.Connection, merchant_id: int, entity: str, facts: list[tuple[str, Fact]]
) -> None:
    if facts:
        await conn.copy_records_to_table(
            "analytics_entity_facts",
            records=[(merchant_id, entity, key, *fact) for key, fact in facts],
            columns=ENTITY_FACT_COLUMNS,
        )


async def insert_deltas(conn: asyncpg.Connection, merchant_id: int, facts: list[Fact]) -> None:
    if facts:
        await conn.copy_records_to_table(
            "analytics_deltas",
            records=[(merchant_id, *fact) for fact in facts],
            columns=DELTA_COLUMNS,
        )


# --- the worker: folding deltas into the rollups -------------------------------------------

ADVOCATE_METRICS_SQL = (
    "('clicks', 'unique_clicks', 'shares', 'share_page_views', 'signups', 'first_orders', "
    "'first_order_revenue', 'referred_orders', 'referred_revenue', 'reward_cost')"
)

# One statement: take a batch of deltas, add them to every rollup (in primary key order, so
# two workers never deadlock), and hand back the distinct members for the sketches.
# Around one statement of the worker's transaction.
NO_NESTED_LOOPS = "SET LOCAL enable_nestloop = off"
NESTED_LOOPS_AGAIN = "RESET enable_nestloop"

PICK_DELTAS = """
SELECT merchant_id, id FROM analytics_deltas ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
"""

# $1, $2: the picked deltas' keys (see PICK_DIRTY for why they are picked first).
FOLD = f"""
WITH moved AS (
    DELETE FROM analytics_deltas d
    USING unnest($1::bigint[], $2::bigint[]) AS t(merchant_id, id)
    WHERE d.merchant_id = t.merchant_id AND d.id = t.id
    RETURNING d.*
), counts AS (
    SELECT * FROM moved WHERE member IS NULL
), daily AS (
    INSERT INTO analytics_daily AS r (merchant_id, program_id, day, metric, dim, currency, value)
    SELECT merchant_id, program_id, day, metric, dim, currency, sum(value)
    FROM counts GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (merchant_id, program_id, day, metric, dim, currency)
    DO UPDATE SET value = r.value + excluded.value
), totals AS (
    INSERT INTO analytics_daily_totals AS r (merchant_id, metric, day, program_id, currency, value)
    SELECT merchant_id, metric, day, program_id, currency, sum(value)
    FROM counts GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (merchant_id, metric, day, program_id, currency)
    DO UPDATE SET value = r.value + excluded.value
), months AS (
    INSERT INTO analytics_monthly AS r
        (merchant_id, metric, month, program_id, dim, currency, value)
    SELECT merchant_id, metric, date_trunc('month', day)::date, program_id, dim, currency,
           sum(value)
    FROM counts GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (merchant_id, metric, month, program_id, dim, currency)
    DO UPDATE SET value = r.value + excluded.value
), stories AS (
    INSERT INTO analytics_story_daily AS r
        (merchant_id, story_id, day, metric, dim, currency, program_id, value)
    SELECT merchant_id, story_id, day, metric, dim, currency, min(program_id), sum(value)
    FROM counts WHERE story_id <> 0 GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (merchant_id, story_id, day, metric, dim, currency)
    DO UPDATE SET value = r.value + excluded.value
), story_totals AS (
    INSERT INTO analytics_story_totals AS r (merchant_id, metric, day, program_id, currency, value)
    SELECT merchant_id, metric, day, program_id, currency, sum(value)
    FROM counts WHERE story_id <> 0 GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (merchant_id, metric, day, program_id, currency)
    DO UPDATE SET value = r.value + excluded.value
), story_months AS (
    INSERT INTO analytics_story_monthly AS r
        (merchant_id, metric, month, story_id, currency, program_id, value)
    SELECT merchant_id, metric, date_trunc('month', day)::date, story_id, currency,
           min(program_id), sum(value)
    FROM counts WHERE story_id <> 0 GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (merchant_id, metric, month, story_id, currency)
    DO UPDATE SET value = r.value + excluded.value
), advocate_days AS (
    INSERT INTO analytics_advocate_daily AS r
        (merchant_id, advocate_id, day, metric, currency, program_id, value)
    SELECT merchant_id, advocate_id, day, metric, currency, min(program_id), sum(value)
    FROM counts WHERE advocate_id <> 0 AND metric IN {ADVOCATE_METRICS_SQL}
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (merchant_id, advocate_id, day, metric, currency)
    DO UPDATE SET value = r.value + excluded.value
), advocate_months AS (
    INSERT INTO analytics_advocate_monthly AS r
        (merchant_id, metric, month, advocate_id, currency, program_id, value)
    SELECT merchant_id, metric, date_trunc('month', day)::date, advocate_id, currency,
           min(program_id), sum(value)
    FROM counts WHERE advocate_id <> 0 AND metric IN {ADVOCATE_METRICS_SQL}
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (merchant_id, metric, month, advocate_id, currency)
    DO UPDATE SET value = r.value + excluded.value
)
SELECT merchant_id, program_id, day, metric, array_agg(DISTINCT member) AS members
FROM moved WHERE member IS NOT NULL GROUP BY 1, 2, 3, 4
"""

# The sketches of days (analytics_sketches) and of months (analytics_sketches_monthly),
# locked for an update in key order, and put back with their estimates.
SKETCH_TABLES = {
    "day": ("analytics_sketches", "day"),
    "month": ("analytics_sketches_monthly", "month"),
}
LOCK_SKETCHES = {
    kind: f"""
SELECT s.program_id, s.{column} AS at, s.metric, s.sketch
FROM {table} s
JOIN unnest($2::bigint[], $3::date[], $4::text[]) AS k(program_id, at, metric)
  ON s.program_id = k.program_id AND s.{column} = k.at AND s.metric = k.metric
WHERE s.merchant_id = $1
ORDER BY 1, 2, 3
FOR UPDATE OF s
"""
    for kind, (table, column) in SKETCH_TABLES.items()
}
PUT_SKETCHES = {
    kind: f"""
INSERT INTO {table} AS s (merchant_id, program_id, {column}, metric, sketch, estimate)
SELECT $1::bigint, * FROM unnest($2::bigint[], $3::date[], $4::text[], $5::bytea[], $6::float8[])
ORDER BY 1, 2, 3
ON CONFLICT (merchant_id, program_id, {column}, metric)
DO UPDATE SET sketch = excluded.sketch, estimate = excluded.estimate
"""
    for kind, (table, column) in SKETCH_TABLES.items()
}

# A merchant whose analytics are to be booked again, taken by one worker.
TAKE_RESTATE = """
DELETE FROM analytics_restate
WHERE merchant_id = (SELECT merchant_id FROM analytics_restate ORDER BY merchant_id LIMIT 1
                     FOR UPDATE SKIP LOCKED)
RETURNING merchant_id
"""

PENDING = """
SELECT (SELECT count(*) FROM analytics_dirty)
       + (SELECT count(*) FROM analytics_restate) AS dirty,
       (SELECT count(*) FROM analytics_deltas) AS deltas
"""


async def fold(conn: asyncpg.Connection, limit: int) -> list[tuple[int, int, date, str, list[int]]]:
    picked = await conn.fetch(PICK_DELTAS, limit)
    if not picked:
        return []
    merchants, ids = [r["merchant_id"] for r in picked], [r["id"] for r in picked]
    # A plan made from statistics of an emptier table joins the picked keys to every
    # delta in a nested loop (20,000 x 300,000 comparisons, for minutes): hash them.
    await conn.execute(NO_NESTED_LOOPS)
    members = [tuple(r) for r in await conn.fetch(FOLD, merchants, ids)]
    await conn.execute(NESTED_LOOPS_AGAIN)
    return members


async def lock_sketches(
    conn: asyncpg.Connection, merchant_id: int, kind: str, keys: list[tuple[int, date, str]]
) -> dict[tuple[int, date, str], bytes]:
    """The kept sketches of `keys` ((program, day or month, metric); `kind` day or month),
    locked until the transaction ends."""
    rows = await conn.fetch(
        LOCK_SKETCHES[kind],
        merchant_id,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    return {(r["program_id"], r["at"], r["metric"]): r["sketch"] for r in rows}


async def put_sketches(
    conn: asyncpg.Connection,
    merchant_id: int,
    kind: str,
    sketches: dict[tuple[int, date, str], tuple[bytes, float]],
) -> None:
    keys = list(sketches)
    await conn.execute(
        PUT_SKETCHES[kind],
        merchant_id,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        [sketches[k][0] for k in keys],
        [sketches[k][1] for k in keys],
    )


async def take_restate(conn: asyncpg.Connection) -> int | None:
    return await conn.fetchval(TAKE_RESTATE)


async def pending(conn: asyncpg.Connection | asyncpg.Pool) -> tuple[int, int]:
    row = await conn.fetchrow(PENDING)
    return row["dirty"], row["deltas"]


# --- a customer's erasure and the retention of raw clicks (referral/customers/) -----------

# The figures counted from raw clicks (what retention's horizon concerns).
CLICK_METRICS = "('clicks', 'bot_hits', 'unique_clicks', 'visitors')"

# An erased customer's analytics key (`c:` customer id, `e:` a guest's email) becomes their
# tombstone's: what was booked for them stays booked, under a key that names nobody, so a
# later change of one of their orders is booked against the same facts.
RENAME_CUSTOMER_FACTS = """
WITH renamed AS (
    UPDATE analytics_entity_facts f SET key = m.tombstone
    FROM unnest($2::text[], $3::text[]) AS m(key, tombstone)
    WHERE f.merchant_id = $1 AND f.entity = 'customer' AND f.key = m.key
    RETURNING 1
)
SELECT count(*) FROM renamed
"""

RENAME_CUSTOMER_MARKS = """
UPDATE analytics_dirty d SET key = m.tombstone
FROM unnest($2::text[], $3::text[]) AS m(key, tombstone)
WHERE d.merchant_id = $1 AND d.entity = 'customer' AND d.key = m.key
"""

# Whether the merchant's click figures up to the merchant's day of `$2` are not all in the
# rollups yet: click deltas of those days not folded, or a restatement waiting (it books
# from the raw clicks).
CLICKS_UNBOOKED = f"""
SELECT EXISTS (SELECT 1 FROM analytics_restate WHERE merchant_id = $1)
    OR EXISTS (SELECT 1 FROM analytics_deltas d JOIN merchants m ON m.id = d.merchant_id
               WHERE d.merchant_id = $1 AND d.metric IN {CLICK_METRICS}
                 AND d.day <= ($2::timestamptz AT TIME ZONE click_time_zone(m.time_zone))::date)
"""

# Raw clicks are kept from `$2` on, for every merchant (retention drops them for all).
KEEP_CLICKS_FROM = """
INSERT INTO analytics_click_horizon (merchant_id, kept_from)
SELECT id, $2 FROM merchants WHERE id = ANY($1::bigint[])
ON CONFLICT (merchant_id) DO UPDATE
SET kept_from = greatest(analytics_click_horizon.kept_from, excluded.kept_from)
"""


async def rename_customers(
    conn: asyncpg.Connection, merchant_id: int, keys: list[str], tombstones: list[str]
) -> int:
    renamed = await conn.fetchval(RENAME_CUSTOMER_FACTS, merchant_id, keys, tombstones)
    await conn.execute(RENAME_CUSTOMER_MARKS, merchant_id, keys, tombstones)
    return renamed


async def clicks_unbooked(conn: asyncpg.Connection, merchant_id: int, before: datetime) -> bool:
    return await conn.fetchval(CLICKS_UNBOOKED, merchant_id, before)


async def keep_clicks_from(
    conn: asyncpg.Connection, merchant_ids: list[int], kept_from: datetime
) -> None:
    await conn.execute(KEEP_CLICKS_FROM, merchant_ids, kept_from)


# --- rebuild ---------------------------------------------------------------------------------

# Every entity of one merchant, for the rebuild (in id order, streamed by the caller in pages).
ALL_KEYS = {
    entity: f"SELECT id::text FROM {table} WHERE merchant_id = $1 AND id > $2::bigint "
    f"ORDER BY {table}.id LIMIT $3"
    for entity, table in (
        ("order", "orders"),
        ("referral", "referrals"),
        ("reward", "rewards"),
        ("advocate", "advocates"),
    )
}

ALL_CUSTOMERS = """
SELECT DISTINCT analytics_customer_key(customer_id, email_normalised) AS key
FROM orders WHERE merchant_id = $1 AND (customer_id IS NOT NULL OR email_normalised IS NOT NULL)
"""

MERCHANTS = "SELECT id, time_zone FROM merchants ORDER BY id"

# Raw clicks of old months are dropped by retention once booked (referral/customers/): a
# rebuild or restatement recomputes click figures only from the first of the merchant's
# months whose days are all still raw (`$1`: the merchant), and keeps those before as they
# were booked. NULL: every raw click is kept.
CLICKS_REBOOKED_FROM = """
SELECT clicks_rebooked_from(h.kept_from, click_time_zone(m.time_zone))
FROM analytics_click_horizon h JOIN merchants m ON m.id = h.merchant_id
WHERE h.merchant_id = $1
"""

# The stream facts recomputed from their raw rows, by the same definitions as the writers:
# clicks and bot hits from `clicks`, unique clicks as each (visitor, advocate, day)'s first
# human click, visitors and ordering customers as distinct members, share page views,
# shares and story views.
REBUILT_STREAMS = f"""
WITH zone AS (SELECT click_time_zone(time_zone) AS z FROM merchants WHERE id = $1),
c AS (
    SELECT * FROM (
        SELECT c.*, (c.clicked_at AT TIME ZONE (SELECT z FROM zone))::date AS day
        FROM clicks c WHERE c.merchant_id = $1
    ) raw
    WHERE raw.day >= coalesce(({CLICKS_REBOOKED_FROM}), '-infinity')
), firsts AS (
    SELECT DISTINCT ON (advocate_id, day, visitor_id) *
    FROM c WHERE NOT is_bot ORDER BY advocate_id, day, visitor_id, clicked_at
)
SELECT program_id, day, CASE WHEN is_bot THEN 'bot_hits' ELSE 'clicks' END AS metric,
       channel AS dim, '' AS currency, coalesce(story_id, 0) AS story_id, advocate_id,
       count(*) AS value, NULL::bigint AS member
FROM c GROUP BY 1, 2, 3, 4, 6, 7
UNION ALL
SELECT program_id, day, 'unique_clicks', channel, '', coalesce(story_id, 0), advocate_id,
       count(*), NULL
FROM firsts GROUP BY 1, 2, 3, 4, 6, 7
UNION ALL
SELECT DISTINCT program_id, day, 'visitors', '', '', 0::bigint, 0::bigint, 0::bigint,
       hashtextextended(visitor_id, 0)
FROM c WHERE NOT is_bot
UNION ALL
SELECT DISTINCT 0::bigint, (o.occurred_at AT TIME ZONE (SELECT z FROM zone))::date,
       'ordering_customers', '', '', 0::bigint, 0::bigint, 0::bigint,
       hashtextextended(analytics_customer_key(o.customer_id, o.email_normalised), 0)
FROM orders o
WHERE o.merchant_id = $1 AND (o.customer_id IS NOT NULL OR o.email_normalised IS NOT NULL)
UNION ALL
SELECT program_id, (viewed_at AT TIME ZONE (SELECT z FROM zone))::date, 'share_page_views', '',
       '', 0, advocate_id, count(*), NULL
FROM share_page_views WHERE merchant_id = $1 GROUP BY 1, 2, 7
UNION ALL
SELECT program_id, (shared_at AT TIME ZONE (SELECT z FROM zone))::date, 'shares', channel, '',
       coalesce(story_id, 0), advocate_id, count(*), NULL
FROM shares WHERE merchant_id = $1 GROUP BY 1, 2, 4, 6, 7
UNION ALL
SELECT DISTINCT program_id, (shared_at AT TIME ZONE (SELECT z FROM zone))::date,
       'sharing_advocates', '', '', 0::bigint, 0::bigint, 0::bigint,
       hashtextextended(advocate_id::text, 0)
FROM shares WHERE merchant_id = $1
UNION ALL
SELECT s.program_id, (v.viewed_at AT TIME ZONE (SELECT z FROM zone))::date, 'story_views', '',
       '', s.id, s.advocate_id, count(*), NULL
FROM story_views v JOIN stories s ON s.merchant_id = v.merchant_id AND s.id = v.story_id
WHERE v.merchant_id = $1 GROUP BY 1, 2, 6, 7
"""

REBUILD_TABLES = """
CREATE TEMP TABLE rebuilt_facts (LIKE analytics_deltas INCLUDING DEFAULTS) ON COMMIT DROP;
ALTER TABLE rebuilt_facts DROP COLUMN id;
"""


_UNION_ALL = "\nUNION ALL\n"
# Rows of a rollup that a recomputation from raw clicks leaves as they are ($2 the date the
# merchant's raw clicks are complete from, NULL: always).
_BEFORE_HORIZON = (
    " AND NOT (metric IN " + CLICK_METRICS + " AND {time} < coalesce($2::date, '-infinity'))"
)


def _compare(rollup: str, want: str, columns: str, time: str) -> str:
    """The rows of `rollup` (kept) and `want` (recomputed) that the other lacks; click
    figures before the raw clicks' horizon ($2) are as booked, never recomputed."""
    kept = (
        f"SELECT {columns}, value FROM {rollup} WHERE merchant_id = $1 AND value <> 0"
        f"{_BEFORE_HORIZON.format(time=time)}"
    )
    wanted = f"SELECT * FROM {want} WHERE value <> 0"
    return (
        f"SELECT '{rollup}' AS rollup, count(*) AS differences FROM "
        f"(({wanted} EXCEPT {kept}) UNION ALL ({kept} EXCEPT {wanted})) d"
    )


_COMPARISONS = tuple(
    _compare(rollup, want, columns, columns.split(", ")[1])
    for rollup, want, columns in (
        ("analytics_daily", "want_daily", "program_id, day, metric, dim, currency"),
        ("analytics_daily_totals", "want_totals", "program_id, day, metric, currency"),
        ("analytics_monthly", "want_monthly", "program_id, month, metric, dim, currency"),
        ("analytics_story_daily", "want_story", "story_id, day, metric, dim, currency"),
        ("analytics_story_totals", "want_story_totals", "program_id, day, metric, currency"),
        ("analytics_story_monthly", "want_story_month", "story_id, month, metric, currency"),
        ("analytics_advocate_daily", "want_advocate", "advocate_id, day, metric, currency"),
        ("analytics_advocate_monthly", "want_month", "advocate_id, month, metric, currency"),
    )
)

# The rollups as recomputed (`{facts}`: the rebuild's temporary table) beside the ones kept:
# every row where the two differ.
DIFFERENCES = f"""
WITH counts AS (SELECT * FROM {{facts}} WHERE member IS NULL),
want_daily AS (
    SELECT program_id, day, metric, dim, currency, sum(value) AS value
    FROM counts GROUP BY 1, 2, 3, 4, 5
), want_totals AS (
    SELECT program_id, day, metric, currency, sum(value) AS value
    FROM counts GROUP BY 1, 2, 3, 4
), want_monthly AS (
    SELECT program_id, date_trunc('month', day)::date AS month, metric, dim, currency,
           sum(value) AS value
    FROM counts GROUP BY 1, 2, 3, 4, 5
), want_story AS (
    SELECT story_id, day, metric, dim, currency, sum(value) AS value
    FROM counts WHERE story_id <> 0 GROUP BY 1, 2, 3, 4, 5
), want_story_totals AS (
    SELECT program_id, day, metric, currency, sum(value) AS value
    FROM counts WHERE story_id <> 0 GROUP BY 1, 2, 3, 4
), want_story_month AS (
    SELECT story_id, date_trunc('month', day)::date AS month, metric, currency,
           sum(value) AS value
    FROM counts WHERE story_id <> 0 GROUP BY 1, 2, 3, 4
), want_advocate AS (
    SELECT advocate_id, day, metric, currency, sum(value) AS value
    FROM counts WHERE advocate_id <> 0 AND metric IN {ADVOCATE_METRICS_SQL} GROUP BY 1, 2, 3, 4
), want_month AS (
    SELECT advocate_id, date_trunc('month', day)::date AS month, metric, currency,
           sum(value) AS value
    FROM counts WHERE advocate_id <> 0 AND metric IN {ADVOCATE_METRICS_SQL} GROUP BY 1, 2, 3, 4
)
{_UNION_ALL.join(_COMPARISONS)}
"""

REBUILT_MEMBERS = """
SELECT program_id, day, metric, array_agg(DISTINCT member) AS members
FROM rebuilt_facts WHERE member IS NOT NULL GROUP BY 1, 2, 3
"""

KEPT_SKETCHES = {
    kind: f"SELECT program_id, {column} AS at, metric, sketch FROM {table} WHERE merchant_id = $1"
    + _BEFORE_HORIZON.format(time=column)
    for kind, (table, column) in SKETCH_TABLES.items()
}

# Applying a rebuild: the merchant's rollups and booked facts are emptied, every entity is
# marked and the streams' facts are queued, so the worker books everything again; click
# figures from before the raw clicks' horizon ($2) stay, as nothing could book them again.
CLEAR_ROLLUPS = [
    f"DELETE FROM {table} WHERE merchant_id = $1" + _BEFORE_HORIZON.format(time=time)
    for table, time in (
        ("analytics_daily", "day"),
        ("analytics_daily_totals", "day"),
        ("analytics_monthly", "month"),
        ("analytics_story_daily", "day"),
        ("analytics_story_totals", "day"),
        ("analytics_story_monthly", "month"),
        ("analytics_advocate_daily", "day"),
        ("analytics_advocate_monthly", "month"),
        ("analytics_sketches", "day"),
        ("analytics_sketches_monthly", "month"),
        ("analytics_entity_facts", "day"),
        ("analytics_deltas", "day"),
    )
]

STREAMS_INTO = (
    "INSERT INTO {table} (merchant_id, program_id, day, metric, dim, currency, "
    "story_id, advocate_id, value, member) SELECT $1::bigint, * FROM (" + REBUILT_STREAMS + ") s"
)
QUEUE_STREAMS = STREAMS_INTO.format(table="analytics_deltas")

MARK_ALL = """
INSERT INTO analytics_dirty (merchant_id, entity, key)
SELECT $1::bigint, 'order', id::text FROM orders WHERE merchant_id = $1
UNION ALL SELECT $1, 'referral', id::text FROM referrals WHERE merchant_id = $1
UNION ALL SELECT $1, 'reward', id::text FROM rewards WHERE merchant_id = $1
UNION ALL SELECT $1, 'advocate', id::text FROM advocates WHERE merchant_id = $1
UNION ALL SELECT DISTINCT $1, 'customer', analytics_customer_key(customer_id, email_normalised)
    FROM orders WHERE merchant_id = $1 AND (customer_id IS NOT NULL OR email_normalised IS NOT NULL)
ON CONFLICT DO NOTHING
"""


async def merchants(conn: asyncpg.Connection) -> list[tuple[int, str]]:
    return [tuple(r) for r in await conn.fetch(MERCHANTS)]


async def entity_keys(
    conn: asyncpg.Connection, merchant_id: int, entity: str, after: int, limit: int
) -> list[str]:
    return [r[0] for r in await conn.fetch(ALL_KEYS[entity], merchant_id, after, limit)]


async def all_customers(conn: asyncpg.Connection, merchant_id: int) -> list[str]:
    return [r[0] for r in await conn.fetch(ALL_CUSTOMERS, merchant_id)]


async def create_rebuilt(conn: asyncpg.Connection, merchant_id: int) -> None:
    """A temporary table of every fact recomputed for the merchant, streams included (entity
    facts are added by `add_rebuilt`)."""
    await conn.execute(REBUILD_TABLES)
    await conn.execute(STREAMS_INTO.format(table="rebuilt_facts"), merchant_id)


async def add_rebuilt(conn: asyncpg.Connection, merchant_id: int, facts: list[Fact]) -> None:
    if facts:
        await conn.copy_records_to_table(
            "rebuilt_facts",
            records=[(merchant_id, *fact) for fact in facts],
            columns=DELTA_COLUMNS,
        )


async def clicks_rebooked_from(conn: asyncpg.Connection, merchant_id: int) -> date | None:
    return await conn.fetchval(CLICKS_REBOOKED_FROM, merchant_id)


async def differences(conn: asyncpg.Connection, merchant_id: int) -> dict[str, int]:
    since = await clicks_rebooked_from(conn, merchant_id)
    rows = await conn.fetch(DIFFERENCES.format(facts="rebuilt_facts"), merchant_id, since)
    return {r["rollup"]: r["differences"] for r in rows}


async def rebuilt_members(conn: asyncpg.Connection) -> list[tuple[int, date, str, list[int]]]:
    return [tuple(r) for r in await conn.fetch(REBUILT_MEMBERS)]


async def kept_sketches(
    conn: asyncpg.Connection, merchant_id: int, kind: str
) -> dict[tuple[int, date, str], bytes]:
    since = await clicks_rebooked_from(conn, merchant_id)
    rows = await conn.fetch(KEPT_SKETCHES[kind], merchant_id, since)
    return {(r["program_id"], r["at"], r["metric"]): r["sketch"] for r in rows}


async def requeue(conn: asyncpg.Connection, merchant_id: int) -> None:
    """Empty the merchant's rollups and queue everything they count to be booked again."""
    since = await clicks_rebooked_from(conn, merchant_id)
    for statement in CLEAR_ROLLUPS:
        await conn.execute(statement, merchant_id, since)
    await conn.execute(QUEUE_STREAMS, merchant_id)
    await conn.execute(MARK_ALL, merchant_id)


# --- report reads ---
# The reports read the rollups only (never raw clicks or orders), plus the caller's merchant
# and the ids its filters name. A rollup read sums one table over a range, per scope (0: the
# merchant-wide facts of program 0; 1: the program asked for, or every program when none is;
# 2: the other programs), bucket (the day, or its week's Monday or month's first day, by $4)
# and metric; the metrics in $8 keep their dim in the series (a referral's outcome, a cycle
# time), and with $9 the sums by dim over the whole range follow, for a breakdown.

REPORT_SCOPE = """
SELECT m.time_zone,
       $2::bigint IS NULL OR EXISTS (SELECT 1 FROM programs p
                                     WHERE p.merchant_id = $1 AND p.id = $2) AS program_found,
       $3::bigint IS NULL OR EXISTS (SELECT 1 FROM stories s
                                     WHERE s.merchant_id = $1 AND s.id = $3) AS story_found,
       $4::bigint IS NULL OR EXISTS (SELECT 1 FROM advocates a
                                     WHERE a.merchant_id = $1 AND a.id = $4) AS advocate_found
FROM merchants m WHERE m.id = $1
"""


def _rollup_read(table: str, dim: str, only: str) -> str:
    return f"""
WITH f AS (
    SELECT CASE WHEN program_id = 0 THEN 0
                WHEN $6::bigint IS NULL OR program_id = $6 THEN 1 ELSE 2 END AS scope,
           CASE $4::text WHEN 'week' THEN date_trunc('week', day::timestamp)::date
                         WHEN 'month' THEN date_trunc('month', day::timestamp)::date
                         ELSE day END AS bucket,
           metric, {dim} AS dim, currency, value
    FROM {table}
    WHERE merchant_id = $1 AND day BETWEEN $2::date AND $3::date AND metric = ANY($5::text[])
      AND ($7::text IS NULL OR {dim} = $7) AND {only}
)
SELECT scope, bucket, metric, CASE WHEN metric = ANY($8::text[]) THEN dim ELSE '' END AS dim,
       currency, sum(value)::bigint AS value, false AS by_dim
FROM f GROUP BY 1, 2, 3, 4, 5
UNION ALL
SELECT scope, NULL::date, metric, dim, currency, sum(value)::bigint, true
FROM f WHERE $9::boolean GROUP BY 1, 3, 4, 5
"""


# $1 merchant, $2..$3 the days, $4 interval, $5 metrics, $6 program or NULL, $7 channel or
# NULL, $8 metrics whose series keep their dim, $9 whether to add the sums by dim.
REPORT_DAILY = _rollup_read("analytics_daily", "dim", "true")
# $10 one story, or NULL for every story.
REPORT_STORY_DAILY = _rollup_read(
    "analytics_story_daily", "dim", "($10::bigint IS NULL OR story_id = $10)"
)
# $10 the advocate (the per-advocate rollups have no dim).
REPORT_ADVOCATE_DAILY = _rollup_read("analytics_advocate_daily", "''::text", "advocate_id = $10")

# A series without dims, from the totals: per program, metric and currency, the days and
# their sums as two arrays (the report adds them into its scopes and buckets).
# $1 merchant, $2..$3 the days, $4 metrics.
REPORT_TOTALS = """
SELECT program_id, metric, currency, array_agg(day ORDER BY day) AS days,
       array_agg(value ORDER BY day) AS "values"
FROM analytics_daily_totals
WHERE merchant_id = $1 AND metric = ANY($4::text[]) AND day BETWEEN $2::date AND $3::date
GROUP BY 1, 2, 3
"""

# The same over every story's facts.
REPORT_STORY_TOTALS = REPORT_TOTALS.replace("analytics_daily_totals", "analytics_story_totals")

# The series of the metrics that keep their dim (a referral's outcome, a cycle time), day by
# day. $1 merchant, $2..$3 the days, $4 metrics.
REPORT_DIMS = """
SELECT program_id, metric, dim, currency, array_agg(day ORDER BY day) AS days,
       array_agg(value ORDER BY day) AS "values"
FROM analytics_daily
WHERE merchant_id = $1 AND metric = ANY($4::text[]) AND day BETWEEN $2::date AND $3::date
GROUP BY 1, 2, 3, 4
"""

# A breakdown: the sums by dim over the range, from whole months ($3..$4, their first days;
# NULL for none) and the days outside them ($5..$6, $7..$8; NULL for none). $1 merchant,
# $2 program or NULL, $9 metrics.
REPORT_BREAKDOWN = """
SELECT CASE WHEN program_id = 0 THEN 0
            WHEN $2::bigint IS NULL OR program_id = $2 THEN 1 ELSE 2 END AS scope,
       metric, dim, currency, sum(value)::bigint AS value
FROM (
    SELECT program_id, metric, dim, currency, value FROM analytics_monthly
    WHERE merchant_id = $1 AND metric = ANY($9::text[]) AND month BETWEEN $3::date AND $4::date
    UNION ALL
    SELECT program_id, metric, dim, currency, value FROM analytics_daily
    WHERE merchant_id = $1 AND metric = ANY($9::text[])
      AND (day BETWEEN $5::date AND $6::date OR day BETWEEN $7::date AND $8::date)
) p
GROUP BY 1, 2, 3, 4
"""

# Distinct counts: the sketches of one program ($5; 0: every program's together) and, for
# the metrics in $6, the merchant's (program 0: the shop's ordering customers). By day with
# their estimates and without the sketch (a series by day), by day with the sketch, or by
# month with both. $1 merchant, $2..$3 the days or months' first days, $4 metrics.
_SKETCHES_OF = """merchant_id = $1 AND metric = ANY($4::text[])
  AND program_id = CASE WHEN metric = ANY($6::text[]) THEN 0 ELSE $5::bigint END"""
REPORT_DAY_ESTIMATES = f"""
SELECT day AS at, metric, estimate, NULL::bytea AS sketch FROM analytics_sketches
WHERE {_SKETCHES_OF} AND day BETWEEN $2::date AND $3::date
"""
REPORT_DAY_SKETCHES = f"""
SELECT day AS at, metric, estimate, sketch FROM analytics_sketches
WHERE {_SKETCHES_OF} AND day BETWEEN $2::date AND $3::date
"""
REPORT_MONTH_SKETCHES = f"""
SELECT month AS at, metric, estimate, sketch FROM analytics_sketches_monthly
WHERE {_SKETCHES_OF} AND month BETWEEN $2::date AND $3::date
"""
REPORT_SKETCH_READS = {
    "day_estimates": REPORT_DAY_ESTIMATES,
    "days": REPORT_DAY_SKETCHES,
    "months": REPORT_MONTH_SKETCHES,
}


# A leaderboard's range as whole months ($5..$6, first days; NULL for none) from the monthly
# rollup and the days outside them ($7..$8 and $9..$10; NULL for none) from the daily one.
def _advocate_pieces(which: str) -> str:
    return f"""
    SELECT advocate_id, metric, currency, value FROM analytics_advocate_monthly
    WHERE merchant_id = $1 AND {which} AND month BETWEEN $5::date AND $6::date
      AND ($4::bigint IS NULL OR program_id = $4)
    UNION ALL
    SELECT advocate_id, metric, currency, value FROM analytics_advocate_daily
    WHERE merchant_id = $1 AND {which} AND day BETWEEN $7::date AND $8::date
      AND ($4::bigint IS NULL OR program_id = $4)
    UNION ALL
    SELECT advocate_id, metric, currency, value FROM analytics_advocate_daily
    WHERE merchant_id = $1 AND {which} AND day BETWEEN $9::date AND $10::date
      AND ($4::bigint IS NULL OR program_id = $4)"""


# $2 the metric ranked by, $3 its currency (NULL: any), $11 how many, $12 the metrics shown;
# each advocate labelled with their name (else the shop's customer id).
# Advocates with nothing of $2 in the range are not ranked; ties go to the older advocate.
_RANKED = "metric = $2::text AND ($3::text IS NULL OR currency = $3)"
_SHOWN = "metric = ANY($12::text[]) AND advocate_id = ANY(ARRAY(SELECT advocate_id FROM top))"
TOP_ADVOCATES = f"""
WITH top AS (
    SELECT advocate_id, sum(value)::bigint AS score
    FROM ({_advocate_pieces(_RANKED)}) p
    GROUP BY advocate_id HAVING sum(value) > 0
    ORDER BY score DESC, advocate_id LIMIT $11
)
SELECT t.advocate_id, coalesce(a.name, a.customer_id) AS label, t.score, p.metric, p.currency,
       sum(p.value)::bigint AS value
FROM top t
JOIN ({_advocate_pieces(_SHOWN)}) p
  ON p.advocate_id = t.advocate_id
LEFT JOIN advocates a ON a.merchant_id = $1 AND a.id = t.advocate_id
GROUP BY 1, 2, 3, 4, 5
ORDER BY t.score DESC, t.advocate_id, p.metric, p.currency
"""

# The range as whole months ($2..$3, first days; NULL for none) from the monthly story rollup
# and the days outside them ($4..$5, $6..$7; NULL for none) from the daily one; $8 program or
# NULL, $9 the figure ranked by, $10 how many. Stories with nothing of it in the range are
# not ranked; ties go to more views, then the older story. Labelled with the story's first
# 80 characters.
TOP_STORIES = """
WITH pieces AS (
    SELECT story_id, metric, value FROM analytics_story_monthly
    WHERE merchant_id = $1 AND month BETWEEN $2::date AND $3::date
      AND metric IN ('story_views', 'clicks', 'signups', 'first_orders')
      AND ($8::bigint IS NULL OR program_id = $8)
    UNION ALL
    SELECT story_id, metric, value FROM analytics_story_daily
    WHERE merchant_id = $1 AND day BETWEEN $4::date AND $5::date
      AND metric IN ('story_views', 'clicks', 'signups', 'first_orders')
      AND ($8::bigint IS NULL OR program_id = $8)
    UNION ALL
    SELECT story_id, metric, value FROM analytics_story_daily
    WHERE merchant_id = $1 AND day BETWEEN $6::date AND $7::date
      AND metric IN ('story_views', 'clicks', 'signups', 'first_orders')
      AND ($8::bigint IS NULL OR program_id = $8)
), s AS (
    SELECT story_id,
           coalesce(sum(value) FILTER (WHERE metric = 'story_views'), 0)::bigint AS story_views,
           coalesce(sum(value) FILTER (WHERE metric = 'clicks'), 0)::bigint AS clicks,
           coalesce(sum(value) FILTER (WHERE metric = 'signups'), 0)::bigint AS signups,
           coalesce(sum(value) FILTER (WHERE metric = 'first_orders'), 0)::bigint AS first_orders
    FROM pieces GROUP BY story_id
), scored AS (
    SELECT s.*, CASE $9::text WHEN 'clicks' THEN clicks::float8
                              WHEN 'signups' THEN signups::float8
                              WHEN 'first_orders' THEN first_orders::float8
                              ELSE first_orders::float8 / nullif(story_views, 0) END AS score
    FROM s
)
SELECT scored.story_id, left(st.body, 80) AS label, story_views, clicks, signups, first_orders
FROM scored LEFT JOIN stories st ON st.merchant_id = $1 AND st.id = scored.story_id
WHERE score > 0
ORDER BY score DESC, story_views DESC, scored.story_id
LIMIT $10
"""


class ReportScope(msgspec.Struct, frozen=True):
    time_zone: str
    program_found: bool
    story_found: bool
    advocate_found: bool


class RollupSum(msgspec.Struct, frozen=True):
    """A sum of one rollup: `bucket` None for the sums by dim over the whole range."""

    scope: int
    bucket: date | None
    metric: str
    dim: str
    currency: str
    value: int
    by_dim: bool


class DayColumn(msgspec.Struct, frozen=True):
    """One program's, metric's, dim's and currency's sums by day."""

    program_id: int
    metric: str
    currency: str
    days: list[date]
    values: list[int]
    dim: str = ""


class DimSum(msgspec.Struct, frozen=True):
    scope: int
    metric: str
    dim: str
    currency: str
    value: int


class SpanSketch(msgspec.Struct, frozen=True):
    """A day's or month's distinct count: its estimate, and its sketch when asked for."""

    at: date
    metric: str
    estimate: float
    sketch: bytes | None


class AdvocateFigure(msgspec.Struct, frozen=True):
    advocate_id: int
    label: str | None
    score: int
    metric: str
    currency: str
    value: int


class StoryFigures(msgspec.Struct, frozen=True):
    story_id: int
    label: str | None
    story_views: int
    clicks: int
    signups: int
    first_orders: int


class RollupRead(msgspec.Struct, frozen=True):
    """What one rollup read sums: the range, the bucket size, the metrics and filters."""

    start: date
    end: date
    interval: str
    metrics: list[str]
    program_id: int | None = None
    channel: str | None = None
    keep_dims: list[str] = []
    by_dim: bool = False


async def report_scope(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int | None,
    story_id: int | None,
    advocate_id: int | None,
) -> ReportScope | None:
    row = await conn.fetchrow(REPORT_SCOPE, merchant_id, program_id, story_id, advocate_id)
    return None if row is None else ReportScope(**row)


def _read_args(merchant_id: int, read: RollupRead) -> tuple:
    return (
        merchant_id,
        read.start,
        read.end,
        read.interval,
        read.metrics,
        read.program_id,
        read.channel,
        read.keep_dims,
        read.by_dim,
    )


async def daily_sums(
    conn: asyncpg.Connection, merchant_id: int, read: RollupRead
) -> list[RollupSum]:
    return many(RollupSum, await conn.fetch(REPORT_DAILY, *_read_args(merchant_id, read)))


async def day_columns(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    start: date,
    end: date,
    metrics: list[str],
    with_dims: bool = False,
    stories: bool = False,
) -> list[DayColumn]:
    """The sums by day of `metrics`: without their dims (from the totals, or every story's
    totals), or with them."""
    query = REPORT_DIMS if with_dims else REPORT_STORY_TOTALS if stories else REPORT_TOTALS
    return many(DayColumn, await conn.fetch(query, merchant_id, start, end, metrics))


async def breakdown_sums(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    program_id: int | None,
    months: tuple[date, date] | None,
    days: Sequence[tuple[date, date]],
    metrics: list[str],
) -> list[DimSum]:
    first, second = (list(days) + [(None, None), (None, None)])[:2]
    rows = await conn.fetch(
        REPORT_BREAKDOWN,
        merchant_id,
        program_id,
        *(months or (None, None)),
        *first,
        *second,
        metrics,
    )
    return many(DimSum, rows)


async def story_sums(
    conn: asyncpg.Connection, merchant_id: int, read: RollupRead, story_id: int | None
) -> list[RollupSum]:
    rows = await conn.fetch(REPORT_STORY_DAILY, *_read_args(merchant_id, read), story_id)
    return many(RollupSum, rows)


async def advocate_sums(
    conn: asyncpg.Connection, merchant_id: int, read: RollupRead, advocate_id: int
) -> list[RollupSum]:
    rows = await conn.fetch(REPORT_ADVOCATE_DAILY, *_read_args(merchant_id, read), advocate_id)
    return many(RollupSum, rows)


async def sketches(
    conn: asyncpg.Connection,
    merchant_id: int,
    read: str,
    *,
    start: date,
    end: date,
    metrics: list[str],
    program_id: int,
    merchant_wide: list[str],
) -> list[SpanSketch]:
    """`read`: day_estimates, days or months (see REPORT_SKETCH_READS)."""
    rows = await conn.fetch(
        REPORT_SKETCH_READS[read], merchant_id, start, end, metrics, program_id, merchant_wide
    )
    return many(SpanSketch, rows)


async def top_advocates(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    by: str,
    currency: str | None,
    program_id: int | None,
    months: tuple[date, date] | None,
    days: Sequence[tuple[date, date]],
    limit: int,
    metrics: list[str],
) -> list[AdvocateFigure]:
    first, second = (list(days) + [(None, None), (None, None)])[:2]
    rows = await conn.fetch(
        TOP_ADVOCATES,
        merchant_id,
        by,
        currency,
        program_id,
        *(months or (None, None)),
        *first,
        *second,
        limit,
        metrics,
    )
    return many(AdvocateFigure, rows)


async def top_stories(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    months: tuple[date, date] | None,
    days: Sequence[tuple[date, date]],
    program_id: int | None,
    by: str,
    limit: int,
) -> list[StoryFigures]:
    first, second = (list(days) + [(None, None), (None, None)])[:2]
    rows = await conn.fetch(
        TOP_STORIES,
        merchant_id,
        *(months or (None, None)),
        *first,
        *second,
        program_id,
        by,
        limit,
    )
    return many(StoryFigures, rows)
