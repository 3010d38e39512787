"""SQL for the audit log. The only statements on `audit_log` are these: an insert and reads
(a trigger refuses updates and deletes from anywhere)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from referral.lib.db import many
from referral.lib.pagination import CURSOR_CLAUSE, Cursor

# Before and after arrive as JSON text: the command line's plain connections have no codec.
INSERT = """
INSERT INTO audit_log (merchant_id, actor_type, key_id, actor, action, subject_type,
                       subject_id, before, after, request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb, $9::text::jsonb, $10)
"""

# $2 action (or its category: `reward` is every `reward.…`), $7 subject type, $8 subject
# id, $9 key id.
LIST = f"""
SELECT t.id, t.created_at, t.actor_type, t.key_id, t.actor, t.action, t.subject_type,
       t.subject_id, t.before::text AS before, t.after::text AS after, t.request_id
FROM audit_log t
WHERE t.merchant_id = $1
  AND ($2::text IS NULL OR t.action = $2 OR t.action LIKE $2 || '.%')
  AND ($7::text IS NULL OR t.subject_type = $7)
  AND ($8::text IS NULL OR t.subject_id = $8)
  AND ($9::bigint IS NULL OR t.key_id = $9)
{CURSOR_CLAUSE.format(table="audit_log")}
ORDER BY t.created_at, t.id
LIMIT $6
"""


class AuditRow(msgspec.Struct, frozen=True):
    id: int
    created_at: datetime
    actor_type: str
    key_id: int | None
    actor: str
    action: str
    subject_type: str
    subject_id: str
    before: str | None
    after: str | None
    request_id: str | None


async def insert(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    actor_type: str,
    key_id: int | None,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    before: str | None,
    after: str | None,
    request_id: str | None,
) -> None:
    await conn.execute(
        INSERT,
        merchant_id,
        actor_type,
        key_id,
        actor,
        action,
        subject_type,
        subject_id,
        before,
        after,
        request_id,
    )


async def entries(
    conn: asyncpg.Connection,
    merchant_id: int,
    *,
    cursor: Cursor,
    action: str | None,
    subject_type: str | None,
    subject_id: str | None,
    key_id: int | None,
) -> list[AuditRow]:
    filters: tuple[Any, ...] = (subject_type, subject_id, key_id)
    rows = await conn.fetch(LIST, merchant_id, action, *cursor.params, *filters)
    return many(AuditRow, rows)
