"""SQL for advocates and their codes. Every statement is scoped by merchant_id."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from referral.lib.db import many, one
from referral.lib.pagination import CURSOR_CLAUSE, Cursor

UPSERT = """
INSERT INTO advocates AS a (merchant_id, program_id, customer_id, email, name)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (merchant_id, program_id, customer_id) DO UPDATE
SET email = coalesce(excluded.email, a.email), name = coalesce(excluded.name, a.name)
RETURNING id, (xmax = 0) AS created
"""

INSERT_CODE = """
INSERT INTO codes (lookup_key, code, merchant_id, program_id, advocate_id, kind)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (lookup_key) DO NOTHING
RETURNING lookup_key
"""

CODE_OWNER = "SELECT merchant_id, advocate_id FROM codes WHERE lookup_key = $1"

# Advocates from the service the shop switched from (referral/imports/), a batch at a time:
# an advocate already here is kept as it is.
IMPORT_ADVOCATES = """
INSERT INTO advocates (merchant_id, program_id, customer_id, email, name)
SELECT $1, $2, a.customer_id, a.email, a.name
FROM unnest($3::text[], $4::text[], $5::text[]) AS a(customer_id, email, name)
ON CONFLICT (merchant_id, program_id, customer_id) DO NOTHING
RETURNING id, customer_id
"""

ADVOCATES_OF = """
SELECT id, customer_id FROM advocates
WHERE merchant_id = $1 AND program_id = $2 AND customer_id = ANY($3::text[])
"""

# Codes are one namespace across merchants: a key held anywhere is taken.
CODE_OWNERS = """
SELECT lookup_key, code, merchant_id, advocate_id FROM codes WHERE lookup_key = ANY($1::text[])
"""

INSERT_CODES = """
INSERT INTO codes (lookup_key, code, merchant_id, program_id, advocate_id, kind)
SELECT c.lookup_key, c.code, $1, $2, c.advocate_id, c.kind
FROM unnest($3::text[], $4::text[], $5::bigint[], $6::text[])
     AS c(lookup_key, code, advocate_id, kind)
ON CONFLICT (lookup_key) DO NOTHING
RETURNING lookup_key
"""

COLUMNS = """t.id, t.program_id, t.customer_id, t.email, t.name, t.created_at, t.contact_preference,
  t.suspended_at,
  (SELECT coalesce(array_agg(c.code ORDER BY c.created_at, c.code), '{}') FROM codes c
    WHERE c.merchant_id = t.merchant_id AND c.advocate_id = t.id AND c.kind = 'vanity'
      AND c.status = 'active') AS vanity_codes,
  (SELECT coalesce(sum(r.clicks), 0)::bigint FROM click_rollups r
    WHERE r.merchant_id = t.merchant_id AND r.advocate_id = t.id) AS clicks,
  (SELECT coalesce(sum(r.unique_clicks), 0)::bigint FROM click_rollups r
    WHERE r.merchant_id = t.merchant_id AND r.advocate_id = t.id) AS unique_clicks"""

GET = f"SELECT {COLUMNS} FROM advocates t WHERE t.merchant_id = $1 AND t.id = $2"

LIST = f"""
SELECT {COLUMNS} FROM advocates t
WHERE t.merchant_id = $1 AND ($2::bigint IS NULL OR t.program_id = $2)
{CURSOR_CLAUSE.format(table="advocates")}
ORDER BY t.created_at, t.id
LIMIT $6
"""

# A person looking someone up types what they have: the shop's customer id, an email (any
# case) or a code (as printed, or as a person misreads it: found by its lookup key).
# Three indexed lookups, not one OR: an OR over the table is a scan of every advocate.
SEARCH = f"""
SELECT {COLUMNS} FROM advocates t
WHERE t.merchant_id = $1
  AND t.id IN (SELECT a.id FROM advocates a WHERE a.merchant_id = $1 AND a.customer_id = $2
               UNION
               SELECT a.id FROM advocates a
               WHERE a.merchant_id = $1 AND lower(a.email) = lower($2)
               UNION
               SELECT c.advocate_id FROM codes c WHERE c.merchant_id = $1 AND c.lookup_key = $3)
ORDER BY t.created_at, t.id
LIMIT $4
"""

NAMES = """
SELECT id, coalesce(name, customer_id) FROM advocates WHERE merchant_id = $1 AND id = ANY($2)
"""

PROGRAM_STATUS = "SELECT status FROM programs WHERE merchant_id = $1 AND id = $2"

CODE_INFO = """
SELECT c.code, c.program_id, c.status = 'active' AS code_active, p.status AS program_status,
       p.starts_at, p.ends_at
