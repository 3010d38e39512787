"""SQL for experiments and holdouts. Every statement is scoped by merchant_id.

The readout reads the analytics rollups (`analytics_advocate_daily`) of the advocates an
experiment exposed, and the referrals that recorded its variant; the holdout report reads
the customers' own orders and the program's `new_customers` rollup."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from referral.lib.db import many, one

COLUMNS = """id, program_id, name, status, variants, hash_key, starts_at, ends_at, ended_at,
winner, rules_version, created_at"""

# ON CONFLICT: the program already has a running experiment (experiments_one_running).
INSERT = f"""
INSERT INTO experiments (merchant_id, program_id, name, status, variants, hash_key, starts_at,
                         ends_at)
VALUES ($1, $2, $3, 'running', $4, $5, COALESCE($6::timestamptz, now()), $7::timestamptz)
ON CONFLICT DO NOTHING
RETURNING {COLUMNS}
"""

GET = f"SELECT {COLUMNS} FROM experiments WHERE merchant_id = $1 AND program_id = $2 AND id = $3"
GET_FOR_UPDATE = GET + " FOR UPDATE"
BY_ID = f"SELECT {COLUMNS} FROM experiments WHERE merchant_id = $1 AND id = $2"

RUNNING = f"""
SELECT {COLUMNS} FROM experiments
WHERE merchant_id = $1 AND program_id = $2 AND status = 'running'
"""

END = f"""
UPDATE experiments SET status = 'ended', ended_at = now(), winner = $3, rules_version = $4::int
WHERE merchant_id = $1 AND id = $2
RETURNING {COLUMNS}
"""

# An experiment whose `ends_at` passed ends by itself: it is marked when next met.
END_PAST = f"""
UPDATE experiments SET status = 'ended', ended_at = ends_at
WHERE merchant_id = $1 AND program_id = $2 AND status = 'running' AND ends_at <= now()
RETURNING {COLUMNS}
"""

# The settings of the last experiment that ended with a winner: its copy is the share page's.
ADOPTED = f"""
SELECT {COLUMNS} FROM experiments
WHERE merchant_id = $1 AND program_id = $2 AND status = 'ended' AND winner IS NOT NULL
ORDER BY ended_at DESC, id DESC LIMIT 1
"""

EXPOSE = """
INSERT INTO experiment_exposures (merchant_id, experiment_id, advocate_id, variant, via)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING
"""

EXPOSED = """
SELECT variant, count(*)::bigint AS advocates FROM experiment_exposures
WHERE merchant_id = $1 AND experiment_id = $2
GROUP BY variant
"""

# Each exposed advocate's rollup figures from the experiment's first day to its last (the
# merchant's days), per metric and currency: only advocates with something are listed.
ADVOCATE_FIGURES = """
WITH zone AS (SELECT click_time_zone(m.time_zone) AS z FROM merchants m WHERE m.id = $1)
SELECT e.variant, e.advocate_id, a.metric, a.currency, sum(a.value)::bigint AS value
FROM experiment_exposures e
JOIN analytics_advocate_daily a ON a.merchant_id = e.merchant_id AND a.advocate_id = e.advocate_id
WHERE e.merchant_id = $1 AND e.experiment_id = $2 AND a.program_id = $3
  AND a.day >= ($4::timestamptz AT TIME ZONE (SELECT z FROM zone))::date
  AND a.day <= ($5::timestamptz AT TIME ZONE (SELECT z FROM zone))::date
  AND a.metric = ANY($6::text[])
GROUP BY 1, 2, 3, 4
HAVING sum(a.value) <> 0
"""

# The referrals that recorded the experiment's variant: decided ones, and those blocked.
GUARDRAIL = """
SELECT attribution->>'variant' AS variant,
       count(*) FILTER (WHERE status <> 'pending')::bigint AS decided,
       count(*) FILTER (WHERE status = 'rejected'
                        AND rejection_reason IN ('fraud_blocked', 'review_rejected'))::bigint
           AS blocked
