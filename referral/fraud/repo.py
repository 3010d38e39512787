"""SQL for the fraud engine. Every statement is scoped by merchant_id.

The order path reads everything the rules need in one statement (`FEATURES`): each count is
an index probe (`referrals_advocate`, `orders_ip`, `signups_ip`, `referrals_advocate_rejected`,
the signals primary key), so the decision costs one round trip whatever the history size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from referral.lib.db import one, stream

# Rejections that say something about the advocate (not "the friend bought before").
FRAUD_REJECTIONS = ["self_referral", "fraud_blocked", "review_rejected"]

FEATURES = """
SELECT
    ARRAY(SELECT DISTINCT s.kind
          FROM unnest($3::text[], $4::bytea[]) AS f(kind, value)
          JOIN customer_signals s
            ON s.merchant_id = $1 AND s.customer_id = $2 AND s.kind = f.kind
           AND s.value = f.value) AS matched,
    (SELECT count(*) FROM referrals
     WHERE merchant_id = $1 AND advocate_id = $5 AND created_at > now() - interval '1 hour')
        AS advocate_hour,
    (SELECT count(*) FROM referrals
     WHERE merchant_id = $1 AND advocate_id = $5 AND created_at > now() - interval '1 day')
        AS advocate_day,
    CASE WHEN $6::bytea IS NOT NULL THEN
        (SELECT count(*) FROM orders
         WHERE merchant_id = $1 AND ip_hash = $6
           AND occurred_at > $7::timestamptz - interval '1 day' AND occurred_at <= $7)
      + (SELECT count(*) FROM signups
         WHERE merchant_id = $1 AND ip_hash = $6
           AND occurred_at > $7::timestamptz - interval '1 day' AND occurred_at <= $7)
    END AS ip_day,
    EXISTS (SELECT 1 FROM referrals r
            JOIN advocates a ON a.merchant_id = r.merchant_id AND a.id = r.advocate_id
            WHERE r.merchant_id = $1 AND r.friend_customer_id = $2 AND r.status <> 'rejected'
              AND a.customer_id = $8)
    OR EXISTS (SELECT 1 FROM referrals r
               JOIN advocates a ON a.merchant_id = r.merchant_id AND a.id = r.advocate_id
               WHERE r.merchant_id = $1 AND r.friend_email_normalised = $9
                 AND r.status <> 'rejected' AND a.customer_id = $8) AS reciprocal,
    (SELECT count(*) FROM referrals
     WHERE merchant_id = $1 AND advocate_id = $5 AND status = 'rejected'
       AND created_at > greatest(
           now() - make_interval(days => $10::int),
           (SELECT coalesce(reactivated_at, '-infinity') FROM advocates
            WHERE merchant_id = $1 AND id = $5))
       AND rejection_reason = ANY($11::text[])) AS advocate_rejected
"""

REMEMBER = """
INSERT INTO customer_signals AS s (merchant_id, customer_id, kind, value, first_seen_at,
                                   last_seen_at)
SELECT $1, $2, kind, value, $5, $5 FROM unnest($3::text[], $4::bytea[]) AS t(kind, value)
ON CONFLICT (merchant_id, customer_id, kind, value)
DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at
WHERE s.last_seen_at < EXCLUDED.last_seen_at - interval '1 hour'
"""

POLICY = """
SELECT fraud_policy::text AS policy, fraud_policy_version AS version, updated_at
FROM programs WHERE merchant_id = $1 AND id = $2
"""

# With the policy it replaced (read under the row's lock), for the audit log.
SET_POLICY = """
WITH old AS (
    SELECT fraud_policy::text AS policy, fraud_policy_version AS version
    FROM programs WHERE merchant_id = $1 AND id = $2
    FOR UPDATE
)
UPDATE programs p SET fraud_policy = $3, fraud_policy_version = p.fraud_policy_version + 1,
       updated_at = now()
FROM old
WHERE p.merchant_id = $1 AND p.id = $2 AND ($4::int IS NULL OR old.version = $4)
RETURNING p.fraud_policy::text AS policy, p.fraud_policy_version AS version, p.updated_at,
          old.policy AS replaced_policy, old.version AS replaced_version
"""

# Replays read the stored features as text (decoded straight into structs) and the
# identities from the referral and its advocate.
REPLAY = """
SELECT r.id, r.status, r.rejection_reason, (r.decision -> 'fraud')::text AS decision,
       r.friend_customer_id, r.friend_email_normalised, a.customer_id AS advocate_customer_id,
       a.email AS advocate_email
