"""SQL for referrals, signups and reviews. Every statement is scoped by merchant_id.

Attribution also reads what it decides on: a code's target, the program's terms, the
advocate (locked while their referral is decided, for tiers and caps) and whether the friend
has ordered before.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from referral.lib.db import many, one
from referral.lib.pagination import CURSOR_CLAUSE, Cursor

REFERRAL_COLUMNS = """id, merchant_id, program_id, advocate_id, friend_key, friend_customer_id,
friend_email_normalised, status, source, attribution, decision, rejection_reason,
signed_up_at, converted_at, first_order_pk, created_at"""

LIVE_REFERRAL = f"""
SELECT {REFERRAL_COLUMNS} FROM (
    SELECT {REFERRAL_COLUMNS} FROM referrals
    WHERE merchant_id = $1 AND friend_customer_id = $3 AND status <> 'rejected'
      AND ($2::bigint IS NULL OR program_id = $2)
    UNION
    SELECT {REFERRAL_COLUMNS} FROM referrals
    WHERE merchant_id = $1 AND friend_email_normalised = $4 AND status <> 'rejected'
      AND ($2::bigint IS NULL OR program_id = $2)
) AS friend_referrals
ORDER BY created_at, id
LIMIT 1
"""

INSERT_REFERRAL = f"""
INSERT INTO referrals (merchant_id, program_id, advocate_id, friend_key, friend_customer_id,
                       friend_email_normalised, status, source, attribution, signed_up_at)
VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9)
ON CONFLICT (merchant_id, program_id, friend_key) WHERE status <> 'rejected' DO NOTHING
RETURNING {REFERRAL_COLUMNS}
"""

SETTLE_REFERRAL = f"""
UPDATE referrals SET status = $3, decision = $4, rejection_reason = $5,
       converted_at = CASE WHEN $3 IN ('converted', 'in_review') THEN $6 ELSE converted_at END,
       first_order_pk = coalesce(first_order_pk, $7)
WHERE merchant_id = $1 AND id = $2
RETURNING {REFERRAL_COLUMNS}
"""

GET_REFERRAL = f"SELECT {REFERRAL_COLUMNS} FROM referrals WHERE merchant_id = $1 AND id = $2"

LOCK_REFERRAL = GET_REFERRAL + " FOR UPDATE"

LIST_REFERRALS = f"""
SELECT {REFERRAL_COLUMNS} FROM referrals t
WHERE t.merchant_id = $1 AND ($2::text IS NULL OR t.status = $2)
{CURSOR_CLAUSE.format(table="referrals")}
  AND ($7::bigint IS NULL OR t.advocate_id = $7)
  AND ($8::bigint IS NULL OR t.program_id = $8)
ORDER BY t.created_at, t.id
LIMIT $6
"""

INSERT_SIGNUP = """
INSERT INTO signups (merchant_id, customer_id, email_normalised, occurred_at, ip_hash)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (merchant_id, customer_id) DO NOTHING
RETURNING id
"""

SIGNUP_RESULT = "SELECT result FROM signups WHERE merchant_id = $1 AND customer_id = $2"

SET_SIGNUP_RESULT = """
UPDATE signups SET referral_id = $3, result = $4 WHERE merchant_id = $1 AND id = $2
"""

CODE_TARGET = """
SELECT c.code, c.program_id, c.advocate_id, c.status = 'active' AS code_active
FROM codes c WHERE c.lookup_key = $1 AND c.merchant_id = $2
"""

PROGRAM = """
SELECT p.id, p.status, p.rewards, p.hold_days, p.attribution_window_days, p.starts_at,
       p.fraud_policy::text AS fraud_policy, p.fraud_policy_version, m.time_zone, m.mode,
       p.rules_version, p.ends_at
