"""SQL for imports: the job, its staged lines, its error report and the customers it brought.
Every statement names its merchant but the worker's queue (NEXT_WAITING), which takes work
of every merchant."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import asyncpg
import msgspec

from referral.lib.db import many, one
from referral.lib.pagination import CURSOR_CLAUSE, Cursor

JOB_COLUMNS = """merchant_id, id, kind, format, program_id, status, columns, lines, bytes,
  next_line, lines_read, created, unchanged, failed, failure, created_at, started_at,
  finished_at"""

INSERT_IMPORT = f"""
INSERT INTO imports (merchant_id, kind, format, program_id) VALUES ($1, $2, $3, $4)
RETURNING {JOB_COLUMNS}
"""

SET_STAGED = """
UPDATE imports SET lines = $3, bytes = $4, columns = $5
WHERE merchant_id = $1 AND id = $2 AND status = 'receiving'
"""

QUEUE = """
UPDATE imports SET status = 'queued' WHERE merchant_id = $1 AND id = $2 AND status = 'receiving'
"""

DISCARD_LINES = "DELETE FROM import_lines WHERE merchant_id = $1 AND import_id = $2"
DISCARD_IMPORT = "DELETE FROM imports WHERE merchant_id = $1 AND id = $2 AND status = 'receiving'"

GET = f"SELECT {JOB_COLUMNS} FROM imports WHERE merchant_id = $1 AND id = $2"

# $2 kind, $6 status (either NULL: any), $3-$5 and $7 the cursor's.
LIST = f"""
SELECT {JOB_COLUMNS} FROM imports t
WHERE t.merchant_id = $1 AND ($2::text IS NULL OR t.kind = $2)
  AND ($6::text IS NULL OR t.status = $6)
{CURSOR_CLAUSE.format(table="imports")}
ORDER BY t.created_at, t.id
LIMIT $7
"""

# The worker's queue: the oldest unfinished import no other worker holds, of any merchant.
# Held (FOR UPDATE) for one batch's transaction; the next batch may be another worker's.
NEXT_WAITING = f"""
SELECT {JOB_COLUMNS} FROM imports
WHERE status IN ('queued', 'running')
ORDER BY created_at, id
LIMIT 1
FOR UPDATE SKIP LOCKED
"""

TAKE = f"""
SELECT {JOB_COLUMNS} FROM imports
WHERE merchant_id = $1 AND id = $2 AND status IN ('queued', 'running')
FOR UPDATE SKIP LOCKED
"""

BATCH = """
SELECT line_no, raw FROM import_lines
WHERE merchant_id = $1 AND import_id = $2 AND line_no >= $3
ORDER BY line_no
LIMIT $4::int
"""

ADVANCE = """
UPDATE imports SET status = 'running', started_at = coalesce(started_at, now()),
       next_line = $3, lines_read = lines_read + $4, created = created + $5,
       unchanged = unchanged + $6, failed = failed + $7
WHERE merchant_id = $1 AND id = $2
"""

FINISH = """
UPDATE imports SET status = $3, failure = $4, finished_at = now(),
       started_at = coalesce(started_at, now())
