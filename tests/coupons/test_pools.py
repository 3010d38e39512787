"""Friend coupons from the shop's own codes: a pool uploaded (JSON or CSV, each code once),
given one per friend, running low and running out without blocking an order, refilled;
and the checkout's own coupon calls (validate before payment, redeem on its own, release on
a cancel). Through the API, as a shop's backend and checkout meet them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from itertools import count

from referral.rewards.service import release_due
from tests.factories import NO_VELOCITY, create_advocate, create_program, on_app_loop
from tests.scenarios import get, post

_orders = count(1)
ACTION = {"actor": "marketing@shop.example"}
POOL_FRIEND = {"kind": "coupon", "amounts": {"EUR": 1500}, "coupon_source": "pool"}


def _order(customer_id: str, *codes: str, **fields) -> dict:
    return {
        "order_id": f"p-{next(_orders)}",
        "customer_id": customer_id,
        "email": f"{customer_id}@example.org",
        "subtotal": 4000,
        "total": 4000,
        "currency": "EUR",
        "occurred_at": datetime.now(UTC).isoformat(),
        "codes": list(codes),
        **fields,
    }


async def _program(client, tenant, **rewards) -> tuple[dict, dict]:
    program = await create_program(
        client,
        tenant,
        hold_days=0,
        fraud_policy=NO_VELOCITY,
        rewards={
            "advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
            "friend": POOL_FRIEND,
            **rewards,
        },
    )
    anna = await create_advocate(client, tenant, program["id"], "anna")
    return program, anna


async def _pool(client, tenant, program, **fields) -> dict:
    body = {"name": "Welcome 15", "currency": "EUR", "low_below": 2, "low_days": 0, **fields}
    return await post(client, tenant, f"/v1/programs/{program['id']}/coupon-pools", body, 201)


async def _upload(client, tenant, pool, codes: list[str], **fields) -> dict:
    body = {"codes": codes, **fields}
    return await post(client, tenant, f"/v1/coupon-pools/{pool['id']}/codes", body)


def _friend_reward(result: dict) -> dict:
    (reward,) = [r for r in result["rewards"] if r["side"] == "friend"]
    assert reward["kind"] == "coupon"
    return reward


async def test_each_code_is_kept_once_and_bad_codes_are_listed(client, tenant):
    program, anna = await _program(client, tenant)
    pool = await _pool(client, tenant, program)
    added = await _upload(
        client,
        tenant,
        pool,
        ["WELCOME-A1", "welcome-a1", "WELCOME-B2", "has space", "F1ABCDEFGHJK", anna["code"]],
    )
    assert (added["added"], added["duplicates"], added["refused_count"]) == (2, 1, 3)
    assert {(r["code"], r["reason"]) for r in added["refused"]} == {
        ("has space", "invalid_characters"),
        ("F1ABCDEFGHJK", "reads_as_generated_coupon"),
        (anna["code"], "is_a_referral_code"),
    }
    assert added["pool"]["available"] == 2
    # The same file again adds nothing; another pool of the merchant can't take them either.
    again = await _upload(client, tenant, pool, ["WELCOME-A1", "WELCOME-B2"])
    assert (again["added"], again["duplicates"]) == (0, 2)
    other = await _pool(client, tenant, program, name="Second batch")
    response = await client.post(
        f"/v1/coupon-pools/{other['id']}/codes.csv",
        content=b"code\r\nwelcome-b2\r\nWELCOME-C3\r\n",
        headers={**tenant.auth, "content-type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert (response.json()["added"], response.json()["duplicates"]) == (1, 1)
    listed = await get(client, tenant, f"/v1/programs/{program['id']}/coupon-pools")
    assert [p["available"] for p in listed] == [2, 1]


async def test_friends_get_codes_oldest_first_and_an_empty_pool_never_blocks_an_order(
    client, tenant
):
    program, anna = await _program(client, tenant)
    pool = await _pool(client, tenant, program, low_below=2)
    await _upload(client, tenant, pool, ["WELCOME-A1", "WELCOME-B2", "WELCOME-C3"])

    given = []
    for n in range(3):
        result = await post(client, tenant, "/v1/orders", _order(f"f-{n}", anna["code"]), 201)
        given.append(_friend_reward(result)["coupon_code"])
    assert given == ["WELCOME-A1", "WELCOME-B2", "WELCOME-C3"]
    # Low once (fewer than 2 left after the second), not again as it empties.
    low = await get(client, tenant, "/v1/events?type=coupon_pool.low")
    assert [e["data"]["pool_id"] for e in low["data"]] == [pool["id"]]
    assert low["data"][0]["data"]["available"] == 1

    # Empty: the order is taken, the friend's coupon waits for the next upload.
    late = await post(client, tenant, "/v1/orders", _order("f-late", anna["code"]), 201)
    waiting = _friend_reward(late)
    assert (waiting["coupon_code"], waiting["coupon_status"]) == (None, "awaiting_coupon")
    assert (await get(client, tenant, f"/v1/coupon-pools/{pool['id']}"))["waiting"] == 1

    refill = await _upload(client, tenant, pool, ["WELCOME-D4", "WELCOME-E5", "WELCOME-F6"])
    assert refill["issued_to_waiting"] == 1
    reward = await get(client, tenant, f"/v1/rewards/{waiting['id']}")
    assert reward["coupon_code"] == "WELCOME-D4"
    # Held as its reward is (pending until the release worker's next turn).
    assert (reward["status"], reward["coupon_status"]) == ("pending", "held")
    assert refill["pool"]["low_since"] is None, "refilled above its mark"
    assert (refill["pool"]["available"], refill["pool"]["waiting"]) == (2, 0)


async def test_concurrent_friends_never_share_a_code(client, tenant):
    program, anna = await _program(client, tenant)
    pool = await _pool(client, tenant, program, low_below=0)
    await _upload(client, tenant, pool, [f"CODE-{n:03d}" for n in range(6)])

    async def orders(http):
        return await asyncio.gather(
            *(
                http.post("/v1/orders", json=_order(f"c-{n}", anna["code"]), headers=tenant.auth)
                for n in range(8)
            )
        )

    answers = await on_app_loop(client, orders)
    assert [a.status_code for a in answers] == [201] * 8
    codes = [_friend_reward(a.json())["coupon_code"] for a in answers]
    given = [c for c in codes if c]
    assert sorted(given) == [f"CODE-{n:03d}" for n in range(6)]
    assert codes.count(None) == 2


async def test_validate_answers_the_checkout_before_payment(client, tenant, pool, ids):
    program, anna = await _program(client, tenant)
    codes = await _pool(client, tenant, program)
    await _upload(client, tenant, codes, ["Spring-7QX2"])
    first = await post(client, tenant, "/v1/orders", _order("dora", anna["code"]), 201)
    await release_due(pool, ids=ids)  # no hold: the worker's next turn approves it
    assert _friend_reward(first)["coupon_code"] == "Spring-7QX2"

    async def validate(code: str, **fields) -> dict:
        body = {"code": code, "currency": "EUR", "subtotal": 1000, **fields}
        return await post(client, tenant, "/v1/coupons/validate", body)

    answer = await validate("SPRING-7qx2", customer_id="dora")  # typed in another case
    assert (answer["valid"], answer["discount"], answer["amount"]) == (True, 1000, 1500)
    assert (await validate("Spring-7QX2", subtotal=5000))["discount"] == 1500
    assert (await validate("Spring-7QX2", customer_id="eve"))["reason"] == "coupon_other_customer"
    assert (await validate("Spring-7QX2", currency="SEK"))["reason"] == "coupon_other_currency"
    assert (await validate("NOPE-0000"))["reason"] == "coupon_not_found"
    bad = await client.post(
        "/v1/coupons/validate",
        json={"code": "x", "currency": "EUR", "subtotal": -1},
        headers=tenant.auth,
    )
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"


async def test_a_redemption_reported_on_its_own_is_idempotent_and_the_order_agrees(
    client, tenant, pool, ids
):
    program, anna = await _program(client, tenant)
    codes = await _pool(client, tenant, program)
    await _upload(client, tenant, codes, ["GIFT-0001"])
    await post(client, tenant, "/v1/orders", _order("dora", anna["code"]), 201)
    await release_due(pool, ids=ids)

    body = {"order_id": "web-77", "currency": "EUR", "customer_id": "dora"}
    first = await post(client, tenant, "/v1/coupons/gift-0001/redeem", body)
    again = await post(client, tenant, "/v1/coupons/GIFT-0001/redeem", body)
    assert first["applies"] is again["applies"] is True
    other = await post(
        client, tenant, "/v1/coupons/GIFT-0001/redeem", {**body, "order_id": "web-78"}
    )
    assert (other["applies"], other["reason"]) == (False, "coupon_redeemed")
    # The order itself, reported after, finds the coupon redeemed by itself.
    order = await post(
        client, tenant, "/v1/orders", _order("dora", "GIFT-0001", order_id="web-77"), 201
    )
    assert order["coupons_redeemed"] == ["GIFT-0001"]
    missing = await client.post("/v1/coupons/NOPE-1/redeem", json=body, headers=tenant.auth)
    assert missing.status_code == 404 and missing.json()["code"] == "coupon_not_found"


async def test_a_cancelled_order_releases_its_coupon_when_the_program_says_so(
    client, tenant, pool, ids
):
    program, anna = await _program(client, tenant, release_coupon_on_refund=True)
    codes = await _pool(client, tenant, program)
    await _upload(client, tenant, codes, ["BACK-0001"])
    await post(client, tenant, "/v1/orders", _order("dora", anna["code"]), 201)
    await release_due(pool, ids=ids)
    used = await post(client, tenant, "/v1/orders", _order("dora", "BACK-0001"), 201)
    assert used["coupons_redeemed"] == ["BACK-0001"]
    body = {"code": "BACK-0001", "currency": "EUR", "subtotal": 4000}
    assert (await post(client, tenant, "/v1/coupons/validate", body))["valid"] is False

    await post(client, tenant, f"/v1/orders/{used['order_id']}/cancel", {})

    assert (await post(client, tenant, "/v1/coupons/validate", body))["valid"] is True


async def test_without_the_program_s_say_a_cancel_keeps_the_coupon_used(client, tenant, pool, ids):
    program, anna = await _program(client, tenant)
    codes = await _pool(client, tenant, program)
    await _upload(client, tenant, codes, ["KEEP-0001"])
    await post(client, tenant, "/v1/orders", _order("dora", anna["code"]), 201)
    await release_due(pool, ids=ids)
    used = await post(client, tenant, "/v1/orders", _order("dora", "KEEP-0001"), 201)
    await post(client, tenant, f"/v1/orders/{used['order_id']}/cancel", {})
    body = {"code": "KEEP-0001", "currency": "EUR", "subtotal": 4000}
    assert (await post(client, tenant, "/v1/coupons/validate", body))["reason"] == "coupon_redeemed"