FROM programs p JOIN merchants m ON m.id = p.merchant_id
WHERE p.merchant_id = $1 AND p.id = $2
"""

ADVOCATE = "SELECT id, customer_id, email FROM advocates WHERE merchant_id = $1 AND id = $2"

# The friend is known by customer id and/or email: one indexed probe per key, never an OR
# that a generic plan could answer by scanning every order of the merchant.
# A customer bought before: an earlier order of theirs, or they were imported as a customer
# of the shop from before it switched (referral/imports/, `imported_customers`).
KNOWN_CUSTOMER = """
    OR EXISTS (SELECT 1 FROM imported_customers
               WHERE merchant_id = $1 AND customer_id = {customer_id})
    OR EXISTS (SELECT 1 FROM imported_customers
               WHERE merchant_id = $1 AND email_normalised = {email})"""

_BOUGHT_EARLIER = """
SELECT EXISTS (SELECT 1 FROM orders
               WHERE merchant_id = $1 AND customer_id = $3 AND id <> $2
                 AND (occurred_at, id) < ($5, $2) AND status <> 'cancelled')
    OR EXISTS (SELECT 1 FROM orders
               WHERE merchant_id = $1 AND email_normalised = $4 AND id <> $2
                 AND (occurred_at, id) < ($5, $2) AND status <> 'cancelled')"""
BOUGHT_BEFORE = _BOUGHT_EARLIER + KNOWN_CUSTOMER.format(customer_id="$3", email="$4")

_ORDERED = """
SELECT EXISTS (SELECT 1 FROM orders
               WHERE merchant_id = $1 AND customer_id = $2 AND status <> 'cancelled')
    OR EXISTS (SELECT 1 FROM orders
               WHERE merchant_id = $1 AND email_normalised = $3 AND status <> 'cancelled')"""
HAS_ORDERS = _ORDERED + KNOWN_CUSTOMER.format(customer_id="$2", email="$3")

ORDER_IDS_OF = "SELECT id, order_id FROM orders WHERE merchant_id = $1 AND id = ANY($2::bigint[])"

FIRST_ORDER = """
SELECT id, subtotal, currency, occurred_at, is_import FROM orders
WHERE merchant_id = $1 AND id = $2
"""

# Every key of one friend, in one round trip, in the order of the sorted array $1 (the
# subquery hands the keys over in that order), so two calls never deadlock.
LOCK_FRIEND = """
SELECT count(pg_advisory_xact_lock(hashtextextended(k, $2)))
FROM (SELECT k FROM unnest($1::text[]) WITH ORDINALITY AS t (k, n) ORDER BY n) s
"""

SET_REVIEWED = """
UPDATE referrals SET status = $3, rejection_reason = $4,
       converted_at = CASE WHEN $3 = 'converted' THEN coalesce(converted_at, now())
                           ELSE converted_at END
WHERE merchant_id = $1 AND id = $2
"""

INSERT_REVIEW = """
INSERT INTO referral_reviews (merchant_id, referral_id, action, actor, note, from_status,
                              to_status, reward_ids)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""

LAST_REJECTION = """
SELECT reward_ids, from_status FROM referral_reviews
WHERE merchant_id = $1 AND referral_id = $2 AND action = 'reject'
ORDER BY id DESC LIMIT 1
"""

REVIEWS = """
SELECT referral_id, action, actor, note, from_status, to_status, created_at
FROM referral_reviews WHERE merchant_id = $1 AND referral_id = ANY($2::bigint[]) ORDER BY id
"""

# --- a customer's data rights (referral/customers/) ---------------------------------------
# The referrals in which they are the friend: by customer id, or by email where the shop
# sent no customer id (a guest).
_AS_FRIEND = """merchant_id = $1 AND (friend_customer_id = $2
    OR (friend_customer_id IS NULL AND friend_email_normalised = ANY($3::text[])))"""

CUSTOMER_REFERRAL_KEYS = f"""
SELECT id, friend_customer_id, friend_email_normalised,
       attribution ->> 'visitor_id' AS visitor_id
FROM referrals WHERE {_AS_FRIEND}
"""

CUSTOMER_REFERRALS = f"""
SELECT id, program_id, advocate_id, friend_customer_id, friend_email_normalised, status, source,
       rejection_reason, attribution, decision -> 'fraud' AS fraud, created_at, signed_up_at,
       converted_at
FROM referrals WHERE {_AS_FRIEND}
ORDER BY created_at, id
"""

REFERRALS_MADE = """
SELECT id, program_id, advocate_id, status, source, rejection_reason, created_at, signed_up_at,
       converted_at
FROM referrals WHERE merchant_id = $1 AND advocate_id = ANY($2::bigint[])
ORDER BY created_at, id
"""

CUSTOMER_SIGNUPS = """
SELECT id, customer_id, email_normalised, occurred_at, referral_id
FROM signups WHERE merchant_id = $1 AND customer_id = $2
"""

