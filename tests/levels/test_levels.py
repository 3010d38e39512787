"""Levels through the API: reached by referred friends or points earned in a rolling year,
they raise the advocate's referral reward and multiply points, are told as
`customer.level_changed`, show in the explain view, and never go down within their year."""

from __future__ import annotations

from datetime import UTC, datetime

from referral.levels import service as levels
from referral.points import service as points
from referral.points.rules import add_months
from tests.factories import create_advocate, referred_order
from tests.points.helpers import RULES, balance, cancel_order, order, points_program

BY_REFERRALS = {
    **RULES,
    "levels": {
        "qualifier": "referrals",
        "levels": [
            {"name": "Member", "threshold": 0},
            {
                "name": "Gold",
                "threshold": 2,
                "multiplier_bp": 20_000,
                "advocate": {"kind": "cash", "amounts": {"EUR": 2500}},
            },
        ],
    },
}
BY_POINTS = {
    **RULES,
    "levels": {
        "qualifier": "points",
        "levels": [
            {"name": "Member", "threshold": 0},
            {"name": "Silver", "threshold": 100, "multiplier_bp": 15_000},
        ],
    },
}


async def _events(client, tenant, type_: str) -> list[dict]:
    response = await client.get("/v1/events", params={"type": type_}, headers=tenant.auth)
    return [e["data"] for e in response.json()["data"]]


async def test_two_friends_make_gold_which_pays_more_and_is_explained(client, tenant):
    program = await points_program(client, tenant, rules=BY_REFERRALS)
    anna = await create_advocate(client, tenant, program["id"], "cus_anna")
    first = await referred_order(client, tenant, anna["code"], 1)
    shown = await balance(client, tenant, program, "cus_anna")
    assert shown["level"]["name"] == "Member"
    assert (shown["level"]["next_level"], shown["level"]["to_next"]) == ("Gold", 1)
    await referred_order(client, tenant, anna["code"], 2)
    shown = await balance(client, tenant, program, "cus_anna")
    assert shown["level"]["name"] == "Gold" and shown["level"]["to_next"] is None
    (changed,) = await _events(client, tenant, "customer.level_changed")
    assert (changed["from"], changed["to"], changed["qualifying"]) == ("Member", "Gold", 2)
    # the third friend's reward is Gold's, and the advocate's points are doubled
    third = await referred_order(client, tenant, anna["code"], 3)
    (advocate_reward,) = [r for r in third["rewards"] if r["side"] == "advocate"]
    assert advocate_reward["amount"] == 2500
    (first_reward,) = [r for r in first["rewards"] if r["side"] == "advocate"]
    assert first_reward["amount"] == 1000
    explained = await client.get(f"/v1/referrals/{third['referral']['id']}", headers=tenant.auth)
    level = explained.json()["advocate_level"]
    assert level["level"]["name"] == "Gold" and level["advocate_reward"]["amounts"] == {"EUR": 2500}
    assert [(c["from_level"], c["to_level"]) for c in level["changes"]][0] == ("Member", "Gold")


async def test_a_level_multiplies_later_points_and_is_kept_for_its_year(client, tenant, pool, ids):
    program = await points_program(client, tenant, rules=BY_POINTS)
    big = await order(client, tenant, "cus_bo", 12_000)  # 120 points: Silver
    assert (await balance(client, tenant, program, "cus_bo"))["level"]["name"] == "Silver"
    await order(client, tenant, "cus_bo", 1_000)  # 10 points x 1.5
    assert (await balance(client, tenant, program, "cus_bo"))["balance"] == 135
    await cancel_order(client, tenant, big)  # qualifying falls to 15: still Silver this year
    shown = await balance(client, tenant, program, "cus_bo")
    assert shown["level"]["name"] == "Silver" and shown["level"]["qualifying"] == 15
    # a year and a month on, the level's year is over and the activity no longer holds it
    program_pk = ids.decode("program", program["id"])
    later = add_months(datetime.now(UTC), 13)
    async with pool.acquire() as conn, conn.transaction():
        version, current = await points.current(
            conn, merchant_id=tenant.merchant_id, program_id=program_pk
        )
        name = await levels.recompute(
            conn,
            merchant_id=tenant.merchant_id,
            program_id=program_pk,
            customer_id="cus_bo",
            levels=current.levels,
            rules_version=version,
            program_public_id=program["id"],
            now=later,
        )
    assert name == "Member"
    assert [e["to"] for e in await _events(client, tenant, "customer.level_changed")] == [
        "Silver",
        "Member",
    ]
