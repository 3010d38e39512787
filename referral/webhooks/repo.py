"""SQL for webhook endpoints, their secrets, deliveries and attempts. Deliveries are created
by the fan-out trigger on `events` (sql/0011_webhooks.sql), never here; this module moves
them through their schedule."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
import msgspec

from referral.lib.db import many, one
from referral.lib.pagination import Cursor


class EndpointRow(msgspec.Struct, frozen=True):
    merchant_id: int
    id: int
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


_ENDPOINT = """merchant_id, id, url, description, event_types, enabled, disabled_reason,
    disabled_at, failing_since, created_at, updated_at"""

INSERT_ENDPOINT = f"""
INSERT INTO webhook_endpoints (merchant_id, url, description, event_types, enabled,
                               disabled_reason, disabled_at)
VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 THEN NULL ELSE 'manual' END,
        CASE WHEN $5 THEN NULL ELSE now() END)
RETURNING {_ENDPOINT}
"""

GET_ENDPOINT = f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE merchant_id = $1 AND id = $2"

LIST_ENDPOINTS = f"""
SELECT {_ENDPOINT} FROM webhook_endpoints t
WHERE t.merchant_id = $1
  AND ($2::bigint IS NULL OR t.id > $2)
  AND ($3::timestamptz IS NULL OR t.created_at >= $3)
  AND ($4::timestamptz IS NULL OR t.created_at < $4)
ORDER BY t.id
LIMIT $5
"""

# $6 the new enabled flag: turning on clears the disabled state and the failure clock,
# turning off records a manual disable.
UPDATE_ENDPOINT = f"""
UPDATE webhook_endpoints SET
    url = $3, description = $4, event_types = $5,
    enabled = $6,
    disabled_reason = CASE WHEN $6 THEN NULL WHEN enabled THEN 'manual' ELSE disabled_reason END,
    disabled_at = CASE WHEN $6 THEN NULL WHEN enabled THEN now() ELSE disabled_at END,
    failing_since = CASE WHEN $6 AND NOT enabled THEN NULL ELSE failing_since END,
    updated_at = now()
WHERE merchant_id = $1 AND id = $2
RETURNING {_ENDPOINT}
"""

DELETE_ENDPOINT = "DELETE FROM webhook_endpoints WHERE merchant_id = $1 AND id = $2 RETURNING id"

INSERT_SECRET = """
INSERT INTO webhook_secrets (merchant_id, endpoint_id, secret) VALUES ($1, $2, $3)
"""

# The current secret keeps signing until $3; older ones keep their own expiry.
EXPIRE_CURRENT_SECRET = """
UPDATE webhook_secrets SET expires_at = $3
WHERE merchant_id = $1 AND endpoint_id = $2 AND expires_at IS NULL
"""

LIVE_SECRETS = """
SELECT secret FROM webhook_secrets
WHERE merchant_id = $1 AND endpoint_id = $2 AND (expires_at IS NULL OR expires_at > $3)
ORDER BY id
"""

# Every live secret of the given endpoints (one merchant/endpoint pair per position).
LIVE_SECRETS_OF = """
SELECT s.endpoint_id, s.secret
FROM unnest($1::bigint[], $2::bigint[]) AS e (merchant_id, endpoint_id)
JOIN webhook_secrets s ON s.merchant_id = e.merchant_id AND s.endpoint_id = e.endpoint_id
WHERE s.expires_at IS NULL OR s.expires_at > $3
ORDER BY s.endpoint_id, s.id
"""

EVENT_EXISTS = "SELECT id FROM events WHERE merchant_id = $1 AND id = $2"

# A resend starts a new round now; an event the endpoint never got (filtered out, or older
# than the endpoint) is delivered to it all the same.
RESEND = """
INSERT INTO webhook_deliveries (merchant_id, endpoint_id, event_id, status, next_attempt_at)
VALUES ($1, $2, $3, 'pending', now())
ON CONFLICT (merchant_id, endpoint_id, event_id) DO UPDATE
SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now(),
    claim = webhook_deliveries.claim + 1  -- an attempt still in flight no longer books it
