"""A program's reward rules are versioned: a change of the rewards makes a new version, each
reward says the version it was granted under, and no later change alters it."""

from __future__ import annotations

from tests.factories import NO_VELOCITY, create_advocate, create_program, referred_order
from tests.scenarios import get


async def _patch(client, tenant, program_id: str, body: dict) -> dict:
    response = await client.patch(f"/v1/programs/{program_id}", json=body, headers=tenant.auth)
    assert response.status_code == 200, response.text
    return response.json()


async def _refund(client, tenant, refund_id: str, amount: int) -> None:
    response = await client.post(
        "/v1/orders/ord-1/refunds",
        json={"refund_id": refund_id, "amount": amount, "currency": "EUR"},
        headers=tenant.auth,
    )
    assert response.status_code == 201, response.text


def _advocate_reward(order: dict) -> dict:
    (reward,) = [r for r in order["rewards"] if r["side"] == "advocate"]
    return reward


async def test_a_change_of_the_rewards_is_a_new_version_and_granted_rewards_keep_theirs(
    client, tenant
):
    program = await create_program(client, tenant, fraud_policy=NO_VELOCITY)
    assert program["rules_version"] == 1
    anna = await create_advocate(client, tenant, program["id"], "anna")
    first = _advocate_reward(await referred_order(client, tenant, anna["code"], 1))

    rewards = {**program["rewards"], "advocate": {"kind": "cash", "amounts": {"EUR": 2500}}}
    changed = await _patch(client, tenant, program["id"], {"rewards": rewards})
    assert changed["rules_version"] == 2
    renamed = await _patch(client, tenant, program["id"], {"name": "Give 10, get 25"})
    assert renamed["rules_version"] == 2, "only a change of the rewards is a new version"
    second = _advocate_reward(await referred_order(client, tenant, anna["code"], 2))

    before = await get(client, tenant, f"/v1/rewards/{first['id']}")
    after = await get(client, tenant, f"/v1/rewards/{second['id']}")
    assert (before["amount"], before["rules_version"]) == (1000, 1)
    assert (after["amount"], after["rules_version"]) == (2500, 2)
    explained = await get(client, tenant, f"/v1/referrals/{before['referral_id']}")
    shown = {r["id"]: r["rules_version"] for r in explained["rewards"]}
    assert shown[first["id"]] == 1


async def test_a_refund_is_judged_by_the_minimum_order_the_reward_was_earned_under(client, tenant):
    program = await create_program(client, tenant, fraud_policy=NO_VELOCITY)
    rewards = {**program["rewards"], "minimum_order": {"EUR": 4000}}
    await _patch(client, tenant, program["id"], {"rewards": rewards})
    anna = await create_advocate(client, tenant, program["id"], "anna")
    earned = _advocate_reward(await referred_order(client, tenant, anna["code"], 1))
    # The shop raises its minimum afterwards; the friend then returns a tenth of the order.
    raised = {**rewards, "minimum_order": {"EUR": 6000}}
    await _patch(client, tenant, program["id"], {"rewards": raised})
    await _refund(client, tenant, "rf-1", 500)
    kept = await get(client, tenant, f"/v1/rewards/{earned['id']}")
    assert kept["status"] != "reversed", "4,500 left is above the 4,000 it was earned under"
    assert kept["amount"] == earned["amount"]
    # Below the minimum it was earned under, it goes.
    await _refund(client, tenant, "rf-2", 1000)
    gone = await get(client, tenant, f"/v1/rewards/{earned['id']}")
    assert gone["status"] == "reversed"