# As the friend: every key and address replaced by its tombstone ($3 from, $4 to; $5 the
# customer id's), the click token's visitor cookie by its own ($6 from, $7 to), and the
# person's values in the fraud decision (a blocklist entry that matched them: $8 emails).
# Status, source, channel, story and times stay: the analytics and the explain view need them.
ERASE_FRIEND_REFERRALS = """
WITH erased AS (
    UPDATE referrals r SET
        friend_key = coalesce(($4::text[])[array_position($3::text[], r.friend_key)], $5),
        friend_customer_id = CASE WHEN r.friend_customer_id IS NOT NULL THEN $5 END,
        friend_email_normalised = CASE WHEN r.friend_email_normalised IS NOT NULL THEN
            coalesce(($4::text[])[array_position($3::text[], r.friend_email_normalised)], $5)
        END,
        attribution = CASE WHEN r.attribution ? 'visitor_id' THEN
            jsonb_set(r.attribution, '{visitor_id}', to_jsonb(coalesce(
                ($7::text[])[array_position($6::text[], r.attribution ->> 'visitor_id')], $5)))
            ELSE r.attribution END,
        decision = jsonb_scrub(r.decision, ARRAY[$2::text], $8::text[], $5)
    WHERE r.merchant_id = $1 AND r.id = ANY($9::bigint[])
    RETURNING 1
)
SELECT count(*) FROM erased
"""

# As the advocate: their vanity code in the attributions ($3 codes, $4 tombstones) and their
# values in the decisions ($5 customer id, $6 emails, $7 its tombstone).
ERASE_MADE_REFERRALS = """
WITH erased AS (
    UPDATE referrals r SET
        attribution = CASE WHEN r.attribution ->> 'code' = ANY($3::text[]) THEN
            jsonb_set(r.attribution, '{code}',
                      to_jsonb(($4::text[])[array_position($3::text[], r.attribution ->> 'code')]))
            ELSE r.attribution END,
        decision = jsonb_scrub(r.decision, ARRAY[$5::text], $6::text[], $7)
    WHERE r.merchant_id = $1 AND r.advocate_id = ANY($2::bigint[])
    RETURNING 1
)
SELECT count(*) FROM erased
"""

ERASE_SIGNUPS = """
WITH erased AS (
    UPDATE signups s SET customer_id = $3, ip_hash = NULL,
        email_normalised = CASE WHEN s.email_normalised IS NOT NULL THEN
            coalesce(($5::text[])[array_position($4::text[], s.email_normalised)], $3) END,
        result = CASE WHEN s.result ? 'customer_id'
                      THEN jsonb_set(s.result, '{customer_id}', to_jsonb($3::text))
                      ELSE s.result END
    WHERE s.merchant_id = $1 AND s.customer_id = $2
    RETURNING 1
)
SELECT count(*) FROM erased
"""

# A reviewer's note naming the person ($2, lower-cased, anywhere) is replaced by `$3`.
SCRUB_REVIEW_NOTES = """
WITH scrubbed AS (
    UPDATE referral_reviews v SET note = $3
    WHERE v.merchant_id = $1 AND v.note IS NOT NULL
      AND EXISTS (SELECT 1 FROM unnest($2::text[]) AS w(v) WHERE strpos(lower(v.note), w.v) > 0)
    RETURNING 1
)
SELECT count(*) FROM scrubbed
"""


class ReferralRow(msgspec.Struct, frozen=True):
    id: int
    merchant_id: int
    program_id: int
    advocate_id: int
    friend_key: str
    friend_customer_id: str | None
    friend_email_normalised: str | None
    status: str
    source: str
    attribution: dict[str, Any]
    decision: dict[str, Any] | None
    rejection_reason: str | None
    signed_up_at: datetime | None
    converted_at: datetime | None
    first_order_pk: int | None
    created_at: datetime


class CodeTarget(msgspec.Struct, frozen=True):
    code: str
    program_id: int
    advocate_id: int
    code_active: bool


class ProgramTerms(msgspec.Struct, frozen=True):
    id: int
    status: str
    rewards: dict[str, Any]
    hold_days: int
    attribution_window_days: int
    starts_at: datetime
    fraud_policy: str
    fraud_policy_version: int
    time_zone: str
    mode: str
    rules_version: int
    ends_at: datetime | None


class AdvocateIdentity(msgspec.Struct, frozen=True):
    id: int
    customer_id: str
    email: str | None


class FirstOrder(msgspec.Struct, frozen=True):
    id: int
    subtotal: int
    currency: str
    occurred_at: datetime
    is_import: bool


class Rejection(msgspec.Struct, frozen=True):
    reward_ids: list[int]
    from_status: str


