"""Checkout calls under real concurrency: many requests at once, each on its own pooled
connection, against one PostgreSQL database. Duplicates must collapse into one effect."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from referral.rewards import service as rewards_service
from tests.factories import NO_VELOCITY, create_advocate, create_program, on_app_loop

N = 50


def _order(order_id: str, **overrides):
    body = {
        "order_id": order_id,
        "customer_id": "friend-1",
        "email": "friend.one@example.com",
        "subtotal": 5000,
        "total": 5500,
        "currency": "EUR",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    body.update(overrides)
    return body


async def _burst(client, calls):
    """Send every (method, url, json, headers) at once over separate connections; return
    the responses and the largest number of requests that were in flight together."""
    spans: list[tuple[float, float]] = []

    async def one(http, method, url, body, headers):
        start = time.perf_counter()
        response = await http.request(method, url, json=body, headers=headers)
        spans.append((start, time.perf_counter()))
        return response

    async def send(http):
        return await asyncio.gather(*(one(http, *call) for call in calls))

    responses = await on_app_loop(client, send)
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    in_flight = peak = 0
    for _, step in edges:
        in_flight += step
        peak = max(peak, in_flight)
    return responses, peak


def _pool_size(client) -> int:
    return client.app.state.runtime.pool.get_size()


async def test_identical_orders_at_once_record_one_order(client, tenant, db):
    program = await create_program(
        client,
        tenant,
        rewards={
            "advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
            "friend": {"kind": "store_credit", "amounts": {"EUR": 500}},
        },
    )
    advocate = await create_advocate(client, tenant, program["id"], "advocate-1")
    body = _order("o-1", codes=[advocate["code"]])
    responses, peak = await _burst(client, [("POST", "/v1/orders", body, tenant.auth)] * N)

    assert peak > 1 and _pool_size(client) > 1  # the requests really overlapped
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * (N - 1) + [201], [r.text for r in responses if r.status_code > 201]
    bodies = [r.json() for r in responses]
    assert all(b == bodies[0] for b in bodies)
    assert await db.fetchval("SELECT count(*) FROM orders") == 1
    assert await db.fetchval("SELECT count(*) FROM referrals") == 1
    sides = await db.fetch("SELECT side, count(*) AS n FROM rewards GROUP BY side ORDER BY side")
    assert [(r["side"], r["n"]) for r in sides] == [("advocate", 1), ("friend", 1)]
    assert await db.fetchval("SELECT count(*) FROM ledger_entries") == 2
    assert await db.fetchval("SELECT count(*) FROM events WHERE type = 'reward.created'") == 2


async def test_one_friends_orders_at_once_attribute_once(client, tenant, db):
    program = await create_program(
        client,
        tenant,
        rewards={
            "advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
            "friend": {"kind": "cash", "amounts": {"EUR": 500}},
        },
    )
    a = await create_advocate(client, tenant, program["id"], "advocate-a")
    b = await create_advocate(client, tenant, program["id"], "advocate-b")
    calls = [
        ("POST", "/v1/orders", _order(f"o-{i}", codes=[(a if i % 2 else b)["code"]]), tenant.auth)
        for i in range(N)
    ]
    responses, peak = await _burst(client, calls)

    assert peak > 1 and _pool_size(client) > 1
    assert [r.status_code for r in responses] == [201] * N, [r.text for r in responses]
    referrals = await db.fetch("SELECT id, advocate_id, status, first_order_pk FROM referrals")
    assert len(referrals) == 1
    referral = referrals[0]
    assert referral["status"] == "converted"
    assert await db.fetchval("SELECT count(*) FROM orders") == N
    assert (
        await db.fetchval(
            "SELECT count(*) FROM orders WHERE referral_id IS DISTINCT FROM $1", referral["id"]
        )
        == 0
    )
    rewards = await db.fetch("SELECT side, order_pk, advocate_id FROM rewards ORDER BY side")
    assert [r["side"] for r in rewards] == ["advocate", "friend"]
    assert {r["order_pk"] for r in rewards} == {referral["first_order_pk"]}
    assert {r["advocate_id"] for r in rewards} == {referral["advocate_id"]}
    # Every order but the first says why it earned nothing.
    first = await db.fetchval(
        "SELECT order_id FROM orders WHERE id = $1", referral["first_order_pk"]
    )
    for r in responses:
        body = r.json()
        if body["order_id"] == first:
            assert len(body["rewards"]) == 2
        else:
            assert body["rewards"] == [] and "not_first_order" in body["notes"]


async def test_same_idempotency_key_at_once_has_one_effect(client, tenant, db):
    program = await create_program(client, tenant)
    advocate = await create_advocate(client, tenant, program["id"], "advocate-1")
    headers = {**tenant.auth, "Idempotency-Key": "checkout-attempt-1"}
    body = _order("o-1", codes=[advocate["code"]])
    responses, peak = await _burst(client, [("POST", "/v1/orders", body, headers)] * N)

    assert peak > 1 and _pool_size(client) > 1
    assert all(r.status_code in (200, 201, 409) for r in responses), [r.text for r in responses]
    created = [r for r in responses if r.status_code == 201]
    in_flight = [r for r in responses if r.status_code == 409]
    assert created and in_flight  # some waited their turn, some were told to retry
    assert all(r.json()["code"] == "idempotency_key_in_flight" for r in in_flight)
    first = created[0].json()
    for r in created:
        assert r.json() == first  # the original or its stored replay
    replayed = [r for r in created if r.headers.get("idempotent-replayed") == "true"]
    assert len(created) - len(replayed) == 1
    assert not [r for r in responses if r.status_code == 200]  # replays keep the 201
    assert await db.fetchval("SELECT count(*) FROM orders") == 1
    assert await db.fetchval("SELECT count(*) FROM rewards") == 2
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys") == 1

    again = await client.post("/v1/orders", json=body, headers=headers)
    assert again.status_code == 201 and again.json() == first
    assert again.headers["idempotent-replayed"] == "true"
    other = await client.post("/v1/orders", json={**body, "subtotal": 4000}, headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert await db.fetchval("SELECT count(*) FROM orders") == 1


async def test_same_refund_at_once_adjusts_once(client, tenant, db):
    program = await create_program(
        client,
        tenant,
        rewards={
            "advocate": {"kind": "cash", "basis_points": 1000},
            "friend": {"kind": "store_credit", "basis_points": 500},
        },
    )
    advocate = await create_advocate(client, tenant, program["id"], "advocate-1")
    r = await client.post(
        "/v1/orders",
        json=_order("o-1", subtotal=5000, total=5000, codes=[advocate["code"]]),
        headers=tenant.auth,
    )
    assert r.status_code == 201, r.text
    refund = {"refund_id": "rf-1", "amount": 1000, "currency": "EUR"}
    responses, peak = await _burst(
        client, [("POST", "/v1/orders/o-1/refunds", refund, tenant.auth)] * 20
    )

    assert peak > 1
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 19 + [201], [r.text for r in responses]
    assert await db.fetchval("SELECT count(*) FROM refunds") == 1
    assert await db.fetchval("SELECT refunded FROM orders") == 1000
    rows = await db.fetch("SELECT id, side, amount FROM rewards ORDER BY side")
    assert [(x["side"], x["amount"]) for x in rows] == [("advocate", 400), ("friend", 200)]
    for x in rows:
        entries = await db.fetch("SELECT amount FROM ledger_entries WHERE reward_id = $1", x["id"])
        assert len(entries) == 2  # created, then adjusted once
        assert sum(e["amount"] for e in entries) == x["amount"]
    assert (
        await db.fetchval("SELECT count(*) FROM reward_transitions WHERE reason = 'partial_refund'")
        == 2
    )
    assert all(r.json()["refunded"] == 1000 for r in responses)


async def test_release_from_several_workers_approves_each_reward_once(client, tenant, db):
    program = await create_program(
        client,
        tenant,
        hold_days=1,
        fraud_policy=NO_VELOCITY,
        rewards={
            "advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
            "friend": {"kind": "cash", "amounts": {"EUR": 500}},
            "milestones": [{"referrals": 3, "reward": {"kind": "cash", "amounts": {"EUR": 5000}}}],
        },
    )
    advocates = [
        await create_advocate(client, tenant, program["id"], f"advocate-{i}") for i in range(4)
    ]
    for i in range(100):
        r = await client.post(
            "/v1/orders",
            json=_order(
                f"o-{i}",
                customer_id=f"friend-{i}",
                email=f"friend{i}@example.com",
                codes=[advocates[i % 4]["code"]],
            ),
            headers=tenant.auth,
        )
        assert r.status_code == 201, r.text
    assert await db.fetchval("SELECT count(*) FROM rewards WHERE status = 'pending'") == 200
    runtime = client.app.state.runtime
    later = datetime.now(UTC) + timedelta(days=2)

    async def release():
        return await asyncio.gather(
            *(
                rewards_service.release_due(runtime.pool, ids=runtime.ids, batch=10, now=later)
                for _ in range(4)
            )
        )

    released = await asyncio.to_thread(client.blocking_portal.call, release)

    assert sum(released) >= 200 and sum(1 for n in released if n) > 1  # work was shared
    per_reward = await db.fetch("""
        SELECT r.id, r.status, r.milestone,
               (SELECT count(*) FROM reward_transitions t
                WHERE t.reward_id = r.id AND t.to_status = 'approved') AS approvals
        FROM rewards r""")
    order_rewards = [x for x in per_reward if x["milestone"] is None]
    assert len(order_rewards) == 200
    assert all(x["status"] == "approved" and x["approvals"] == 1 for x in order_rewards)
    # Each advocate reached 3 approved referrals once, whichever worker approved them.
    milestones = await db.fetch(
        "SELECT advocate_id, milestone FROM rewards WHERE milestone IS NOT NULL"
    )
    assert sorted(m["milestone"] for m in milestones) == [3, 3, 3, 3]
    assert len({m["advocate_id"] for m in milestones}) == 4


async def test_an_idempotency_key_belongs_to_one_resource(client, tenant, db):
    program = await create_program(client, tenant)
    advocate = await create_advocate(client, tenant, program["id"], "advocate-1")
    ids = []
    for i in range(2):
        r = await client.post(
            "/v1/orders",
            json=_order(
                f"o-{i}",
                customer_id=f"friend-{i}",
                email=f"friend{i}@example.com",
                codes=[advocate["code"]],
            ),
            headers=tenant.auth,
        )
        ids.append(next(rw["id"] for rw in r.json()["rewards"] if rw["side"] == "advocate"))
    headers = {**tenant.auth, "Idempotency-Key": "approve-1"}
    first = await client.post(f"/v1/rewards/{ids[0]}/approve", json={"actor": "t"}, headers=headers)
    assert first.status_code == 200 and first.json()["id"] == ids[0]
    # Same key and body on another reward: not the first reward's stored answer.
    other = await client.post(f"/v1/rewards/{ids[1]}/approve", json={"actor": "t"}, headers=headers)
    assert other.status_code == 409, other.text
    assert other.json()["code"] == "idempotency_key_reused"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM rewards WHERE status = 'approved' AND side = 'advocate'"
        )
        == 1
    )


async def test_caps_and_tiers_hold_when_friends_order_at_once(client, tenant, db):
    program = await create_program(
        client,
        tenant,
        rewards={
            "advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
            "friend": {"kind": "cash", "amounts": {"EUR": 500}},
            "tiers": [{"from_referral": 3, "advocate": {"kind": "cash", "amounts": {"EUR": 1500}}}],
            "caps": {"max_rewards_per_period": 5},
        },
    )
    advocate = await create_advocate(client, tenant, program["id"], "advocate-1")
    calls = [
        (
            "POST",
            "/v1/orders",
            _order(
                f"o-{i}",
                customer_id=f"friend-{i}",
                email=f"friend{i}@example.com",
                codes=[advocate["code"]],
            ),
            tenant.auth,
        )
        for i in range(20)
    ]
    responses, peak = await _burst(client, calls)

    assert peak > 1
    assert [r.status_code for r in responses] == [201] * 20
    amounts = [
        r["amount"]
        for r in await db.fetch("SELECT amount FROM rewards WHERE side = 'advocate' ORDER BY id")
    ]
    assert amounts == [1000, 1000, 1500, 1500, 1500]
    assert await db.fetchval("SELECT count(*) FROM rewards WHERE side = 'friend'") == 20
    capped = [r for r in responses if "cap_period_reached" in r.json()["notes"]]
    assert len(capped) == 15


async def test_approvals_at_once_grant_a_milestone_once(client, tenant, db):
    program = await create_program(
        client,
        tenant,
        rewards={
            "advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
            "milestones": [{"referrals": 3, "reward": {"kind": "cash", "amounts": {"EUR": 5000}}}],
        },
    )
    advocate = await create_advocate(client, tenant, program["id"], "advocate-1")
    ids = []
    for i in range(6):
        r = await client.post(
            "/v1/orders",
            json=_order(
                f"o-{i}",
                customer_id=f"friend-{i}",
                email=f"friend{i}@example.com",
                codes=[advocate["code"]],
            ),
            headers=tenant.auth,
        )
        ids.append(r.json()["rewards"][0]["id"])
    responses, peak = await _burst(
        client, [("POST", f"/v1/rewards/{rid}/approve", {"actor": "t"}, tenant.auth) for rid in ids]
    )

    assert peak > 1
    assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
    assert (
        await db.fetchval("SELECT count(*) FROM rewards WHERE milestone = 3 AND status = 'pending'")
        == 1
    )
