"""The checkout calls through HTTP: quote, signup, order, refund, cancel."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.factories import create_advocate, create_program


def _order(order_id: str, **overrides):
    body = {
        "order_id": order_id,
        "customer_id": "friend-1",
        "email": "Friend.One+shop@gmail.com",
        "subtotal": 5000,
        "total": 5500,
        "currency": "EUR",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    body.update(overrides)
    return body


async def test_order_with_code_rewards_both_parties(client, tenant):
    program = await create_program(client, tenant)
    advocate = await create_advocate(client, tenant, program["id"], "advocate-1")
    r = await client.post(
        "/v1/orders", json=_order("o-1", codes=[advocate["code"].lower()]), headers=tenant.auth
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["referred"] is True
    assert body["referral"]["status"] == "converted"
    sides = {rw["side"]: rw for rw in body["rewards"]}
    assert sides["advocate"]["amount"] == 1000 and sides["advocate"]["kind"] == "cash"
    assert sides["friend"]["kind"] == "coupon" and sides["friend"]["coupon_code"].startswith("F1")
    again = await client.post(
        "/v1/orders", json=_order("o-1", codes=[advocate["code"]]), headers=tenant.auth
    )
    assert again.status_code == 200
    assert again.json() == body
    conflict = await client.post("/v1/orders", json=_order("o-1", total=9999), headers=tenant.auth)
    assert conflict.status_code == 409 and conflict.json()["code"] == "order_conflict"
    explained = await client.get(f"/v1/referrals/{body['referral']['id']}", headers=tenant.auth)
    assert explained.status_code == 200, explained.text
    referral = explained.json()
    assert referral["attribution"] == {"path": "code", "code": advocate["code"]}
    assert all(check["passed"] for check in referral["checks"])
    assert referral["decision"]["action"] == "allow"
    assert referral["first_order_id"] == "o-1"
    assert [r["history"][0]["to_status"] for r in referral["rewards"]] == ["pending", "pending"]


async def test_link_token_quote_and_refund(client, tenant):
    program = await create_program(
        client,
        tenant,
        rewards={
            "advocate": {"kind": "cash", "basis_points": 1000},
            "friend": {"kind": "store_credit", "amounts": {"EUR": 500}},
            "minimum_order": {"EUR": 2000},
        },
    )
    advocate = await create_advocate(client, tenant, program["id"], "advocate-1")
    click = await client.get(f"/r/{advocate['code']}", follow_redirects=False)
    token = click.headers["location"].split("ref_token=")[1]
    q = await client.post(
        "/v1/checkout/quote",
        json={"ref_token": token, "email": "x@y.com", "subtotal": 3000, "currency": "EUR"},
        headers=tenant.auth,
    )
    assert q.status_code == 200, q.text
    assert q.json()["applies"] is True
    assert q.json()["friend_offer"] == {"kind": "store_credit", "amount": 500, "currency": "EUR"}
    assert q.json()["advocate_id"] == advocate["id"]
    r = await client.post(
        "/v1/orders",
        json=_order("o-2", ref_token=token, subtotal=4999, total=4999),
        headers=tenant.auth,
    )
    assert r.status_code == 201, r.text
    rewards = {rw["side"]: rw for rw in r.json()["rewards"]}
    assert rewards["advocate"]["amount"] == 500  # 10% of 4999 = 499.9 -> 500
    ref = await client.post(
        "/v1/orders/o-2/refunds",
        json={"refund_id": "rf-1", "amount": 1000, "currency": "EUR"},
        headers=tenant.auth,
    )
    assert ref.status_code == 201, ref.text
    after_first = {rw["side"]: rw for rw in ref.json()["rewards"]}
    # 10% of 4999 x 3999/4999 remaining = 399.9 -> 400; the fixed friend reward stays whole.
    assert after_first["advocate"]["amount"] == 400
    assert after_first["friend"]["amount"] == 500
    ref2 = await client.post(
        "/v1/orders/o-2/refunds",
        json={"refund_id": "rf-2", "amount": 2000, "currency": "EUR"},
        headers=tenant.auth,
    )
    # 1999 of 4999 left: the order's value (1999) is below the 2000 minimum, both reversed.
    assert {rw["status"] for rw in ref2.json()["rewards"]} == {"reversed"}
    assert ref2.json()["refunded"] == 3000
    events = await client.get("/v1/events?limit=100", headers=tenant.auth)
    types = [e["type"] for e in events.json()["data"]]
    assert types.count("reward.created") == 2 and types.count("reward.reversed") == 2
    assert "reward.adjusted" in types and types.count("order.refunded") == 2