"""

RECOVER = """
UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(),
    updated_at = now()
WHERE merchant_id = $1 AND endpoint_id = $2 AND status = 'failed'
  AND created_at >= $3 AND created_at < $4
"""

# An endpoint that stops receiving keeps its undelivered deliveries as failed: recoverable.
FAIL_PENDING = """
UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, updated_at = now()
WHERE merchant_id = $1 AND endpoint_id = $2 AND status = 'pending'
"""

# Retention: attempts made, and deliveries finished (succeeded or failed, not changed since),
# before $2. Ids grow with time, so the first id at or after the cutoff bounds the delete
# (found by walking the primary key from the oldest, over exactly the rows that go) and no
# index on the time is needed; the time is checked again on every row deleted.
FORGET_ATTEMPTS = """
DELETE FROM webhook_attempts a
WHERE a.merchant_id = $1 AND a.attempted_at < $2
  AND a.id < coalesce(
      (SELECT y.id FROM webhook_attempts y
       WHERE y.merchant_id = $1 AND y.attempted_at >= $2 ORDER BY y.id LIMIT 1),
      (SELECT max(z.id) + 1 FROM webhook_attempts z WHERE z.merchant_id = $1))
"""

FORGET_DELIVERIES = """
DELETE FROM webhook_deliveries d
WHERE d.merchant_id = $1 AND d.status <> 'pending' AND d.created_at < $2 AND d.updated_at < $2
  AND d.id < coalesce(
      (SELECT y.id FROM webhook_deliveries y
       WHERE y.merchant_id = $1 AND y.created_at >= $2 ORDER BY y.id LIMIT 1),
      (SELECT max(z.id) + 1 FROM webhook_deliveries z WHERE z.merchant_id = $1))
"""

# The outbox's lag: since when the most overdue delivery has been due (deployment-wide; one
# in flight is due again only when its lease ends, a retry when its backoff does).
OLDEST_UNDELIVERED = """
SELECT min(next_attempt_at) FROM webhook_deliveries
WHERE status = 'pending' AND next_attempt_at <= now()
"""

# The workers' take. Per enabled endpoint (none of `$4`, those this process has busy), its
# due deliveries in due order, at most $2 each and $3 in all, locked SKIP LOCKED so other
# workers take others; each is leased until $5 (sent again after that if no result came).
CLAIM = """
WITH due AS (
    SELECT d.merchant_id, d.id
    FROM webhook_endpoints w
    CROSS JOIN LATERAL (
        SELECT d.merchant_id, d.id FROM webhook_deliveries d
        WHERE d.merchant_id = w.merchant_id AND d.endpoint_id = w.id
          AND d.status = 'pending' AND d.next_attempt_at <= $1
        ORDER BY d.next_attempt_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ) d
    WHERE w.enabled AND NOT (w.id = ANY($4::bigint[]))
    LIMIT $3
)
UPDATE webhook_deliveries d
SET next_attempt_at = $5, attempts = d.attempts + 1, claim = d.claim + 1, updated_at = now()
FROM due, events e, webhook_endpoints w, merchants m
WHERE d.merchant_id = due.merchant_id AND d.id = due.id
  AND e.merchant_id = d.merchant_id AND e.id = d.event_id
  AND w.merchant_id = d.merchant_id AND w.id = d.endpoint_id
  AND m.id = d.merchant_id
RETURNING d.merchant_id, d.id, d.endpoint_id, d.event_id, d.attempts, d.claim, w.url,
    m.mode = 'live' AS live, e.type, e.data::text AS data, e.created_at
"""


class Claimed(msgspec.Struct, frozen=True):
    merchant_id: int
    id: int
    endpoint_id: int
    event_id: int
    attempts: int
    claim: int
    url: str
    live: bool
    type: str
    data: str
    created_at: datetime


INSERT_ATTEMPTS = """
INSERT INTO webhook_attempts (merchant_id, endpoint_id, delivery_id, event_id, message_id,
    event_type, attempted_at, succeeded, status_code, error, duration_ms, response)
