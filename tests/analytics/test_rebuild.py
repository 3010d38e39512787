"""The rollup worker and the rebuild: incremental rollups equal a recomputation from the raw
rows, a damaged rollup is found and repaired, and workers running at once count each change
once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from referral.analytics import service as analytics
from tests.analytics.conftest import BROWSER, flush_clicks, record_late_click, visit
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


async def test_a_busy_day_of_visitors_counted_batch_by_batch_equals_the_rebuild(
    client, tenant, pool, ids
):
    """Enough visitors in a day for the sketch to leave its exact modes, folded in three
    batches in an order the rebuild (which adds them sorted) does not use."""
    s = await setup(client, tenant, {}, hold_days=0)
    advocate = await pool.fetchrow(
        "SELECT id, program_id FROM advocates WHERE merchant_id = $1", tenant.merchant_id
    )
    at = datetime.now(UTC) - timedelta(minutes=5)
    visitors = [f"{n:032x}" for n in range(1_500)][::-1]
    for batch in (visitors[:700], visitors[700:1_100], visitors[1_100:]):
        for visitor in batch:
            click = (
                "f" + visitor[1:],  # the click's id
                at,
                tenant.merchant_id,
                advocate["program_id"],
                advocate["id"],
                s["code"],
                "link",
                visitor,
                None,
                None,
                BROWSER["user-agent"],
                None,
                None,
                False,
            )
            await record_late_click(client, click)
        assert await flush_clicks(client) == len(batch)
        await analytics.catch_up(pool, ids=ids)
    [result] = await analytics.rebuild(pool, ids=ids, merchant_id=tenant.merchant_id)
    assert result.identical, result.differences


async def test_a_merchant_waiting_to_be_restated_is_booked_again_from_the_raw_rows(
    client, tenant, pool, ids
):
    """What migration 0012 asks for every merchant (its new rollups filled from the raw
    rows), and what any later change of the rollups' shape can ask for."""
    await _busy_program(client, tenant)
    await analytics.catch_up(pool, ids=ids)
    before = await client.get("/v1/analytics/funnel", headers=tenant.auth)
    await pool.execute(
        "DELETE FROM analytics_daily_totals WHERE merchant_id = $1", tenant.merchant_id
    )
    await pool.execute("DELETE FROM analytics_sketches WHERE merchant_id = $1", tenant.merchant_id)
    await pool.execute("INSERT INTO analytics_restate VALUES ($1)", tenant.merchant_id)
    assert await analytics.catch_up(pool, ids=ids) > 0
    assert await pool.fetchval("SELECT count(*) FROM analytics_restate") == 0
    [result] = await analytics.rebuild(pool, ids=ids, merchant_id=tenant.merchant_id)
    assert result.identical, result.differences
    after = await client.get("/v1/analytics/funnel", headers=tenant.auth)
    assert after.json()["totals"] == before.json()["totals"]
    assert any(v["value"] for v in after.json()["totals"] if v["metric"] == "visitors")