FROM codes c JOIN programs p ON p.merchant_id = c.merchant_id AND p.id = c.program_id
WHERE c.lookup_key = $1 AND c.merchant_id = $2
"""


SET_CONTACT_PREFERENCE = """
UPDATE advocates SET contact_preference = $3 WHERE merchant_id = $1 AND id = $2 RETURNING id
"""


SUSPEND_CODES = """
WITH advocate AS (
    UPDATE advocates SET suspended_at = now()
    WHERE merchant_id = $1 AND id = $2 AND suspended_at IS NULL
)
UPDATE codes SET status = 'disabled'
WHERE merchant_id = $1 AND advocate_id = $2 AND status = 'active'
RETURNING code
"""

# Codes are only ever disabled by a suspension, so reactivating enables them all.
REACTIVATE = """
WITH advocate AS (
    UPDATE advocates SET suspended_at = NULL, reactivated_at = now()
    WHERE merchant_id = $1 AND id = $2 AND suspended_at IS NOT NULL
    RETURNING id
)
UPDATE codes SET status = 'active'
WHERE merchant_id = $1 AND advocate_id = (SELECT id FROM advocate) AND status = 'disabled'
RETURNING code
"""

# --- a customer's data rights (referral/customers/): their advocates, found by the shop's
# customer id (one per program), and their codes.
CUSTOMER_ADVOCATES = """
SELECT id, program_id, customer_id, email, name, contact_preference, created_at, suspended_at,
       reactivated_at, first_shared_at
