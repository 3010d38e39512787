"""SQL for the outbox: events are written in the transaction of the change they announce."""

from __future__ import annotations

from typing import Any

import asyncpg

INSERT = "INSERT INTO events (merchant_id, type, data) VALUES ($1, $2, $3)"

LIST = """
SELECT id, type, data, created_at FROM events
WHERE merchant_id = $1 AND ($2::text IS NULL OR type = $2) AND ($3::bigint IS NULL OR id > $3)
ORDER BY id
LIMIT $4
"""


async def emit(
    conn: asyncpg.Connection, merchant_id: int, type_: str, data: dict[str, Any]
) -> None:
    await conn.execute(INSERT, merchant_id, type_, data)


async def list_after(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    type_: str | None,
    after_id: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    return await conn.fetch(LIST, merchant_id, type_, after_id, limit + 1)
