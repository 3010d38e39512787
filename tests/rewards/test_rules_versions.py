"""A program's reward rules are versioned: a change of the rewards makes a new version, each
reward says the version it was granted under, and no later change alters it."""

from __future__ import annotations

from tests.factories import NO_VELOCITY, create_advocate, create_program, referred_order
from tests.scenarios import get


async def _patch(client, tenant, program_id: str, body: dict) -> dict:
    response = await client.patch(f"/v1/programs/{program_id}", json=body, headers=tenant.auth)
    assert response.status_code == 200, response.text
    return response.json()


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