SELECT u.* FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[],
    $6::text[], $7::timestamptz[], $8::boolean[], $9::int[], $10::text[], $11::int[], $12::text[])
    AS u (merchant_id, endpoint_id, delivery_id, event_id, message_id, event_type, attempted_at,
          succeeded, status_code, error, duration_ms, response)
-- An endpoint deleted while its attempt was in flight takes its history with it.
WHERE EXISTS (SELECT 1 FROM webhook_endpoints w
              WHERE w.merchant_id = u.merchant_id AND w.id = u.endpoint_id)
RETURNING id
"""

# A result moves its delivery only while the delivery is still under the claim that sent
# it; a retry of an endpoint that is disabled meanwhile is kept as failed.
# The endpoint is looked up per row (not joined): joined, a planner with stale statistics on
# this fast-churning table (autovacuum analyzes it minutes late) found each row by scanning
# the endpoint's deliveries, 30 ms a batch; this way the primary key is the only path.
RECORD_DELIVERIES = """
UPDATE webhook_deliveries d
SET status = CASE WHEN r.status = 'pending' AND NOT (
            SELECT w.enabled FROM webhook_endpoints w
            WHERE w.merchant_id = d.merchant_id AND w.id = d.endpoint_id)
        THEN 'failed' ELSE r.status END,
    next_attempt_at = CASE WHEN r.status = 'pending' AND (
            SELECT w.enabled FROM webhook_endpoints w
            WHERE w.merchant_id = d.merchant_id AND w.id = d.endpoint_id)
        THEN r.next END,
    updated_at = now()
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::timestamptz[])
     AS r (merchant_id, id, claim, status, next)
WHERE d.merchant_id = r.merchant_id AND d.id = r.id AND d.claim = r.claim
"""

# A success stops the failure clock; the first failure after one starts it. Only rows that
# change are written (and locked): a healthy endpoint's row is never touched.
ENDPOINTS_SUCCEEDED = """
UPDATE webhook_endpoints w SET failing_since = NULL
FROM unnest($1::bigint[], $2::bigint[]) AS e (merchant_id, id)
WHERE w.merchant_id = e.merchant_id AND w.id = e.id AND w.failing_since IS NOT NULL
"""

ENDPOINTS_FAILED = """
UPDATE webhook_endpoints w SET failing_since = $3
FROM unnest($1::bigint[], $2::bigint[]) AS e (merchant_id, id)
WHERE w.merchant_id = e.merchant_id AND w.id = e.id AND w.failing_since IS NULL
"""

# 410 Gone ($4 true) disables at once; otherwise every attempt failing since $3 does.
DISABLE = """
UPDATE webhook_endpoints w
SET enabled = false, disabled_reason = $4, disabled_at = $5, updated_at = now()
FROM unnest($1::bigint[], $2::bigint[]) AS e (merchant_id, id)
WHERE w.merchant_id = e.merchant_id AND w.id = e.id AND w.enabled
  AND ($4 = 'gone' OR w.failing_since <= $3)
RETURNING w.merchant_id, w.id, w.failing_since
"""


class Disabled(msgspec.Struct, frozen=True):
    merchant_id: int
    id: int
    failing_since: datetime | None


class AttemptRow(msgspec.Struct, frozen=True):
    id: int
    endpoint_id: int
    event_id: int | None
    message_id: str
    event_type: str
    attempted_at: datetime
    succeeded: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    response: str


# An erasure (referral/customers/): an answer a receiver gave to one of the events it
# scrubbed ($2), or one holding the person's address ($3, lower-cased), may echo them: it is
# emptied (the attempt itself, its status and time, stay).
SCRUB_ATTEMPTS = """
WITH scrubbed AS (
    UPDATE webhook_attempts a SET response = ''
    WHERE a.merchant_id = $1 AND a.response <> ''
      AND (a.event_id = ANY($2::bigint[])
           OR EXISTS (SELECT 1 FROM unnest($3::text[]) AS w(v)
                      WHERE strpos(lower(a.response), w.v) > 0))
    RETURNING 1
)
SELECT count(*) FROM scrubbed
"""

_ATTEMPT = """t.id, t.endpoint_id, t.event_id, t.message_id, t.event_type, t.attempted_at,
    t.succeeded, t.status_code, t.error, t.duration_ms, t.response"""

LIST_ATTEMPTS = f"""
SELECT {_ATTEMPT} FROM webhook_attempts t
WHERE t.merchant_id = $1
  AND ($2::bigint IS NULL OR t.endpoint_id = $2)
  AND ($7::bigint IS NULL OR t.event_id = $7)
  AND ($3::bigint IS NULL OR t.id > $3)
  AND ($4::timestamptz IS NULL OR t.attempted_at >= $4)
  AND ($5::timestamptz IS NULL OR t.attempted_at < $5)