WHERE merchant_id = $1 AND id = $2
"""

INSERT_ERRORS = """
INSERT INTO import_errors (merchant_id, import_id, line_no, code, message)
SELECT $1, $2, e.line_no, e.code, e.message
FROM unnest($3::bigint[], $4::text[], $5::text[]) AS e(line_no, code, message)
ON CONFLICT DO NOTHING
"""

ERRORS = """
SELECT line_no, code, message FROM import_errors
WHERE merchant_id = $1 AND import_id = $2 AND line_no > $3
ORDER BY line_no
LIMIT $4::int
"""

INSERT_CUSTOMERS = """
WITH added AS (
    INSERT INTO imported_customers (merchant_id, customer_id, email_normalised, import_id)
    SELECT $1, c.customer_id, c.email, $2
    FROM unnest($3::text[], $4::text[]) AS c(customer_id, email)
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM added
"""

# --- a customer's data rights (referral/customers/) ---------------------------------------
CUSTOMER = """
SELECT k.id, k.customer_id, k.email_normalised, k.import_id, k.created_at
FROM imported_customers k
WHERE k.merchant_id = $1 AND (k.customer_id = $2 OR k.email_normalised = ANY($3::text[]))
ORDER BY k.id
"""

ERASE_CUSTOMER = """
WITH erased AS (
    DELETE FROM imported_customers k
    WHERE k.merchant_id = $1 AND k.id = ANY($2::bigint[])
    RETURNING 1
)
SELECT count(*) FROM erased
"""


class JobRow(msgspec.Struct, frozen=True):
    merchant_id: int
    id: int
    kind: str
    format: str
    program_id: int | None
    status: str
    columns: list[str] | None
    lines: int
    bytes: int
    next_line: int
    lines_read: int
    created: int
    unchanged: int
    failed: int
    failure: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ErrorRow(msgspec.Struct, frozen=True):
    line_no: int
    code: str
    message: str


class KnownCustomerRow(msgspec.Struct, frozen=True):
    id: int
    customer_id: str | None
    email_normalised: str | None
    import_id: int
    created_at: datetime


async def insert_import(
    conn: asyncpg.Connection, merchant_id: int, kind: str, fmt: str, program_id: int | None
) -> JobRow:
    return JobRow(**await conn.fetchrow(INSERT_IMPORT, merchant_id, kind, fmt, program_id))


async def stage_lines(
    conn: asyncpg.Connection, merchant_id: int, import_id: int, lines: list[tuple[int, str]]
) -> None:
    await conn.copy_records_to_table(
        "import_lines",
        records=[(merchant_id, import_id, n, raw) for n, raw in lines],
        columns=("merchant_id", "import_id", "line_no", "raw"),
    )


async def set_staged(
    conn: asyncpg.Connection,
    merchant_id: int,
    import_id: int,
    lines: int,
    size: int,
    columns: list[str] | None,
) -> None:
    await conn.execute(SET_STAGED, merchant_id, import_id, lines, size, columns)


async def queue(conn: asyncpg.Connection, merchant_id: int, import_id: int) -> None:
    await conn.execute(QUEUE, merchant_id, import_id)


async def discard(conn: asyncpg.Connection, merchant_id: int, import_id: int) -> None:
    await conn.execute(DISCARD_LINES, merchant_id, import_id)
    await conn.execute(DISCARD_IMPORT, merchant_id, import_id)


async def get(conn: asyncpg.Connection, merchant_id: int, import_id: int) -> JobRow | None:
    return one(JobRow, await conn.fetchrow(GET, merchant_id, import_id))


async def list_page(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    kind: str | None,
    status: str | None,
    cursor: Cursor,
) -> list[JobRow]:
    after, created_from, created_before, fetch = cursor.params
    rows = await conn.fetch(
        LIST, merchant_id, kind, after, created_from, created_before, status, fetch
    )
    return many(JobRow, rows)


async def next_waiting(conn: asyncpg.Connection) -> JobRow | None:
    return one(JobRow, await conn.fetchrow(NEXT_WAITING))


async def take(conn: asyncpg.Connection, merchant_id: int, import_id: int) -> JobRow | None:
    return one(JobRow, await conn.fetchrow(TAKE, merchant_id, import_id))


async def batch(
    conn: asyncpg.Connection, merchant_id: int, import_id: int, start: int, size: int
) -> list[tuple[int, str]]:
    return [tuple(r) for r in await conn.fetch(BATCH, merchant_id, import_id, start, size)]


async def advance(
    conn: asyncpg.Connection,
    merchant_id: int,
    import_id: int,
    *,
    next_line: int,
    read: int,
    created: int,
    unchanged: int,
    failed: int,
) -> None:
    await conn.execute(ADVANCE, merchant_id, import_id, next_line, read, created, unchanged, failed)


async def finish(
    conn: asyncpg.Connection, merchant_id: int, import_id: int, status: str, failure: str | None
) -> None:
    await conn.execute(FINISH, merchant_id, import_id, status, failure)
    await conn.execute(DISCARD_LINES, merchant_id, import_id)


async def insert_errors(
    conn: asyncpg.Connection,
    merchant_id: int,
    import_id: int,
    errors: Iterable[tuple[int, str, str]],
) -> None:
    rows = list(errors)
    if rows:
        line_nos, codes, messages = (list(column) for column in zip(*rows, strict=True))
        await conn.execute(INSERT_ERRORS, merchant_id, import_id, line_nos, codes, messages)


async def errors(
    conn: asyncpg.Connection, merchant_id: int, import_id: int, after_line: int, limit: int
) -> list[ErrorRow]:
    return many(ErrorRow, await conn.fetch(ERRORS, merchant_id, import_id, after_line, limit))


async def insert_customers(
    conn: asyncpg.Connection,
    merchant_id: int,
    import_id: int,
    customer_ids: list[str | None],
    emails: list[str | None],
) -> int:
    return await conn.fetchval(INSERT_CUSTOMERS, merchant_id, import_id, customer_ids, emails)


async def known_customer(
    conn: asyncpg.Connection, merchant_id: int, customer_id: str, emails: list[str]
) -> list[KnownCustomerRow]:
    return many(KnownCustomerRow, await conn.fetch(CUSTOMER, merchant_id, customer_id, emails))


async def erase_known_customer(conn: asyncpg.Connection, merchant_id: int, ids: list[int]) -> int:
    return await conn.fetchval(ERASE_CUSTOMER, merchant_id, ids)