FROM referrals
WHERE merchant_id = $1 AND program_id = $2 AND attribution->>'experiment_id' = $3
GROUP BY 1
"""


class ExperimentRow(msgspec.Struct, frozen=True):
    id: int
    program_id: int
    name: str
    status: str
    variants: list[dict[str, Any]]
    hash_key: bytes
    starts_at: datetime
    ends_at: datetime | None
    ended_at: datetime | None
    winner: str | None
    rules_version: int | None
    created_at: datetime


class AdvocateFigure(msgspec.Struct, frozen=True):
    variant: str
    advocate_id: int
    metric: str
    currency: str
    value: int


class Guardrail(msgspec.Struct, frozen=True):
    variant: str | None
    decided: int
    blocked: int


async def insert(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    program_id: int,
    name: str,
    variants: list[dict[str, Any]],
    hash_key: bytes,
    starts_at: datetime | None,
    ends_at: datetime | None,
) -> ExperimentRow | None:
    row = await conn.fetchrow(
        INSERT, merchant_id, program_id, name, variants, hash_key, starts_at, ends_at
    )
    return one(ExperimentRow, row)


async def get(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    experiment_id: int,
    *,
    for_update: bool = False,
) -> ExperimentRow | None:
    query = GET_FOR_UPDATE if for_update else GET
    return one(ExperimentRow, await conn.fetchrow(query, merchant_id, program_id, experiment_id))


async def by_id(
    conn: asyncpg.Connection, merchant_id: int, experiment_id: int
) -> ExperimentRow | None:
    return one(ExperimentRow, await conn.fetchrow(BY_ID, merchant_id, experiment_id))


async def running(
    conn: asyncpg.Connection, merchant_id: int, program_id: int
) -> ExperimentRow | None:
    return one(ExperimentRow, await conn.fetchrow(RUNNING, merchant_id, program_id))


async def end(
    conn: asyncpg.Connection,
    merchant_id: int,
    experiment_id: int,
    *,
    winner: str | None,
    rules_version: int | None,
) -> ExperimentRow:
    row = await conn.fetchrow(END, merchant_id, experiment_id, winner, rules_version)
    return one(ExperimentRow, row)


async def adopted(
    conn: asyncpg.Connection, merchant_id: int, program_id: int
) -> ExperimentRow | None:
    return one(ExperimentRow, await conn.fetchrow(ADOPTED, merchant_id, program_id))


async def end_past(conn: asyncpg.Connection, merchant_id: int, program_id: int) -> None:
    await conn.execute(END_PAST, merchant_id, program_id)


async def expose(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    experiment_id: int,
    advocate_id: int,
    variant: str,
    via: str,
) -> None:
    await conn.execute(EXPOSE, merchant_id, experiment_id, advocate_id, variant, via)


async def exposed(conn: asyncpg.Connection, merchant_id: int, experiment_id: int) -> dict[str, int]:
    rows = await conn.fetch(EXPOSED, merchant_id, experiment_id)
    return {r["variant"]: r["advocates"] for r in rows}


async def advocate_figures(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    experiment_id: int,
    program_id: int,
    since: datetime,
    until: datetime,
    metrics: list[str],
) -> list[AdvocateFigure]:
    rows = await conn.fetch(
        ADVOCATE_FIGURES, merchant_id, experiment_id, program_id, since, until, metrics
    )
    return many(AdvocateFigure, rows)


async def guardrail(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, public_id: str
) -> list[Guardrail]:
    return many(Guardrail, await conn.fetch(GUARDRAIL, merchant_id, program_id, public_id))


# --- holdouts ---------------------------------------------------------------------------

HOLDOUT_COLUMNS = "program_id, share_bps, hash_key, started_at, updated_at"

# A new holdout draws its key; a changed share keeps it (and who was held out stays held
# out when the share grows).
SET_HOLDOUT = f"""
INSERT INTO program_holdouts (merchant_id, program_id, share_bps, hash_key)
VALUES ($1, $2, $3::int, $4)
ON CONFLICT (merchant_id, program_id)
DO UPDATE SET share_bps = excluded.share_bps, updated_at = now()
RETURNING {HOLDOUT_COLUMNS}
"""

GET_HOLDOUT = f"""
SELECT {HOLDOUT_COLUMNS} FROM program_holdouts
WHERE merchant_id = $1 AND program_id = $2 AND ended_at IS NULL
"""

ANSWER = "INSERT INTO holdout_answers (merchant_id, program_id, via) VALUES ($1, $2, $3)"

ANSWERS = """
SELECT count(*)::bigint FROM holdout_answers
WHERE merchant_id = $1 AND program_id = $2 AND answered_at >= $3
"""

# Each customer (by the shop's customer id) whose first order since the holdout started is
# `entry`, with their later own orders (cancelled ones never happened, refunds taken off)
# within 30, 90 and 180 days of it, per currency.
CUSTOMER_WINDOWS = """
WITH entries AS (
    SELECT customer_id, min(occurred_at) AS entry FROM orders
    WHERE merchant_id = $1 AND customer_id IS NOT NULL AND status <> 'cancelled'
      AND occurred_at >= $2 AND NOT is_import
    GROUP BY customer_id
)
SELECT e.customer_id, e.entry, o.currency::text AS currency,
       count(*) FILTER (WHERE o.occurred_at <= e.entry + interval '30 days')::bigint AS orders_30,
       count(*) FILTER (WHERE o.occurred_at <= e.entry + interval '90 days')::bigint AS orders_90,
       count(*)::bigint AS orders_180,
       coalesce(sum(o.total - o.refunded)
                FILTER (WHERE o.occurred_at <= e.entry + interval '30 days'), 0)::bigint
           AS revenue_30,
       coalesce(sum(o.total - o.refunded)
                FILTER (WHERE o.occurred_at <= e.entry + interval '90 days'), 0)::bigint
           AS revenue_90,
       coalesce(sum(o.total - o.refunded), 0)::bigint AS revenue_180
