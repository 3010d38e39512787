"""Points through the API: every order earns by the program's rule and refunds take them
back pro rata; a redemption turns points into a coupon or store credit, and a cancel gives
them back while the coupon is unused; the rules are versioned."""

from __future__ import annotations

from tests.factories import create_advocate, referred_order
from tests.points.helpers import (
    RULES,
    balance,
    cancel,
    cancel_order,
    order,
    points_program,
    redeem,
    refund,
)


class TestEarningOnOrders:
    async def test_an_order_earns_a_point_per_euro_and_refunds_take_them_back_pro_rata(
        self, client, tenant
    ):
        program = await points_program(client, tenant)
        order_id = await order(client, tenant, "cus_anna", 12_345)
        shown = await balance(client, tenant, program, "cus_anna")
        assert shown["balance"] == 123
        assert [lot["source"] for lot in shown["lots"]] == ["order"]
        assert shown["next_expiry"]["points"] == 123
        await refund(client, tenant, order_id, 2_345)  # 10 000 of 12 345 left: 99.6 points
        assert (await balance(client, tenant, program, "cus_anna"))["balance"] == 99
        await cancel_order(client, tenant, order_id)
        shown = await balance(client, tenant, program, "cus_anna")
        assert shown["balance"] == 0
        assert [e["kind"] for e in shown["history"]] == ["refund", "refund", "earn"]

    async def test_guest_orders_and_other_currencies_earn_nothing(self, client, tenant):
        program = await points_program(client, tenant)
        await order(client, tenant, "cus_bo", 5_000, currency="SEK")
        assert (await balance(client, tenant, program, "cus_bo"))["balance"] == 0

    async def test_a_new_rules_version_changes_what_new_orders_earn_only(self, client, tenant):
        program = await points_program(client, tenant)
        await order(client, tenant, "cus_cy", 1_000)
        doubled = {
            **RULES,
            "earning": {**RULES["earning"], "order": {"points": 2, "per": {"EUR": 100}}},
        }
        response = await client.put(
            f"/v1/programs/{program['id']}/points", json=doubled, headers=tenant.auth
        )
        assert response.status_code == 200 and response.json()["version"] == 2
        await order(client, tenant, "cus_cy", 1_000)
        assert (await balance(client, tenant, program, "cus_cy"))["balance"] == 10 + 20


class TestRedemption:
    async def test_points_buy_a_coupon_and_a_cancel_returns_them(self, client, tenant):
        program = await points_program(client, tenant)
        await order(client, tenant, "cus_di", 40_000)
        await order(client, tenant, "cus_di", 30_000)
        redemption = await redeem(client, tenant, program, "cus_di", "5-eur")
        assert redemption["coupon_code"] and redemption["amount"] == 500
        assert redemption["status"] == "active"
        shown = await balance(client, tenant, program, "cus_di")
        assert shown["balance"] == 200
        # oldest first: the first order's lot is spent, 100 of the second's are taken
        assert [lot["remaining"] for lot in shown["lots"]] == [200]
        cancelled = await cancel(client, tenant, "cus_di", redemption["id"])
        assert cancelled["status"] == "cancelled"
        assert (await balance(client, tenant, program, "cus_di"))["balance"] == 700
        again = await cancel(client, tenant, "cus_di", redemption["id"])
        assert again["status"] == "cancelled"
        assert (await balance(client, tenant, program, "cus_di"))["balance"] == 700
        checked = await client.post(
            "/v1/coupons/validate",
            json={"code": redemption["coupon_code"], "currency": "EUR", "subtotal": 2000},
            headers=tenant.auth,
        )
        assert checked.status_code == 200 and checked.json()["valid"] is False

    async def test_not_enough_points_is_refused_and_nothing_is_taken(self, client, tenant):
        program = await points_program(client, tenant)
        await order(client, tenant, "cus_ed", 30_000)
        refused = await redeem(client, tenant, program, "cus_ed", "5-eur", status=409)
        assert refused["code"] == "insufficient_points"
        assert (await balance(client, tenant, program, "cus_ed"))["balance"] == 300

    async def test_a_used_coupon_cannot_be_cancelled(self, client, tenant):
        program = await points_program(client, tenant)
        await order(client, tenant, "cus_fi", 50_000)
        redemption = await redeem(client, tenant, program, "cus_fi", "5-eur")
        await order(client, tenant, "cus_fi", 2_000, codes=[redemption["coupon_code"]])
        refused = await cancel(client, tenant, "cus_fi", redemption["id"], status=409)
        assert refused["code"] == "redemption_used"

    async def test_store_credit_is_booked_as_money_in_the_ledger(self, client, tenant):
        program = await points_program(client, tenant)
        await order(client, tenant, "cus_gu", 20_000)
        redemption = await redeem(client, tenant, program, "cus_gu", "credit-2")
        assert redemption["kind"] == "store_credit" and redemption["coupon_code"] is None
        reward = await client.get(f"/v1/rewards/{redemption['reward_id']}", headers=tenant.auth)
        assert reward.status_code == 200 and reward.json()["status"] == "approved"


class TestOtherEarnings:
    async def test_a_signup_earns_once_and_a_referred_friend_earns_both_parties(
        self, client, tenant
    ):
        program = await points_program(client, tenant)
        for _ in range(2):  # a repeated signup answers what the first did: no second lot
            response = await client.post(
                "/v1/signups", json={"customer_id": "cus_hal"}, headers=tenant.auth
            )
            assert response.status_code in (200, 201), response.text
        assert (await balance(client, tenant, program, "cus_hal"))["balance"] == 10
        anna = await create_advocate(client, tenant, program["id"], "cus_anna")
        await referred_order(client, tenant, anna["code"], 1, subtotal=3000, total=3000)
        advocate = await balance(client, tenant, program, "cus_anna")
        assert [lot["source"] for lot in advocate["lots"]] == ["advocate_referral"]
        assert advocate["balance"] == 200
        friend = await balance(client, tenant, program, "friend-1")
        assert sorted(lot["source"] for lot in friend["lots"]) == ["friend_order", "order"]
        assert friend["balance"] == 50 + 30

    async def test_levels_by_spend_count_what_refunds_leave(self, client, tenant):
        rules = {
            **RULES,
            "levels": {
                "qualifier": "spend",
                "currency": "EUR",
                "levels": [
                    {"name": "Member", "threshold": 0},
                    {"name": "VIP", "threshold": 100_000},
                ],
            },
        }
        program = await points_program(client, tenant, rules=rules)
        await order(client, tenant, "cus_ivy", 60_000)
        shown = (await balance(client, tenant, program, "cus_ivy"))["level"]
        assert (shown["name"], shown["to_next"], shown["currency"]) == ("Member", 40_000, "EUR")
        await order(client, tenant, "cus_ivy", 40_000)
        assert (await balance(client, tenant, program, "cus_ivy"))["level"]["name"] == "VIP"
