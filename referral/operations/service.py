"""What the operator watches, asked of the rooms that know: the workers' lags, read from the
database when `/metrics` is scraped, so every instance reports the same figure."""

from __future__ import annotations

import asyncpg
from prometheus_client.core import GaugeMetricFamily

from referral.rewards import service as rewards
from referral.webhooks import service as webhooks


async def lags(pool: asyncpg.Pool) -> list[GaugeMetricFamily]:
    async with pool.acquire() as conn:
        release = await rewards.release_lag_seconds(conn)
        outbox = await webhooks.outbox_lag_seconds(conn)
    return [
        GaugeMetricFamily(
            "referral_release_lag_seconds",
            "How long the longest-waiting reward due for approval has waited (0: none)",
            value=release,
        ),
        GaugeMetricFamily(
            "referral_outbox_lag_seconds",
            "How long the most overdue webhook delivery has been due and not sent (0: none)",
            value=outbox,
        ),
    ]
