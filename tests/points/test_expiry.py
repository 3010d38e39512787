"""The expiry job: lots expire oldest first a year after they were earned (or all at once a
year after the last activity), `points.expiring` tells the shop 30 days ahead, once, and
several instances running the job at once expire each lot once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from referral.points import service as points
from referral.points.rules import add_months
from tests.points.helpers import RULES, balance, order, points_program


async def _events(client, tenant, type_: str) -> list[dict]:
    response = await client.get("/v1/events", params={"type": type_}, headers=tenant.auth)
    assert response.status_code == 200, response.text
    return [e["data"] for e in response.json()["data"]]


async def test_lots_expire_a_year_after_earning_with_a_notice_30_days_before(
    client, tenant, pool, ids
):
    program = await points_program(client, tenant)
    early = datetime.now(UTC) - timedelta(days=40)
    await order(client, tenant, "cus_old", 10_000, occurred_at=early.isoformat())
    await order(client, tenant, "cus_old", 5_000)
    await client.put(
        "/v1/customers/cus_old/preferences",
        json={"channels": ["email"], "topics": ["rewards"]},
        headers=tenant.auth,
    )
    first_expiry = add_months(early, 12)

    # 31 days before: nothing to say yet
    assert await points.expire_due(pool, ids=ids, now=first_expiry - timedelta(days=31)) == 0
    assert await _events(client, tenant, "points.expiring") == []
    # 29 days before: the shop hears of the first lot, once however often the job runs
    for _ in range(3):
        await points.expire_due(pool, ids=ids, now=first_expiry - timedelta(days=29))
    (told,) = await _events(client, tenant, "points.expiring")
    assert told["customer_id"] == "cus_old" and told["points"] == 100
    assert told["program_id"] == program["id"]
    assert told["preferences"] == {"channels": ["email"], "topics": ["rewards"]}
    # at its expiry the first lot goes, the second stays
    assert await points.expire_due(pool, ids=ids, now=first_expiry + timedelta(seconds=1)) == 1
    shown = await balance(client, tenant, program, "cus_old")
    assert shown["balance"] == 50
    assert shown["history"][0]["kind"] == "expire" and shown["history"][0]["delta"] == -100


async def test_many_instances_at_once_expire_each_lot_once(client, tenant, pool, ids, db):
    program = await points_program(client, tenant)
    for n in range(12):
        await order(client, tenant, f"cus_{n}", 1_000 + n * 100)
    later = add_months(datetime.now(UTC), 12) + timedelta(days=1)
    counts = await asyncio.gather(
        *(points.expire_due(pool, ids=ids, now=later, batch=3) for _ in range(4))
    )
    assert sum(counts) == 12
    assert await db.fetchval("SELECT count(*) FROM points_entries WHERE kind = 'expire'") == 12
    assert await db.fetchval("SELECT sum(remaining) FROM points_lots") == 0
    assert (await balance(client, tenant, program, "cus_3"))["balance"] == 0


async def test_since_the_last_activity_every_lot_waits_for_the_latest(client, tenant, pool, ids):
    rules = {**RULES, "expiry": {"months": 6, "since": "activity"}}
    program = await points_program(client, tenant, rules=rules)
    early = datetime.now(UTC) - timedelta(days=100)
    await order(client, tenant, "cus_act", 10_000, occurred_at=early.isoformat())
    await order(client, tenant, "cus_act", 2_000)
    shown = await balance(client, tenant, program, "cus_act")
    expiry = datetime.fromisoformat(shown["next_expiry"]["at"])
    assert shown["next_expiry"]["points"] == 120
    assert expiry > add_months(datetime.now(UTC), 6) - timedelta(minutes=1)
    # the old lot would have expired by itself; counted from the last order, it waits
    assert await points.expire_due(pool, ids=ids, now=add_months(early, 6) + timedelta(days=1)) == 0
    assert await points.expire_due(pool, ids=ids, now=expiry + timedelta(seconds=1)) == 2
    assert (await balance(client, tenant, program, "cus_act"))["balance"] == 0
