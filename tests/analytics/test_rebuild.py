"""The rollup worker and the rebuild: incremental rollups equal a recomputation from the raw
rows, a damaged rollup is found and repaired, and workers running at once count each change
once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from referral.analytics import service as analytics
from tests.analytics.conftest import flush_clicks, visit
from tests.scenarios import ANNA_SEEN, order, post, setup


async def _busy_program(client, tenant) -> None:
    """Clicks, a share, referred orders in two currencies, a refund, a cancel, a review."""
    s = await setup(client, tenant, {"same_ip": {"action": "review"}}, hold_days=0)
    code = s["code"]
    for visitor, channel in (("v1", "whatsapp"), ("v1", "whatsapp"), ("v2", "email")):
        await visit(client, code, visitor, channel=channel)
    await flush_clicks(client)
    first = await order(client, tenant, "bert", code, total=8000, subtotal=8000)
    await order(client, tenant, "cilla", code, currency="SEK", total=50000, subtotal=50000)
    held = await order(client, tenant, "dora", code, ip=ANNA_SEEN["ip"])
    assert held["referral"]["status"] == "in_review"
    await order(client, tenant, "bert")  # a repeat order
    await post(
        client,
        tenant,
        f"/v1/orders/{first['order_id']}/refunds",
        {"refund_id": "r1", "amount": 3000, "currency": "EUR"},
        201,
    )
    late = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    cancelled = await order(client, tenant, "erik", occurred_at=late)
    await post(client, tenant, f"/v1/orders/{cancelled['order_id']}/cancel", {}, 200)
    await post(
        client,
        tenant,
        f"/v1/referrals/{held['referral']['id']}/reject",
        {"actor": "risk@shop.example", "note": "same household"},
        200,
    )


async def test_incremental_rollups_equal_the_rebuild(client, tenant, pool, ids):
    await _busy_program(client, tenant)
    assert await analytics.catch_up(pool, ids=ids) > 0
    results = {r.merchant_id: r for r in await analytics.rebuild(pool, ids=ids)}
    mine = results[tenant.merchant_id]
    assert mine.facts > 0
    assert mine.identical, mine.differences
    orders = await pool.fetchval(
        "SELECT sum(value) FROM analytics_daily WHERE merchant_id = $1 AND metric = 'orders'",
        tenant.merchant_id,
    )
    assert orders == await pool.fetchval(
        "SELECT count(*) FROM orders WHERE merchant_id = $1 AND status <> 'cancelled'",
        tenant.merchant_id,
    )


async def test_a_damaged_rollup_is_found_and_repaired(client, tenant, pool, ids):
    await _busy_program(client, tenant)
    await analytics.catch_up(pool, ids=ids)
    await pool.execute(
        "UPDATE analytics_daily SET value = value + 5 WHERE merchant_id = $1 AND metric = 'clicks'",
        tenant.merchant_id,
    )
    [found] = await analytics.rebuild(pool, ids=ids, merchant_id=tenant.merchant_id)
    assert found.differences["analytics_daily"] > 0
    [repaired] = await analytics.rebuild(pool, ids=ids, merchant_id=tenant.merchant_id, apply=True)
    assert not repaired.identical  # what it found before replacing
    [after] = await analytics.rebuild(pool, ids=ids, merchant_id=tenant.merchant_id)
    assert after.identical, after.differences


async def test_workers_at_once_count_each_change_once(client, tenant, pool, ids):
    await _busy_program(client, tenant)
    # Everything marked again, as after a deploy: three workers share the work.
    await pool.execute(
        """INSERT INTO analytics_dirty (merchant_id, entity, key)
           SELECT merchant_id, 'order', id::text FROM orders WHERE merchant_id = $1
           UNION ALL SELECT merchant_id, 'reward', id::text FROM rewards WHERE merchant_id = $1
           ON CONFLICT DO NOTHING""",
        tenant.merchant_id,
    )
    await asyncio.gather(*(analytics.catch_up(pool, ids=ids) for _ in range(3)))
    [result] = await analytics.rebuild(pool, ids=ids, merchant_id=tenant.merchant_id)
    assert result.identical, result.differences
