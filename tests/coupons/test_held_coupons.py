"""Held money is held everywhere: a friend's coupon is issued with its reward but cannot be
redeemed while the reward is in review or within its hold. Approval (the hold passing, or a
person) makes it redeemable; rejection or reversal voids it. Checked through the quote and
the order API, as a shop's checkout meets it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from itertools import count

from referral.rewards.service import expire_coupons, release_due
from tests.factories import NO_VELOCITY, create_advocate, create_program, on_app_loop
from tests.scenarios import ANNA_SEEN, get, post, referral_in_review

_orders = count(1)
ACTION = {"actor": "risk@shop.example"}


def _order_body(customer_id: str, *codes: str, **fields) -> dict:
    return {
        "order_id": f"c-{next(_orders)}",
        "customer_id": customer_id,
        "email": f"{customer_id}@example.org",
        "subtotal": 4000,
        "total": 4000,
        "currency": "EUR",
        "occurred_at": datetime.now(UTC).isoformat(),
        "codes": list(codes),
        **fields,
    }


async def use(client, tenant, customer_id: str, coupon: str, **fields) -> dict:
    """A later order of the friend's with their coupon typed at checkout: its answer for
    the coupon."""
    result = await post(
        client, tenant, "/v1/orders", _order_body(customer_id, coupon, **fields), 201
    )
    (answer,) = result["coupons"]
    assert answer["code"] == coupon
    if answer["applies"]:
        assert result["coupons_redeemed"] == [coupon]
    else:
        assert result["coupons_redeemed"] == []
        assert "coupon_not_redeemable" in result["notes"]
    return answer


async def quote(client, tenant, customer_id: str, coupon: str, currency: str = "EUR") -> dict:
    body = {
        "customer_id": customer_id,
        "codes": [coupon],
        "subtotal": 4000,
        "currency": currency,
    }
    (answer,) = (await post(client, tenant, "/v1/checkout/quote", body))["coupons"]
    return answer


def friend_reward(rewards: list[dict]) -> dict:
    (reward,) = [r for r in rewards if r["side"] == "friend"]
    assert reward["kind"] == "coupon" and reward["coupon_code"]
    return reward


async def test_a_coupon_in_review_is_not_redeemable_until_its_reward_is_approved(
    client, tenant, pool, ids
):
    _, first = await referral_in_review(client, tenant)
    reward = friend_reward(first["rewards"])
    coupon = reward["coupon_code"]
    assert (reward["status"], reward["coupon_status"]) == ("in_review", "held")

    held = await quote(client, tenant, "bert", coupon)
    assert held == {
        "code": coupon,
        "applies": False,
        "reason": "coupon_held",
        "amount": 1000,
        "currency": "EUR",
        "held_until": None,  # a person decides: no date to promise
    }
    assert await use(client, tenant, "bert", coupon) == held  # the order agrees with the quote

    referral_id = first["referral"]["id"]
    explained = await get(client, tenant, f"/v1/referrals/{referral_id}")
    assert "coupon" in explained["hold_rule"] and "approved" in explained["hold_rule"]
    assert friend_reward(explained["rewards"])["coupon_status"] == "held"

    # A person approves: the rewards enter their hold (0 days here), still held until the
    # hold is released.
    approved = await post(client, tenant, f"/v1/referrals/{referral_id}/approve", ACTION)
    assert friend_reward(approved["rewards"])["status"] == "pending"
    pending = await use(client, tenant, "bert", coupon)
    assert pending["reason"] == "coupon_held" and pending["held_until"] is not None

    assert await release_due(pool, ids=ids) == 2
    assert (await quote(client, tenant, "bert", coupon))["applies"] is True
    redeemed = await use(client, tenant, "bert", coupon)
    assert redeemed == {**held, "applies": True, "reason": None}
    again = await use(client, tenant, "bert", coupon)
    assert again["reason"] == "coupon_redeemed"
    assert (await quote(client, tenant, "bert", coupon))["reason"] == "coupon_redeemed"


async def test_a_coupon_within_its_hold_is_redeemable_once_released(client, tenant, pool, ids):
    program = await create_program(client, tenant, hold_days=14)
    anna = await create_advocate(client, tenant, program["id"], "anna")
    first = await post(client, tenant, "/v1/orders", _order_body("carl", anna["code"]), 201)
    reward = friend_reward(first["rewards"])
    coupon = reward["coupon_code"]
    assert (reward["status"], reward["coupon_status"]) == ("pending", "held")
    explained = await get(client, tenant, f"/v1/referrals/{first['referral']['id']}")
    hold_until = friend_reward(explained["rewards"])["hold_until"]

    held = await use(client, tenant, "carl", coupon)
    assert held["reason"] == "coupon_held"
    assert datetime.fromisoformat(held["held_until"]) == datetime.fromisoformat(hold_until)

    now = datetime.now(UTC)
    assert await release_due(pool, ids=ids, now=now + timedelta(days=1)) == 0
    assert (await quote(client, tenant, "carl", coupon))["reason"] == "coupon_held"

    assert await release_due(pool, ids=ids, now=now + timedelta(days=15)) == 2
    explained = await get(client, tenant, f"/v1/referrals/{first['referral']['id']}")
    released = friend_reward(explained["rewards"])
    assert (released["status"], released["coupon_status"]) == ("approved", "issued")
    # The hold did not eat into the friend's time to use it: 30 days from the release.
    expires = datetime.fromisoformat(released["coupon_expires_at"])
    approved_at = datetime.fromisoformat(released["approved_at"])
    assert abs(expires - (approved_at + timedelta(days=30))) < timedelta(minutes=1)
    assert (await quote(client, tenant, "carl", coupon, currency="USD"))["reason"] == (
        "coupon_other_currency"
    )
    assert (await use(client, tenant, "carl", coupon))["applies"] is True


async def test_a_person_approving_the_reward_makes_it_redeemable(client, tenant):
    program = await create_program(client, tenant, hold_days=14)
    anna = await create_advocate(client, tenant, program["id"], "anna")
    first = await post(client, tenant, "/v1/orders", _order_body("dora", anna["code"]), 201)
    reward = friend_reward(first["rewards"])
    assert (await use(client, tenant, "dora", reward["coupon_code"]))["reason"] == "coupon_held"
    await post(client, tenant, f"/v1/rewards/{reward['id']}/approve", ACTION)
    assert (await use(client, tenant, "dora", reward["coupon_code"]))["applies"] is True


async def test_a_rejected_referral_s_coupon_is_never_redeemable(client, tenant, pool, ids):
    _, first = await referral_in_review(client, tenant)
    coupon = friend_reward(first["rewards"])["coupon_code"]
    referral_id = first["referral"]["id"]
    rejected = await post(client, tenant, f"/v1/referrals/{referral_id}/reject", ACTION)
    assert friend_reward(rejected["rewards"])["coupon_status"] == "void"
    assert (await use(client, tenant, "bert", coupon))["reason"] == "coupon_void"
    later = datetime.now(UTC) + timedelta(days=60)
    assert await release_due(pool, ids=ids, now=later) == 0
    assert (await quote(client, tenant, "bert", coupon))["reason"] == "coupon_void"

    # Undoing the rejection returns the coupon to its reward's hold, not straight to use.
    await post(client, tenant, f"/v1/referrals/{referral_id}/approve", ACTION)
    assert (await use(client, tenant, "bert", coupon))["reason"] == "coupon_held"
    await release_due(pool, ids=ids)
    # Rejected after approval: an unused coupon stops working at once.
    await post(client, tenant, f"/v1/referrals/{referral_id}/reject", ACTION)
    assert (await use(client, tenant, "bert", coupon))["reason"] == "coupon_void"


async def test_unknown_coupons_are_answered_in_the_quote_and_the_order(client, tenant):
    await create_program(client, tenant)
    assert (await quote(client, tenant, "erik", "F1ZZZZZZZZZZ"))["reason"] == "coupon_not_found"
    assert (await use(client, tenant, "erik", "F1ZZZZZZZZZZ"))["reason"] == "coupon_not_found"


async def _race(client, calls):
    async def send(http):
        return await asyncio.gather(
            *(
                http.request(method, url, json=body, headers=headers)
                for method, url, body, headers in calls
            )
        )

    return await on_app_loop(client, send)


async def test_redemption_racing_a_review_never_redeems_a_held_coupon(client, tenant, db):
    """A checkout with the coupon at the moment a person approves or rejects the reward:
    the order redeems it only if the approval came first, never after a rejection, and its
    answer always agrees with the coupon as stored."""
    program = await create_program(
        client,
        tenant,
        hold_days=0,
        fraud_policy={
            "same_ip": {"action": "review"},
            # eight friends on Anna's network in a minute, half of them rejected, is this
            # test's setup, not what it checks
            "ip_velocity": {"enabled": False},
            "rejected_referrals": {"enabled": False},
            **NO_VELOCITY,
        },
    )
    anna = await create_advocate(client, tenant, program["id"], "anna")
    await post(client, tenant, "/v1/orders", _order_body("anna", **ANNA_SEEN), 201)
    outcomes = set()
    for n in range(8):
        friend = f"friend-{n}"
        first = await post(
            client,
            tenant,
            "/v1/orders",
            _order_body(friend, anna["code"], ip=ANNA_SEEN["ip"]),
            201,
        )
        assert first["referral"]["status"] == "in_review"
        reward = friend_reward(first["rewards"])
        coupon = reward["coupon_code"]
        if n % 2:
            decide = ("POST", f"/v1/referrals/{first['referral']['id']}/reject", ACTION)
        else:
            decide = ("POST", f"/v1/rewards/{reward['id']}/approve", ACTION)
        decided, ordered = await _race(
            client,
            [
                (*decide, tenant.auth),
                ("POST", "/v1/orders", _order_body(friend, coupon), tenant.auth),
            ],
        )
        assert decided.status_code == 200, decided.text
        assert ordered.status_code == 201, ordered.text
        (answer,) = ordered.json()["coupons"]
        stored = await db.fetchrow(
            "SELECT c.status, c.redeemed_order_pk, r.status AS reward FROM coupons c"
            " JOIN rewards r ON r.merchant_id = c.merchant_id AND r.id = c.reward_id"
            " WHERE c.merchant_id = $1 AND c.code = $2",
            tenant.merchant_id,
            coupon,
        )
        if n % 2:  # rejected: held, then void — never redeemed
            assert not answer["applies"] and answer["reason"] in ("coupon_held", "coupon_void")
            assert (stored["status"], stored["reward"]) == ("void", "reversed")
        elif answer["applies"]:  # the approval committed first
            assert (stored["status"], stored["reward"]) == ("redeemed", "approved")
        else:  # the order came first: still held then, redeemable now
            assert answer["reason"] == "coupon_held"
            assert (stored["status"], stored["reward"]) == ("issued", "approved")
        outcomes.add((n % 2, answer["applies"], answer["reason"]))
    assert outcomes  # at least one race ran each way


async def test_an_unused_coupon_expires_after_the_program_s_days_and_its_reward_goes(
    client, tenant, pool, ids
):
    rewards = {
        "advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
        "friend": {"kind": "coupon", "amounts": {"EUR": 1000}},
        "friend_coupon_days": 7,
    }
    program = await create_program(client, tenant, hold_days=0, rewards=rewards)
    anna = await create_advocate(client, tenant, program["id"], "anna")
    first = await post(client, tenant, "/v1/orders", _order_body("dora", anna["code"]), 201)
    coupon = friend_reward(first["rewards"])["coupon_code"]
    now = datetime.now(UTC)
    assert await release_due(pool, ids=ids, now=now + timedelta(seconds=1)) == 2
    assert (await quote(client, tenant, "dora", coupon))["applies"] is True

    assert await expire_coupons(pool, ids=ids, now=now + timedelta(days=6)) == 0
    assert await expire_coupons(pool, ids=ids, now=now + timedelta(days=8)) == 1
    assert await expire_coupons(pool, ids=ids, now=now + timedelta(days=9)) == 0, "once"

    assert (await quote(client, tenant, "dora", coupon))["reason"] == "coupon_expired"
    assert (await use(client, tenant, "dora", coupon))["reason"] == "coupon_expired"
    explained = await get(client, tenant, f"/v1/referrals/{first['referral']['id']}")
    by_side = {r["side"]: r for r in explained["rewards"]}
    assert by_side["friend"]["status"] == "reversed"
    assert by_side["friend"]["history"][-1]["reason"] == "coupon_expired"
    assert by_side["advocate"]["status"] == "approved", "the advocate keeps theirs"