class ReviewRow(msgspec.Struct, frozen=True):
    referral_id: int
    action: str
    actor: str
    note: str | None
    from_status: str
    to_status: str
    created_at: datetime


async def live_referral(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int | None,
    customer_id: str | None,
    email: str | None,
) -> ReferralRow | None:
    row = await conn.fetchrow(LIVE_REFERRAL, merchant_id, program_id, customer_id, email)
    return one(ReferralRow, row)


async def insert_referral(conn: asyncpg.Connection, *values: Any) -> ReferralRow | None:
    return one(ReferralRow, await conn.fetchrow(INSERT_REFERRAL, *values))


async def settle_referral(
    conn: asyncpg.Connection,
    merchant_id: int,
    referral_id: int,
    status: str,
    decision: dict,
    rejection_reason: str | None,
    at: datetime,
    order_pk: int | None,
) -> ReferralRow:
    row = await conn.fetchrow(
        SETTLE_REFERRAL, merchant_id, referral_id, status, decision, rejection_reason, at, order_pk
    )
    return ReferralRow(**row)


async def referral(
    conn: asyncpg.Connection, merchant_id: int, referral_id: int, *, lock: bool = False
) -> ReferralRow | None:
    query = LOCK_REFERRAL if lock else GET_REFERRAL
    return one(ReferralRow, await conn.fetchrow(query, merchant_id, referral_id))


async def list_referrals(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    status: str | None,
    advocate_id: int | None,
    program_id: int | None,
    cursor: Cursor,
) -> list[ReferralRow]:
    rows = await conn.fetch(
        LIST_REFERRALS,
        merchant_id,
        status,
        *cursor.params,
        advocate_id,
        program_id,
    )
    return many(ReferralRow, rows)


async def insert_signup(
    conn: asyncpg.Connection,
    merchant_id: int,
    customer_id: str,
    email: str | None,
    at: datetime,
    ip_hash: bytes | None,
) -> int | None:
    return await conn.fetchval(INSERT_SIGNUP, merchant_id, customer_id, email, at, ip_hash)


async def signup_result(conn: asyncpg.Connection, merchant_id: int, customer_id: str) -> dict:
    return await conn.fetchval(SIGNUP_RESULT, merchant_id, customer_id)


async def set_signup_result(
    conn: asyncpg.Connection,
    merchant_id: int,
    signup_pk: int,
    referral_id: int | None,
    result: dict,
) -> None:
    await conn.execute(SET_SIGNUP_RESULT, merchant_id, signup_pk, referral_id, result)


async def code_target(conn: asyncpg.Connection, key: str, merchant_id: int) -> CodeTarget | None:
    return one(CodeTarget, await conn.fetchrow(CODE_TARGET, key, merchant_id))


async def program(conn: asyncpg.Connection, merchant_id: int, program_id: int) -> ProgramTerms:
    return ProgramTerms(**await conn.fetchrow(PROGRAM, merchant_id, program_id))


async def advocate(
    conn: asyncpg.Connection, merchant_id: int, advocate_id: int, *, lock: bool = False
) -> AdvocateIdentity:
    """The advocate; `lock` serialises orders that count towards its caps and tiers. NO KEY
    UPDATE, because the referral just inserted holds a key-share lock on this row through its
    foreign key: FOR UPDATE would deadlock two friends' orders of one advocate."""
    row = await conn.fetchrow(
        ADVOCATE + (" FOR NO KEY UPDATE" if lock else ""), merchant_id, advocate_id
    )
    return AdvocateIdentity(**row)


async def bought_before(
    conn: asyncpg.Connection,
    merchant_id: int,
    order_pk: int,
    customer_id: str | None,
    email: str | None,
    at: datetime,
) -> bool:
    return await conn.fetchval(BOUGHT_BEFORE, merchant_id, order_pk, customer_id, email, at)


async def has_orders(
    conn: asyncpg.Connection, merchant_id: int, customer_id: str | None, email: str | None
) -> bool:
    return await conn.fetchval(HAS_ORDERS, merchant_id, customer_id, email)


async def first_order(conn: asyncpg.Connection, merchant_id: int, order_pk: int) -> FirstOrder:
    return FirstOrder(**await conn.fetchrow(FIRST_ORDER, merchant_id, order_pk))


async def order_ids_of(
    conn: asyncpg.Connection, merchant_id: int, order_pks: list[int]
) -> dict[int, str]:
    """The shop's order ids of these orders, by internal id."""
    if not order_pks:
        return {}
    return {r["id"]: r["order_id"] for r in await conn.fetch(ORDER_IDS_OF, merchant_id, order_pks)}