FROM advocates WHERE merchant_id = $1 AND customer_id = $2
ORDER BY created_at, id
"""

CUSTOMER_CODES = """
SELECT advocate_id, code, kind, status, created_at FROM codes
WHERE merchant_id = $1 AND advocate_id = ANY($2::bigint[])
ORDER BY advocate_id, created_at, code
"""

# The profile's personal data replaced; `$3` the customer id's tombstone. Nobody is left to
# tell about rewards, so their contact preference becomes `none`.
ERASE_ADVOCATES = """
WITH erased AS (
    UPDATE advocates SET customer_id = $3, email = NULL, name = NULL, contact_preference = 'none',
        erased_at = now()
    WHERE merchant_id = $1 AND id = ANY($2::bigint[])
    RETURNING 1
)
SELECT count(*) FROM erased
"""

# Every code disabled; a vanity code (it may spell the person's name) replaced by its
# tombstone (`$3` the codes, `$4` their tombstones), which no typed code can ever match
# (lookups are upper-case letters and digits), and which frees the name for someone else.
ERASE_CODES = """
WITH erased AS (
    UPDATE codes c SET status = 'disabled',
        lookup_key = coalesce(($4::text[])[array_position($3::text[], c.code)], c.lookup_key),
        code = coalesce(($4::text[])[array_position($3::text[], c.code)], c.code)
    WHERE c.merchant_id = $1 AND c.advocate_id = ANY($2::bigint[])
    RETURNING 1
)
SELECT count(*) FROM erased
"""


class Upserted(msgspec.Struct, frozen=True):
    id: int
    created: bool


class CodeOwner(msgspec.Struct, frozen=True):
    merchant_id: int
    advocate_id: int


class AdvocateRow(msgspec.Struct, frozen=True):
    id: int
    program_id: int
    customer_id: str
    email: str | None
    name: str | None
    created_at: datetime
    contact_preference: str
    suspended_at: datetime | None
    vanity_codes: list[str]
    clicks: int
    unique_clicks: int


class CodeInfoRow(msgspec.Struct, frozen=True):
    code: str
    program_id: int
    code_active: bool
    program_status: str
    starts_at: datetime
    ends_at: datetime | None


async def suspend_codes(conn: asyncpg.Connection, merchant_id: int, advocate_id: int) -> list[str]:
    return [r["code"] for r in await conn.fetch(SUSPEND_CODES, merchant_id, advocate_id)]


async def reactivate(conn: asyncpg.Connection, merchant_id: int, advocate_id: int) -> list[str]:
    return [r["code"] for r in await conn.fetch(REACTIVATE, merchant_id, advocate_id)]


async def set_contact_preference(
    conn: asyncpg.Connection, merchant_id: int, advocate_id: int, preference: str
) -> bool:
    """False when the merchant has no such advocate."""
    return (
        await conn.fetchval(SET_CONTACT_PREFERENCE, merchant_id, advocate_id, preference)
        is not None
    )


async def program_status(conn: asyncpg.Connection, merchant_id: int, program_id: int) -> str | None:
    return await conn.fetchval(PROGRAM_STATUS, merchant_id, program_id)


async def upsert(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    email: str | None,
    name: str | None,
) -> Upserted:
    row = await conn.fetchrow(UPSERT, merchant_id, program_id, customer_id, email, name)
    return Upserted(**row)


async def insert_code(
    conn: asyncpg.Connection,
    key: str,
    code: str,
    merchant_id: int,
    program_id: int,
    advocate_id: int,
    kind: str,
) -> bool:
    return (
        await conn.fetchval(INSERT_CODE, key, code, merchant_id, program_id, advocate_id, kind)
        is not None
    )


async def code_owner(conn: asyncpg.Connection, key: str) -> CodeOwner | None:
    return one(CodeOwner, await conn.fetchrow(CODE_OWNER, key))


async def get(conn: asyncpg.Connection, merchant_id: int, advocate_id: int) -> AdvocateRow | None:
    return one(AdvocateRow, await conn.fetchrow(GET, merchant_id, advocate_id))


async def list_page(
    conn: asyncpg.Connection, merchant_id: int, *, program_id: int | None, cursor: Cursor
) -> list[AdvocateRow]:
    return many(AdvocateRow, await conn.fetch(LIST, merchant_id, program_id, *cursor.params))


async def search(
    conn: asyncpg.Connection, merchant_id: int, text: str, key: str, limit: int
) -> list[AdvocateRow]:
    return many(AdvocateRow, await conn.fetch(SEARCH, merchant_id, text, key, limit))


async def names(
    conn: asyncpg.Connection, merchant_id: int, advocate_ids: list[int]
) -> dict[int, str]:
    return dict(await conn.fetch(NAMES, merchant_id, advocate_ids))


async def code_info(conn: asyncpg.Connection, key: str, merchant_id: int) -> CodeInfoRow | None:
    return one(CodeInfoRow, await conn.fetchrow(CODE_INFO, key, merchant_id))


class CustomerAdvocateRow(msgspec.Struct, frozen=True):
    id: int
    program_id: int
    customer_id: str
    email: str | None
    name: str | None
    contact_preference: str
    created_at: datetime
    suspended_at: datetime | None
    reactivated_at: datetime | None
    first_shared_at: datetime | None


class CustomerCodeRow(msgspec.Struct, frozen=True):
    advocate_id: int
    code: str
    kind: str
    status: str
    created_at: datetime


async def customer_advocates(
    conn: asyncpg.Connection, merchant_id: int, customer_id: str
) -> list[CustomerAdvocateRow]:
    return many(CustomerAdvocateRow, await conn.fetch(CUSTOMER_ADVOCATES, merchant_id, customer_id))


async def customer_codes(
    conn: asyncpg.Connection, merchant_id: int, advocate_ids: list[int]
) -> list[CustomerCodeRow]:
    return many(CustomerCodeRow, await conn.fetch(CUSTOMER_CODES, merchant_id, advocate_ids))


async def erase_advocates(
    conn: asyncpg.Connection, merchant_id: int, advocate_ids: list[int], tombstone: str
) -> int:
    return await conn.fetchval(ERASE_ADVOCATES, merchant_id, advocate_ids, tombstone)


async def erase_codes(
    conn: asyncpg.Connection,
    merchant_id: int,
    advocate_ids: list[int],
    vanity_codes: list[str],
    tombstones: list[str],
) -> int:
    return await conn.fetchval(ERASE_CODES, merchant_id, advocate_ids, vanity_codes, tombstones)


class CodeOwnerRow(msgspec.Struct, frozen=True):
    lookup_key: str
    code: str
    merchant_id: int
    advocate_id: int


async def import_advocates(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    customer_ids: list[str],
    emails: list[str | None],
    names: list[str | None],
) -> dict[str, int]:
    """The advocates inserted now: their id by customer id."""
    rows = await conn.fetch(IMPORT_ADVOCATES, merchant_id, program_id, customer_ids, emails, names)
    return {r["customer_id"]: r["id"] for r in rows}


async def advocates_of(
    conn: asyncpg.Connection, merchant_id: int, program_id: int, customer_ids: list[str]
) -> dict[str, int]:
    rows = await conn.fetch(ADVOCATES_OF, merchant_id, program_id, customer_ids)
    return {r["customer_id"]: r["id"] for r in rows}


async def code_owners(conn: asyncpg.Connection, keys: list[str]) -> dict[str, CodeOwnerRow]:
    return {r["lookup_key"]: CodeOwnerRow(**r) for r in await conn.fetch(CODE_OWNERS, keys)}


async def insert_codes(
    conn: asyncpg.Connection,
    merchant_id: int,
    program_id: int,
    codes: list[tuple[str, str, int, str]],
) -> set[str]:
    """(lookup key, code, advocate id, kind) each; the keys inserted now."""
    if not codes:
        return set()
    keys, texts, advocate_ids, kinds = (list(c) for c in zip(*codes, strict=True))
    rows = await conn.fetch(INSERT_CODES, merchant_id, program_id, keys, texts, advocate_ids, kinds)
    return {r["lookup_key"] for r in rows}