FROM entries e
LEFT JOIN orders o ON o.merchant_id = $1 AND o.customer_id = e.customer_id
     AND o.status <> 'cancelled' AND o.occurred_at > e.entry
     AND o.occurred_at <= e.entry + interval '180 days'
GROUP BY 1, 2, 3
"""

REFERRED_NEW_CUSTOMERS = """
WITH zone AS (SELECT click_time_zone(m.time_zone) AS z FROM merchants m WHERE m.id = $1)
SELECT coalesce(sum(value), 0)::bigint FROM analytics_daily
WHERE merchant_id = $1 AND program_id = $2 AND metric = 'new_customers'
  AND day >= ($3::timestamptz AT TIME ZONE (SELECT z FROM zone))::date
"""


class HoldoutRow(msgspec.Struct, frozen=True):
    program_id: int
    share_bps: int
    hash_key: bytes
    started_at: datetime
    updated_at: datetime


class CustomerWindow(msgspec.Struct, frozen=True):
    customer_id: str
    entry: datetime
    currency: str | None  # None: no later order
    orders_30: int
    orders_90: int
    orders_180: int
    revenue_30: int
    revenue_90: int
    revenue_180: int


async def set_holdout(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, share_bps: int, hash_key: bytes
) -> HoldoutRow:
    row = await conn.fetchrow(SET_HOLDOUT, merchant_id, program_id, share_bps, hash_key)
    return one(HoldoutRow, row)


async def holdout(conn: asyncpg.Connection, merchant_id: int, program_id: int) -> HoldoutRow | None:
    return one(HoldoutRow, await conn.fetchrow(GET_HOLDOUT, merchant_id, program_id))


async def answer(conn: asyncpg.Connection, merchant_id: int, program_id: int, via: str) -> None:
    await conn.execute(ANSWER, merchant_id, program_id, via)


async def answers(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, since: datetime
) -> int:
    return await conn.fetchval(ANSWERS, merchant_id, program_id, since)


async def customer_windows(
    conn: asyncpg.Connection, merchant_id: int, since: datetime
) -> list[CustomerWindow]:
    return many(CustomerWindow, await conn.fetch(CUSTOMER_WINDOWS, merchant_id, since))


async def referred_new_customers(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, since: datetime
) -> int:
    return await conn.fetchval(REFERRED_NEW_CUSTOMERS, merchant_id, program_id, since)