async def lock_friend(conn: asyncpg.Connection, merchant_id: int, keys: list[str]) -> None:
    """Serialise everything about one friend: concurrent orders of one friend attribute once.
    Keys are locked in sorted order so two calls never deadlock."""
    await conn.fetchval(LOCK_FRIEND, [f"friend|{key}" for key in sorted(keys)], merchant_id)


async def set_reviewed(
    conn: asyncpg.Connection,
    merchant_id: int,
    referral_id: int,
    status: str,
    rejection_reason: str | None,
) -> None:
    await conn.execute(SET_REVIEWED, merchant_id, referral_id, status, rejection_reason)


async def insert_review(conn: asyncpg.Connection, *values: Any) -> None:
    await conn.execute(INSERT_REVIEW, *values)


async def last_rejection(
    conn: asyncpg.Connection, merchant_id: int, referral_id: int
) -> Rejection | None:
    """The latest reject of a referral: the rewards it reversed and the status it ended."""
    row = await conn.fetchrow(LAST_REJECTION, merchant_id, referral_id)
    return None if row is None else Rejection(list(row["reward_ids"]), row["from_status"])


async def reviews(
    conn: asyncpg.Connection, merchant_id: int, referral_ids: list[int]
) -> list[ReviewRow]:
    return many(ReviewRow, await conn.fetch(REVIEWS, merchant_id, referral_ids))


class CustomerReferralKey(msgspec.Struct, frozen=True):
    id: int
    friend_customer_id: str | None
    friend_email_normalised: str | None
    visitor_id: str | None


class CustomerReferralRow(msgspec.Struct, frozen=True):
    id: int
    program_id: int
    advocate_id: int
    friend_customer_id: str | None
    friend_email_normalised: str | None
    status: str
    source: str
    rejection_reason: str | None
    attribution: dict[str, Any]
    fraud: dict[str, Any] | None
    created_at: datetime
    signed_up_at: datetime | None
    converted_at: datetime | None


class MadeReferralRow(msgspec.Struct, frozen=True):
    id: int
    program_id: int
    advocate_id: int
    status: str
    source: str
    rejection_reason: str | None
    created_at: datetime
    signed_up_at: datetime | None
    converted_at: datetime | None


class CustomerSignupRow(msgspec.Struct, frozen=True):
    id: int
    customer_id: str
    email_normalised: str | None
    occurred_at: datetime
    referral_id: int | None


async def customer_referral_keys(
    conn: asyncpg.Connection, merchant_id: int, customer_id: str, emails: list[str]
) -> list[CustomerReferralKey]:
    rows = await conn.fetch(CUSTOMER_REFERRAL_KEYS, merchant_id, customer_id, emails)
    return many(CustomerReferralKey, rows)


async def customer_referrals(
    conn: asyncpg.Connection, merchant_id: int, customer_id: str, emails: list[str]
) -> list[CustomerReferralRow]:
    rows = await conn.fetch(CUSTOMER_REFERRALS, merchant_id, customer_id, emails)
    return many(CustomerReferralRow, rows)


async def referrals_made(
    conn: asyncpg.Connection, merchant_id: int, advocate_ids: list[int]
) -> list[MadeReferralRow]:
    return many(MadeReferralRow, await conn.fetch(REFERRALS_MADE, merchant_id, advocate_ids))


async def customer_signups(
    conn: asyncpg.Connection, merchant_id: int, customer_id: str
) -> list[CustomerSignupRow]:
    return many(CustomerSignupRow, await conn.fetch(CUSTOMER_SIGNUPS, merchant_id, customer_id))


async def erase_friend_referrals(conn: asyncpg.Connection, merchant_id: int, *values: Any) -> int:
    return await conn.fetchval(ERASE_FRIEND_REFERRALS, merchant_id, *values)


async def erase_made_referrals(conn: asyncpg.Connection, merchant_id: int, *values: Any) -> int:
    return await conn.fetchval(ERASE_MADE_REFERRALS, merchant_id, *values)


async def erase_signups(conn: asyncpg.Connection, merchant_id: int, *values: Any) -> int:
    return await conn.fetchval(ERASE_SIGNUPS, merchant_id, *values)


async def scrub_review_notes(
    conn: asyncpg.Connection, merchant_id: int, values: list[str], note: str
) -> int:
    return await conn.fetchval(SCRUB_REVIEW_NOTES, merchant_id, values, note)
