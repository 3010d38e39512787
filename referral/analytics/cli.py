"""`referral analytics rebuild`: recompute every rollup from the raw rows and prove that the
kept ones agree (or, with --apply, replace them: after a time zone change or a fixed bug)."""

from __future__ import annotations

from referral.analytics import service
from referral.lib.db import create_pool, migrate
from referral.lib.ids import PublicIds
from referral.merchants import service as merchants
from referral.settings import Settings


async def rebuild(
    settings: Settings, merchant: str | None, key: str | None, *, apply: bool
) -> bool:
    """Prints one line per merchant and rollup; True when every rollup agreed."""
    await migrate(settings.direct_database_url)
    ids = PublicIds(settings.hashids_salt)
    pool = await create_pool(
        settings.database_url, pooling=settings.database_pooling, min_size=1, max_size=2
    )
    try:
        merchant_id = None
        if merchant or key:
            async with pool.acquire() as conn:
                caller = await merchants.resolve(conn, ids=ids, merchant=merchant, key=key)
            merchant_id = caller.merchant_id
        results = await service.rebuild(pool, ids=ids, apply=apply, merchant_id=merchant_id)
    finally:
        await pool.close()
    for result in results:
        public = ids.encode("merchant", result.merchant_id)
        verdict = "identical" if result.identical else "DIFFERENT"
        if apply and not result.identical:
            verdict = "different, replaced by the recomputed rollups"
        print(f"{public}: {result.facts} facts recomputed, {verdict}")
        for rollup, count in sorted(result.differences.items()):
            if count:
                print(f"  {rollup}: {count} row(s) differ")
    return all(r.identical for r in results) or apply
