"""SQL for the demo seed: what tells that the demo already exists."""

from __future__ import annotations

import asyncpg

# Transaction-scoped: instances starting at once seed one after the other.
SEED_LOCK = "SELECT pg_advisory_xact_lock(hashtext('referral.seed_demo'))"

FIRST_PROGRAM = "SELECT id FROM programs WHERE merchant_id = $1 ORDER BY id LIMIT 1"

# The demo merchant and its twin in the other mode (one account, a merchant per mode).
TWINS = """
SELECT mode, id FROM merchants
WHERE account_id = (SELECT account_id FROM merchants WHERE id = $1)
ORDER BY mode DESC
"""

STORY_SLUG = "SELECT slug FROM stories WHERE merchant_id = $1 AND advocate_id = $2 LIMIT 1"


async def lock_seed(conn: asyncpg.Connection) -> None:
    await conn.execute(SEED_LOCK)


async def first_program(conn: asyncpg.Connection, merchant_id: int) -> int | None:
    return await conn.fetchval(FIRST_PROGRAM, merchant_id)


async def story_slug(conn: asyncpg.Connection, merchant_id: int, advocate_id: int) -> str | None:
    return await conn.fetchval(STORY_SLUG, merchant_id, advocate_id)


async def twins(conn: asyncpg.Connection, merchant_id: int) -> dict[str, int]:
    """Mode to merchant id for the merchant's account, test mode first."""
    return {row["mode"]: row["id"] for row in await conn.fetch(TWINS, merchant_id)}
