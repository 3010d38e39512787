"""The preference centre through the API: channels, topics and birthday set by the shop's
backend, every consent given or withdrawn kept with its time and who gave it, carried by
the advocate's events; birthday points once a year, not for a birthday set just before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from referral.points import service as points
from tests.factories import create_advocate, referred_order
from tests.points.helpers import RULES, balance, points_program


async def put(client, tenant, customer_id: str, body: dict) -> dict:
    response = await client.put(
        f"/v1/customers/{customer_id}/preferences", json=body, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_consents_are_kept_as_given_and_withdrawn(client, tenant):
    missing = await client.get("/v1/customers/cus_eva/preferences", headers=tenant.auth)
    assert missing.status_code == 404 and missing.json()["code"] == "preferences_not_found"
    await put(client, tenant, "cus_eva", {"channels": ["email"], "topics": ["rewards"]})
    shown = await put(client, tenant, "cus_eva", {"channels": ["sms"], "topics": ["rewards"]})
    assert shown["channels"] == ["sms"] and shown["topics"] == ["rewards"]
    record = [(c["consent"], c["given"], c["by"]) for c in shown["consents"]]
    assert record == [
        ("channel:email", True, "key"),
        ("topic:rewards", True, "key"),
        ("channel:sms", True, "key"),
        ("channel:email", False, "key"),
    ]
    none = await put(client, tenant, "cus_eva", {"channels": [], "topics": []})
    assert none["channels"] == [] and len(none["consents"]) == 6


async def test_the_advocates_events_carry_their_preferences(client, tenant):
    program = await points_program(client, tenant)
    anna = await create_advocate(client, tenant, program["id"], "cus_anna")
    await put(client, tenant, "cus_anna", {"channels": ["email"], "topics": ["offers"]})
    await referred_order(client, tenant, anna["code"], 1)
    events = await client.get("/v1/events", params={"type": "reward.created"}, headers=tenant.auth)
    (advocate_side,) = [e["data"] for e in events.json()["data"] if e["data"]["side"] == "advocate"]
    assert advocate_side["preferences"] == {"channels": ["email"], "topics": ["offers"]}


async def test_birthday_points_once_a_year_and_not_when_set_just_before(
    client, tenant, pool, ids, db
):
    rules = {**RULES, "earning": {**RULES["earning"], "birthday": {"points": 75}}}
    program = await points_program(client, tenant, rules=rules)
    today = datetime.now(UTC)
    birthday = today.date().replace(year=1990).isoformat()
    await put(client, tenant, "cus_new", {"channels": [], "topics": [], "birthday": birthday})
    await put(client, tenant, "cus_old", {"channels": [], "topics": [], "birthday": birthday})
    # cus_old told the shop their birthday long ago (the record says when)
    await db.execute(
        "UPDATE customer_preferences SET birthday_set_at = $1 WHERE customer_id = 'cus_old'",
        today - timedelta(days=200),
    )
    assert await points.earn_birthdays(pool, ids=ids, now=today) == 1
    assert await points.earn_birthdays(pool, ids=ids, now=today) == 0
    assert (await balance(client, tenant, program, "cus_old"))["balance"] == 75
    assert (await balance(client, tenant, program, "cus_new"))["balance"] == 0