ORDER BY t.id
LIMIT $6
"""


# --------------------------------------------------------------------------- endpoints


async def insert_endpoint(
    conn: asyncpg.Connection,
    merchant_id: int,
    url: str,
    description: str,
    event_types: list[str],
    enabled: bool,
    secret: bytes,
) -> EndpointRow:
    row = await conn.fetchrow(INSERT_ENDPOINT, merchant_id, url, description, event_types, enabled)
    endpoint = EndpointRow(**row)
    await conn.execute(INSERT_SECRET, merchant_id, endpoint.id, secret)
    return endpoint


async def get_endpoint(
    conn: asyncpg.Connection, merchant_id: int, endpoint_id: int, *, lock: bool = False
) -> EndpointRow | None:
    sql = GET_ENDPOINT + (" FOR UPDATE" if lock else "")
    return one(EndpointRow, await conn.fetchrow(sql, merchant_id, endpoint_id))


async def list_endpoints(
    conn: asyncpg.Connection, merchant_id: int, cursor: Cursor
) -> list[EndpointRow]:
    rows = await conn.fetch(LIST_ENDPOINTS, merchant_id, *cursor.params)
    return many(EndpointRow, rows)


async def update_endpoint(
    conn: asyncpg.Connection,
    merchant_id: int,
    endpoint_id: int,
    *,
    url: str,
    description: str,
    event_types: list[str],
    enabled: bool,
) -> EndpointRow:
    row = await conn.fetchrow(
        UPDATE_ENDPOINT, merchant_id, endpoint_id, url, description, event_types, enabled
    )
    return EndpointRow(**row)


async def delete_endpoint(conn: asyncpg.Connection, merchant_id: int, endpoint_id: int) -> bool:
    return await conn.fetchval(DELETE_ENDPOINT, merchant_id, endpoint_id) is not None


async def rotate_secret(
    conn: asyncpg.Connection, merchant_id: int, endpoint_id: int, secret: bytes, until: datetime
) -> None:
    await conn.execute(EXPIRE_CURRENT_SECRET, merchant_id, endpoint_id, until)
    await conn.execute(INSERT_SECRET, merchant_id, endpoint_id, secret)


async def live_secrets(
    conn: asyncpg.Connection, merchant_id: int, endpoint_id: int, at: datetime
) -> list[bytes]:
    return [r["secret"] for r in await conn.fetch(LIVE_SECRETS, merchant_id, endpoint_id, at)]


async def live_secrets_of(
    conn: asyncpg.Connection, endpoints: Sequence[tuple[int, int]], at: datetime
) -> dict[int, list[bytes]]:
    """Live secrets per endpoint id, for (merchant_id, endpoint_id) pairs."""
    found: dict[int, list[bytes]] = {}
    rows = await conn.fetch(
        LIVE_SECRETS_OF, [m for m, _ in endpoints], [e for _, e in endpoints], at
    )
    for row in rows:
        found.setdefault(row["endpoint_id"], []).append(row["secret"])
    return found


# --------------------------------------------------------------------------- deliveries


async def event_exists(conn: asyncpg.Connection, merchant_id: int, event_id: int) -> bool:
    return await conn.fetchval(EVENT_EXISTS, merchant_id, event_id) is not None


async def resend(
    conn: asyncpg.Connection, merchant_id: int, endpoint_id: int, event_id: int
) -> None:
    await conn.execute(RESEND, merchant_id, endpoint_id, event_id)


async def forget_before(
    conn: asyncpg.Connection, merchant_id: int, before: datetime
) -> tuple[int, int]:
    attempts = await conn.execute(FORGET_ATTEMPTS, merchant_id, before)
    deliveries = await conn.execute(FORGET_DELIVERIES, merchant_id, before)
    return int(attempts.rsplit(" ", 1)[1]), int(deliveries.rsplit(" ", 1)[1])


async def recover(
    conn: asyncpg.Connection, merchant_id: int, endpoint_id: int, since: datetime, until: datetime
) -> int:
    status = await conn.execute(RECOVER, merchant_id, endpoint_id, since, until)
    return int(status.rsplit(" ", 1)[1])


async def fail_pending(conn: asyncpg.Connection, merchant_id: int, endpoint_id: int) -> None:
    await conn.execute(FAIL_PENDING, merchant_id, endpoint_id)


async def claim(
    conn: asyncpg.Connection,
    *,
    now: datetime,
    per_endpoint: int,
    limit: int,
    busy: Sequence[int],
    lease_until: datetime,
) -> list[Claimed]:
    # A generic plan (what a prepared statement settles on after five runs) does not know the
    # limits or the time and scans every pending delivery: 40 ms a take at a few thousand.
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
    rows = await conn.fetch(CLAIM, now, per_endpoint, limit, list(busy), lease_until)
    return many(Claimed, rows)


class AttemptIn(msgspec.Struct, frozen=True):
    merchant_id: int
    endpoint_id: int
    delivery_id: int | None
    event_id: int | None
    message_id: str
    event_type: str
    attempted_at: datetime
    succeeded: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    response: str


async def insert_attempts(conn: asyncpg.Connection, attempts: Sequence[AttemptIn]) -> list[int]:
    columns = [[getattr(a, f) for a in attempts] for f in AttemptIn.__struct_fields__]
    return [r["id"] for r in await conn.fetch(INSERT_ATTEMPTS, *columns)]


async def record_deliveries(
    conn: asyncpg.Connection,
    rows: Sequence[tuple[int, int, int, str, datetime | None]],
) -> None:
    """(merchant_id, delivery_id, claim, status, next_attempt_at) per delivery."""
    if rows:
        await conn.execute(RECORD_DELIVERIES, *(list(col) for col in zip(*rows, strict=True)))


async def endpoints_succeeded(conn: asyncpg.Connection, pairs: Sequence[tuple[int, int]]) -> None:
    if pairs:
        await conn.execute(ENDPOINTS_SUCCEEDED, [m for m, _ in pairs], [e for _, e in pairs])


async def endpoints_failed(
    conn: asyncpg.Connection, pairs: Sequence[tuple[int, int]], at: datetime
) -> None:
    if pairs:
        await conn.execute(ENDPOINTS_FAILED, [m for m, _ in pairs], [e for _, e in pairs], at)


async def disable(
    conn: asyncpg.Connection,
    pairs: Sequence[tuple[int, int]],
    *,
    reason: str,
    failing_before: datetime,
    at: datetime,
) -> list[Disabled]:
    if not pairs:
        return []
    rows = await conn.fetch(
        DISABLE, [m for m, _ in pairs], [e for _, e in pairs], failing_before, reason, at
    )
    return many(Disabled, rows)


async def list_attempts(
    conn: asyncpg.Connection,
    merchant_id: int,
    cursor: Cursor,
    *,
    endpoint_id: int | None = None,
    event_id: int | None = None,
) -> list[AttemptRow]:
    rows = await conn.fetch(LIST_ATTEMPTS, merchant_id, endpoint_id, *cursor.params, event_id)
    return many(AttemptRow, rows)


async def oldest_undelivered(conn: asyncpg.Connection) -> datetime | None:
    return await conn.fetchval(OLDEST_UNDELIVERED)


async def scrub_attempts(
    conn: asyncpg.Connection, merchant_id: int, event_ids: list[int], emails: list[str]
) -> int:
    return await conn.fetchval(SCRUB_ATTEMPTS, merchant_id, event_ids, emails)