FROM referrals r JOIN advocates a ON a.merchant_id = r.merchant_id AND a.id = r.advocate_id
WHERE r.merchant_id = $1 AND r.program_id = $2 AND r.created_at >= $3 AND r.created_at < $4
  AND r.status <> 'pending'
ORDER BY r.created_at, r.id
"""

# --- a customer's data rights (referral/customers/) and retention: the hashed signals kept
# under their customer id; the signals nobody was seen with for the retention window.
CUSTOMER_SIGNALS = """
SELECT kind, value, first_seen_at, last_seen_at FROM customer_signals
WHERE merchant_id = $1 AND customer_id = $2
ORDER BY kind, first_seen_at, value
"""

ERASE_SIGNALS = """
WITH gone AS (
    DELETE FROM customer_signals WHERE merchant_id = $1 AND customer_id = $2 RETURNING 1
)
SELECT count(*) FROM gone
"""

EXPIRE_SIGNALS = """
WITH gone AS (
    DELETE FROM customer_signals WHERE merchant_id = $1 AND last_seen_at < $2 RETURNING 1
)
SELECT count(*) FROM gone
"""


READ_ONLY = "SET LOCAL transaction_read_only = on"


class FeatureRow(msgspec.Struct, frozen=True):
    matched: list[str]
    advocate_hour: int
    advocate_day: int
    ip_day: int | None
    reciprocal: bool
    advocate_rejected: int


class PolicyRow(msgspec.Struct, frozen=True):
    policy: str
    version: int
    updated_at: datetime


class ReplayRow(msgspec.Struct, frozen=True):
    id: int
    status: str
    rejection_reason: str | None
    decision: str | None  # the stored decision as JSON text, decoded by the replay
    friend_customer_id: str | None
    friend_email_normalised: str | None
    advocate_customer_id: str
    advocate_email: str | None


async def features(conn: asyncpg.Connection, *values: Any) -> FeatureRow:
    return FeatureRow(**await conn.fetchrow(FEATURES, *values))


async def remember(
    conn: asyncpg.Connection,
    merchant_id: int,
    customer_id: str,
    signals: list[tuple[str, bytes]],
    at: datetime,
) -> None:
    if signals:
        kinds, values = zip(*signals, strict=True)
        await conn.execute(REMEMBER, merchant_id, customer_id, list(kinds), list(values), at)


async def policy(conn: asyncpg.Connection, merchant_id: int, program_id: int) -> PolicyRow | None:
    return one(PolicyRow, await conn.fetchrow(POLICY, merchant_id, program_id))


class SetPolicyRow(msgspec.Struct, frozen=True):
    policy: str
    version: int
    updated_at: datetime
    replaced_policy: str
    replaced_version: int


async def set_policy(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    policy: dict,
    expected_version: int | None = None,
) -> SetPolicyRow | None:
    """None: no such program, or (with `expected_version`) its policy is at another version."""
    row = await conn.fetchrow(SET_POLICY, merchant_id, program_id, policy, expected_version)
    return one(SetPolicyRow, row)


async def read_only(conn: asyncpg.Connection) -> None:
    """Make the caller's transaction read-only: a replay can then never write."""
    await conn.execute(READ_ONLY)


async def replay(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    created_from: datetime,
    created_before: datetime,
    chunk: int = 5000,
) -> AsyncIterator[list[ReplayRow]]:
    """Past decided referrals, streamed in chunks (the caller holds a transaction): a
    million rows one `async for` step each would cost more than replaying them."""
    async for rows in stream(
        conn, REPLAY, merchant_id, program_id, created_from, created_before, chunk=chunk
    ):
        yield [ReplayRow(*row) for row in rows]  # by position: REPLAY's columns, in order


class SignalRow(msgspec.Struct, frozen=True):
    kind: str
    value: bytes
    first_seen_at: datetime
    last_seen_at: datetime


async def customer_signals(
    conn: asyncpg.Connection, merchant_id: int, customer_id: str
) -> list[SignalRow]:
    return [SignalRow(**r) for r in await conn.fetch(CUSTOMER_SIGNALS, merchant_id, customer_id)]


async def erase_signals(conn: asyncpg.Connection, merchant_id: int, customer_id: str) -> int:
    return await conn.fetchval(ERASE_SIGNALS, merchant_id, customer_id)


async def expire_signals(conn: asyncpg.Connection, merchant_id: int, before: datetime) -> int:
    return await conn.fetchval(EXPIRE_SIGNALS, merchant_id, before)
