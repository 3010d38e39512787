"""Redemptions of one balance under real concurrency: 50 requests at once, each on its own
pooled connection. The balance never goes below zero, every request is answered once
(created or refused), and the journal explains every lot."""

from __future__ import annotations

from tests.orders.test_concurrency import _burst, _pool_size
from tests.points.helpers import balance, order, points_program

N = 50


async def test_fifty_redemptions_at_once_spend_only_what_there_is(client, tenant, db):
    program = await points_program(client, tenant)
    for subtotal in (50_000, 40_000, 25_000):  # 1 150 points in three lots
        await order(client, tenant, "cus_race", subtotal)
    url = "/v1/customers/cus_race/points/redemptions"
    body = {"program_id": program["id"], "item": "credit-2"}  # 200 points each
    responses, peak = await _burst(client, [("POST", url, body, tenant.auth)] * N)

    assert peak > 1 and _pool_size(client) > 1  # the requests really overlapped
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 5 + [409] * (N - 5), [
        r.text for r in responses if r.status_code >= 500
    ]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"insufficient_points"}
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == 5
    shown = await balance(client, tenant, program, "cus_race")
    assert shown["balance"] == 150
    assert await db.fetchval("SELECT count(*) FROM points_redemptions") == 5
    assert await db.fetchval("SELECT min(remaining) FROM points_lots") >= 0
    assert await db.fetchval("SELECT -sum(delta) FROM points_entries WHERE kind = 'redeem'") == 1000
    assert (
        await db.fetchval(
            "SELECT count(*) FROM rewards WHERE kind = 'store_credit' AND status = 'approved'"
        )
        == 5
    )


async def test_one_idempotency_key_sent_at_once_redeems_once(client, tenant, db):
    program = await points_program(client, tenant)
    await order(client, tenant, "cus_retry", 100_000)
    url = "/v1/customers/cus_retry/points/redemptions"
    body = {"program_id": program["id"], "item": "5-eur"}
    headers = {**tenant.auth, "Idempotency-Key": "redeem-once"}
    responses, _ = await _burst(client, [("POST", url, body, headers)] * 10)

    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1
    # the rest saw it done (a replay) or still in flight (409, retry): never a second one
    assert set(statuses) <= {201, 200, 409}
    assert {r.json()["code"] for r in responses if r.status_code == 409} <= {
        "idempotency_key_in_flight"
    }
    assert await db.fetchval("SELECT count(*) FROM points_redemptions") == 1
    assert (await balance(client, tenant, program, "cus_retry"))["balance"] == 500
