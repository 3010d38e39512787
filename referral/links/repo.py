"""SQL for resolving codes to their program's link settings."""

from __future__ import annotations

import asyncpg

RESOLVE_CODE = """
SELECT c.code, c.merchant_id, c.program_id, c.advocate_id,
       c.status = 'active' AND p.status = 'active' AND p.starts_at <= now() AS active,
       p.landing_url, p.fallback_url, p.qr_foreground, p.qr_background
FROM codes c JOIN programs p ON p.id = c.program_id
WHERE c.lookup_key = $1
"""


async def resolve_code(conn: asyncpg.Pool | asyncpg.Connection, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(RESOLVE_CODE, key)
