"""SQL for the console's sign-in links and sessions (migration 0013)."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from referral.lib.db import one

INSERT_SIGN_IN_LINK = """
INSERT INTO console_sign_in_links (merchant_id, token_hash, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))
"""

# Read only: the sign-in page checks the link before asking for a name, and a link preview
# (chat apps fetch links) must not use it up.
SIGN_IN_LINK_USABLE = """
SELECT used_at IS NULL AND expires_at > now()
FROM console_sign_in_links WHERE merchant_id = $1 AND token_hash = $2
"""

# One UPDATE: of two tabs racing on one link, one gets the row.
REDEEM_SIGN_IN_LINK = """
UPDATE console_sign_in_links SET used_at = now()
WHERE merchant_id = $1 AND token_hash = $2 AND used_at IS NULL AND expires_at > now()
RETURNING merchant_id
"""

INSERT_SESSION = """
INSERT INTO console_sessions (merchant_id, secret_hash, actor, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
RETURNING expires_at
"""

SESSION = """
SELECT actor, expires_at FROM console_sessions
WHERE merchant_id = $1 AND secret_hash = $2 AND signed_out_at IS NULL AND expires_at > now()
"""

END_SESSION = """
UPDATE console_sessions SET signed_out_at = now()
WHERE merchant_id = $1 AND secret_hash = $2 AND signed_out_at IS NULL
"""


class SessionRow(msgspec.Struct, frozen=True):
    actor: str
    expires_at: datetime


async def insert_sign_in_link(
    conn: asyncpg.Connection, merchant_id: int, token_hash: bytes, lifetime_seconds: float
) -> None:
    await conn.execute(INSERT_SIGN_IN_LINK, merchant_id, token_hash, lifetime_seconds)


async def sign_in_link_usable(
    conn: asyncpg.Connection, merchant_id: int, token_hash: bytes
) -> bool:
    return bool(await conn.fetchval(SIGN_IN_LINK_USABLE, merchant_id, token_hash))


async def redeem_sign_in_link(
    conn: asyncpg.Connection, merchant_id: int, token_hash: bytes
) -> bool:
    return await conn.fetchval(REDEEM_SIGN_IN_LINK, merchant_id, token_hash) is not None


async def insert_session(
    conn: asyncpg.Connection, merchant_id: int, secret_hash: bytes, actor: str, seconds: float
) -> datetime:
    return await conn.fetchval(INSERT_SESSION, merchant_id, secret_hash, actor, seconds)


async def session(
    conn: asyncpg.Connection, merchant_id: int, secret_hash: bytes
) -> SessionRow | None:
    return one(SessionRow, await conn.fetchrow(SESSION, merchant_id, secret_hash))


async def end_session(conn: asyncpg.Connection, merchant_id: int, secret_hash: bytes) -> None:
    await conn.execute(END_SESSION, merchant_id, secret_hash)
