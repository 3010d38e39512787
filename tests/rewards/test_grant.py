"""Reward rules at their boundaries, through the HTTP API as a shop would use it: minimums,
tiers, milestones, caps, windows, self-referral, new customers, final attribution,
currencies and holds."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from referral.links.token import ClickToken, ClickTokenSigner
from referral.rewards.service import release_due
from tests.factories import create_advocate, create_program

FIXED = {
    "advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
    "friend": {"kind": "store_credit", "amounts": {"EUR": 500}},
}


def _order(order_id: str, friend: str, **overrides):
    body = {
        "order_id": order_id,
        "customer_id": friend,
        "email": f"{friend}@example.com",
        "subtotal": 5000,
        "total": 5000,
        "currency": "EUR",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    body.update(overrides)
    return body


async def _post_order(client, tenant, order_id: str, friend: str, **overrides) -> dict:
    r = await client.post(
        "/v1/orders", json=_order(order_id, friend, **overrides), headers=tenant.auth
    )
    assert r.status_code == 201, r.text
    return r.json()


def _side(body: dict, side: str) -> dict | None:
    return next((rw for rw in body["rewards"] if rw["side"] == side), None)


async def _referral(client, tenant, body: dict) -> dict:
    r = await client.get(f"/v1/referrals/{body['referral']['id']}", headers=tenant.auth)
    assert r.status_code == 200, r.text
    return r.json()


async def _release(client, now: datetime) -> int:
    runtime = client.app.state.runtime

    async def run():
        return await release_due(runtime.pool, ids=runtime.ids, now=now)

    return await asyncio.to_thread(client.blocking_portal.call, run)


async def _rewards_of(client, tenant, advocate_id: str) -> list[dict]:
    r = await client.get(f"/v1/rewards?advocate_id={advocate_id}&limit=100", headers=tenant.auth)
    assert r.status_code == 200, r.text
    return r.json()["data"]


async def test_minimum_order_is_inclusive_per_currency(client, tenant, db):
    program = await create_program(
        client,
        tenant,
        rewards={
            "advocate": {"kind": "cash", "basis_points": 1000},
            "friend": {"kind": "store_credit", "basis_points": 500},
            "minimum_order": {"EUR": 2000, "JPY": 3000},
        },
    )
    code = (await create_advocate(client, tenant, program["id"], "adv-1"))["code"]

    at_min = await _post_order(
        client, tenant, "o-1", "f-1", subtotal=2000, total=2000, codes=[code]
    )
    assert at_min["referral"]["status"] == "converted"
    assert (_side(at_min, "advocate")["amount"], _side(at_min, "friend")["amount"]) == (200, 100)

    below = await _post_order(client, tenant, "o-2", "f-2", subtotal=1999, total=2500, codes=[code])
    assert below["rewards"] == [] and below["referral"]["status"] == "rejected"
    explained = await _referral(client, tenant, below)
    assert explained["rejection_reason"] == "below_minimum"
    check = next(c for c in explained["checks"] if c["name"] == "below_minimum")
    assert check["passed"] is False and check["inputs"]["minimum"] == 2000

    yen = await _post_order(
        client, tenant, "o-3", "f-3", subtotal=3000, total=3000, currency="JPY", codes=[code]
    )
    assert _side(yen, "advocate")["amount"] == 300 and _side(yen, "advocate")["currency"] == "JPY"
    yen_below = await _post_order(
        client, tenant, "o-4", "f-4", subtotal=2999, total=2999, currency="JPY", codes=[code]
    )
    assert yen_below["referral"]["rejection_reason"] == "below_minimum"
    assert await db.fetchval("SELECT count(*) FROM rewards") == 4


async def test_tiers_pay_more_from_the_nth_referral(client, tenant):
    program = await create_program(
        client,
        tenant,
        rewards={
            **FIXED,
            "tiers": [{"from_referral": 5, "advocate": {"kind": "cash", "amounts": {"EUR": 1500}}}],
        },
    )
    code = (await create_advocate(client, tenant, program["id"], "adv-1"))["code"]
    amounts = []
    for i in range(1, 7):
        body = await _post_order(client, tenant, f"o-{i}", f"f-{i}", codes=[code])
        amounts.append(_side(body, "advocate")["amount"])
        assert _side(body, "friend")["amount"] == 500
    assert amounts == [1000, 1000, 1000, 1000, 1500, 1500]


async def test_milestone_is_granted_once_at_the_threshold(client, tenant):
    program = await create_program(
        client,
        tenant,
        rewards={
            **FIXED,
            "milestones": [{"referrals": 3, "reward": {"kind": "cash", "amounts": {"EUR": 5000}}}],
        },
    )
    advocate = await create_advocate(client, tenant, program["id"], "adv-1")
    reward_ids = []
    for i in range(1, 6):
        body = await _post_order(client, tenant, f"o-{i}", f"f-{i}", codes=[advocate["code"]])
        reward_ids.append(_side(body, "advocate")["id"])

    def milestones(rows):
        return [r for r in rows if r["milestone"] is not None]

    for n, reward_id in enumerate(reward_ids, start=1):
        r = await client.post(
            f"/v1/rewards/{reward_id}/approve", json={"actor": "t"}, headers=tenant.auth
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "approved"
        found = milestones(await _rewards_of(client, tenant, advocate["id"]))
        if n < 3:
            assert found == []
        else:
            assert len(found) == 1, found
            assert (found[0]["milestone"], found[0]["amount"], found[0]["currency"]) == (
                3,
                5000,
                "EUR",
            )
            assert found[0]["status"] == "pending"
    again = await client.post(
        f"/v1/rewards/{reward_ids[0]}/approve", json={"actor": "t"}, headers=tenant.auth
    )
    assert again.status_code == 409 and again.json()["code"] == "reward_state_conflict"
    assert len(milestones(await _rewards_of(client, tenant, advocate["id"]))) == 1


async def test_cap_on_reward_count_spares_the_friend(client, tenant):
    program = await create_program(
        client, tenant, rewards={**FIXED, "caps": {"period": "month", "max_rewards_per_period": 2}}
    )
    code = (await create_advocate(client, tenant, program["id"], "adv-1"))["code"]
    bodies = [
        await _post_order(client, tenant, f"o-{i}", f"f-{i}", codes=[code]) for i in range(1, 4)
    ]
    assert [_side(b, "advocate") is not None for b in bodies] == [True, True, False]
    assert all(_side(b, "friend")["amount"] == 500 for b in bodies)
    assert bodies[2]["referral"]["status"] == "converted"
    assert "cap_period_reached" in bodies[2]["notes"]


async def test_cap_on_amount_pays_the_rest_then_nothing(client, tenant):
    program = await create_program(
        client,
        tenant,
        rewards={**FIXED, "caps": {"period": "month", "max_amount_per_period": {"EUR": 2500}}},
    )
    code = (await create_advocate(client, tenant, program["id"], "adv-1"))["code"]
    bodies = [
        await _post_order(client, tenant, f"o-{i}", f"f-{i}", codes=[code]) for i in range(1, 5)
    ]
    advocate = [(_side(b, "advocate") or {}).get("amount") for b in bodies]
    assert advocate == [1000, 1000, 500, None]
    assert "cap_amount_reached" in bodies[3]["notes"]
    assert all(_side(b, "friend")["amount"] == 500 for b in bodies)


async def test_link_attribution_window(client, tenant, settings):
    program = await create_program(client, tenant, attribution_window_days=7, rewards=FIXED)
    code = (await create_advocate(client, tenant, program["id"], "adv-1"))["code"]
    signer = ClickTokenSigner(settings.click_token_key)
    now = datetime.now(UTC)

    def token(age: timedelta) -> str:
        return signer.sign(
            ClickToken(
                code=code,
                click_id=uuid.uuid4().hex,
                channel="link",
                visitor_id="v-1",
                issued_at=int((now - age).timestamp()),
            )
        )

    stale = await _post_order(client, tenant, "o-1", "f-1", ref_token=token(timedelta(days=8)))
    assert stale["referred"] is False and "outside_window" in stale["notes"]
    assert stale["rewards"] == []

    fresh = await _post_order(client, tenant, "o-2", "f-2", ref_token=token(timedelta(days=6)))
    assert fresh["referred"] is True and fresh["referral"]["source"] == "link"
    assert len(fresh["rewards"]) == 2

    typed = await _post_order(
        client, tenant, "o-3", "f-3", codes=[code], ref_token=token(timedelta(days=400))
    )
    assert typed["referred"] is True and typed["referral"]["source"] == "code"
    assert len(typed["rewards"]) == 2


async def test_occurred_at_too_far_in_the_future_is_refused(client, tenant, db):
    program = await create_program(client, tenant, rewards=FIXED)
    code = (await create_advocate(client, tenant, program["id"], "adv-1"))["code"]
    later = (datetime.now(UTC) + timedelta(minutes=6)).isoformat()
    r = await client.post(
        "/v1/orders",
        json=_order("o-1", "f-1", occurred_at=later, codes=[code]),
        headers=tenant.auth,
    )
    assert r.status_code == 422 and r.json()["code"] == "occurred_in_future"
    assert await db.fetchval("SELECT count(*) FROM orders") == 0
    soon = (datetime.now(UTC) + timedelta(minutes=4)).isoformat()
    ok = await _post_order(client, tenant, "o-1", "f-1", occurred_at=soon, codes=[code])
    assert ok["referred"] is True


async def test_self_referral_by_customer_id_or_normalised_email(client, tenant, db):
    program = await create_program(client, tenant, rewards=FIXED)
    r = await client.post(
        "/v1/advocates",
        json={"program_id": program["id"], "customer_id": "adv-1", "email": "Jane.Doe@gmail.com"},
        headers=tenant.auth,
    )
    assert r.status_code in (200, 201), r.text
    code = r.json()["code"]
    same_id = await _post_order(client, tenant, "o-1", "adv-1", email=None, codes=[code])
    same_email = await _post_order(
        client, tenant, "o-2", "cus-other", email="j.a.n.e.doe+promo@googlemail.com", codes=[code]
    )
    for body in (same_id, same_email):
        assert body["rewards"] == []
        assert body["referral"]["status"] == "rejected"
        assert body["referral"]["rejection_reason"] == "self_referral"
    assert await db.fetchval("SELECT count(*) FROM rewards") == 0


async def test_existing_customer_is_not_new(client, tenant, db):
    program = await create_program(client, tenant, rewards=FIXED)
    code = (await create_advocate(client, tenant, program["id"], "adv-1"))["code"]
    first = await _post_order(client, tenant, "o-1", "f-1")
    assert first["referred"] is False
    q = await client.post(
        "/v1/checkout/quote",
        json={"customer_id": "f-1", "codes": [code], "subtotal": 5000, "currency": "EUR"},
        headers=tenant.auth,
    )
    assert q.status_code == 200 and q.json()["reason"] == "not_new_customer"
    assert q.json()["applies"] is False
    later = await _post_order(client, tenant, "o-2", "f-1", codes=[code])
    assert later["rewards"] == []
    assert later["referral"]["rejection_reason"] == "not_new_customer"
    assert await db.fetchval("SELECT count(*) FROM rewards") == 0


async def test_an_existing_referral_is_final(client, tenant, db):
    program = await create_program(client, tenant, rewards=FIXED)
    a = await create_advocate(client, tenant, program["id"], "adv-a")
    b = await create_advocate(client, tenant, program["id"], "adv-b")
    first = await _post_order(client, tenant, "o-1", "f-1", codes=[a["code"]])
    assert first["referral"]["advocate_id"] == a["id"]
    q = await client.post(
        "/v1/checkout/quote",
        json={"customer_id": "f-1", "codes": [b["code"]], "subtotal": 5000, "currency": "EUR"},
        headers=tenant.auth,
    )
    assert q.status_code == 200 and q.json()["reason"] == "already_referred"
    assert q.json()["applies"] is False and q.json()["friend_offer"] is None
    later = await _post_order(client, tenant, "o-2", "f-1", codes=[b["code"]])
    assert later["referral"]["id"] == first["referral"]["id"]
    assert later["referral"]["advocate_id"] == a["id"]
    assert later["rewards"] == [] and "already_referred" in later["notes"]
    assert await db.fetchval("SELECT count(*) FROM referrals") == 1
    assert await db.fetchval("SELECT count(*) FROM rewards") == 2


async def test_currency_without_a_fixed_amount_earns_nothing(client, tenant, db):
    program = await create_program(client, tenant, rewards=FIXED)
    code = (await create_advocate(client, tenant, program["id"], "adv-1"))["code"]
    body = await _post_order(client, tenant, "o-1", "f-1", currency="SEK", codes=[code])
    assert body["rewards"] == []
    assert body["referral"]["rejection_reason"] == "currency_not_supported"
    q = await client.post(
        "/v1/checkout/quote",
        json={"customer_id": "f-2", "codes": [code], "subtotal": 5000, "currency": "SEK"},
        headers=tenant.auth,
    )
    assert q.json()["reason"] == "currency_not_supported"
    assert await db.fetchval("SELECT count(*) FROM rewards") == 0


async def test_rewards_wait_for_their_hold(client, tenant):
    program = await create_program(client, tenant, hold_days=14, rewards=FIXED)
    code = (await create_advocate(client, tenant, program["id"], "adv-1"))["code"]
    occurred = datetime.now(UTC)  # not before the program started
    body = await _post_order(
        client, tenant, "o-1", "f-1", codes=[code], occurred_at=occurred.isoformat()
    )
    assert {rw["status"] for rw in body["rewards"]} == {"pending"}
    hold_until = occurred + timedelta(days=14)
    assert await _release(client, hold_until - timedelta(seconds=1)) == 0
    explained = await _referral(client, tenant, body)
    assert {rw["status"] for rw in explained["rewards"]} == {"pending"}
    assert {datetime.fromisoformat(rw["hold_until"]) for rw in explained["rewards"]} == {hold_until}
    assert await _release(client, hold_until + timedelta(seconds=1)) == 2
    explained = await _referral(client, tenant, body)
    assert {rw["status"] for rw in explained["rewards"]} == {"approved"}
    assert await _release(client, hold_until + timedelta(days=1)) == 0


async def test_click_to_approved_reward_end_to_end(client, tenant):
    program = await create_program(client, tenant, hold_days=3, rewards=FIXED)
    advocate = await create_advocate(client, tenant, program["id"], "adv-1")
    click = await client.get(f"/r/{advocate['code']}", follow_redirects=False)
    assert click.status_code == 302, click.text
    query = parse_qs(urlsplit(click.headers["location"]).query)
    assert query["ref"] == [advocate["code"]]
    token = query["ref_token"][0]

    q = await client.post(
        "/v1/checkout/quote",
        json={"ref_token": token, "customer_id": "f-1", "subtotal": 5000, "currency": "EUR"},
        headers=tenant.auth,
    )
    assert q.status_code == 200, q.text
    assert q.json()["applies"] is True and q.json()["advocate_id"] == advocate["id"]
    assert q.json()["friend_offer"] == {"kind": "store_credit", "amount": 500, "currency": "EUR"}

    occurred = datetime.now(UTC)
    body = await _post_order(
        client, tenant, "o-1", "f-1", ref_token=token, occurred_at=occurred.isoformat()
    )
    assert body["referral"]["source"] == "link" and body["referral"]["status"] == "converted"
    explained = await _referral(client, tenant, body)
    assert explained["attribution"]["path"] == "link"
    assert explained["first_order_id"] == "o-1"
    hold_until = occurred + timedelta(days=3)
    for rw in explained["rewards"]:
        assert rw["status"] == "pending"
        assert datetime.fromisoformat(rw["hold_until"]) == hold_until

    assert await _release(client, hold_until + timedelta(seconds=1)) == 2
    explained = await _referral(client, tenant, body)
    assert {rw["status"] for rw in explained["rewards"]} == {"approved"}
    r = await client.get("/v1/events?limit=100", headers=tenant.auth)
    types = [e["type"] for e in r.json()["data"]]
    assert types.count("reward.created") == 2 and types.count("reward.approved") == 2
    assert types.count("referral.converted") == 1
    assert types.index("reward.created") < types.index("reward.approved")
    approved = await client.get("/v1/events?type=reward.approved", headers=tenant.auth)
    assert {e["data"]["reward_id"] for e in approved.json()["data"]} == {
        rw["id"] for rw in explained["rewards"]
    }


async def test_cap_periods_follow_the_merchants_time_zone(client, tenant, db):
    program = await create_program(
        client, tenant, rewards={**FIXED, "caps": {"period": "day", "max_rewards_per_period": 1}}
    )
    code = (await create_advocate(client, tenant, program["id"], "adv-1"))["code"]
    # UTC+14: 09:59Z is 23:59 local, 10:01Z is already the next local day.
    await db.execute(
        "UPDATE merchants SET time_zone = 'Pacific/Kiritimati' WHERE id = $1", tenant.merchant_id
    )
    await db.execute("UPDATE programs SET starts_at = now() - interval '30 days'")
    day = (datetime.now(UTC) - timedelta(days=5)).replace(hour=0, minute=0, second=0, microsecond=0)
    times = [
        day + timedelta(hours=9, minutes=59),
        day + timedelta(hours=10, minutes=1),
        day + timedelta(hours=10, minutes=30),
    ]
    bodies = [
        await _post_order(
            client, tenant, f"o-{i}", f"f-{i}", codes=[code], occurred_at=at.isoformat()
        )
        for i, at in enumerate(times)
    ]
    assert [_side(b, "advocate") is not None for b in bodies] == [True, True, False]
    assert "cap_period_reached" in bodies[2]["notes"]
