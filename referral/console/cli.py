"""`referral console-link`: print a one-time sign-in link to a merchant's console."""

from __future__ import annotations

from referral.console import service
from referral.lib.db import create_pool, migrate
from referral.lib.ids import PublicIds
from referral.merchants import service as merchants
from referral.settings import Settings


async def sign_in_link(settings: Settings, merchant: str | None, key: str | None) -> str:
    ids = PublicIds(settings.hashids_salt)
    await migrate(settings.direct_database_url)
    pool = await create_pool(
        settings.database_url, pooling=settings.database_pooling, min_size=1, max_size=1
    )
    try:
        async with pool.acquire() as conn, conn.transaction():
            caller = await merchants.resolve(conn, ids=ids, merchant=merchant, key=key)
            return await service.create_sign_in_link(
                conn, ids=ids, settings=settings, merchant_id=caller.merchant_id
            )
    finally:
        await pool.close()
