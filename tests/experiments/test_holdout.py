"""Holdouts through the HTTP API: a held-out customer asking for a code or a share page is
told so (and counted), and the report compares treated and held-out customers' own orders
with intervals, beside the referred new customers per 1,000 treated."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from referral.experiments import rules
from tests.analytics.conftest import catch_up
from tests.factories import NO_VELOCITY, create_advocate, create_program
from tests.scenarios import get, order, post

KEY = bytes(range(16))
BROWSER = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36"}


def customers(held: bool, n: int, prefix: str = "cus") -> list[str]:
    """`n` customer ids the 50 % holdout under KEY holds out (or treats)."""
    found = []
    i = 0
    while len(found) < n:
        i += 1
        if rules.held_out(KEY, 5_000, f"{prefix}-{i}") == held:
            found.append(f"{prefix}-{i}")
    return found


async def hold_out_half(client, tenant, db, program_id: str, *, days_ago: int = 0) -> dict:
    response = await client.put(
        f"/v1/programs/{program_id}/holdout", json={"share_percent": 50}, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    holdout = response.json()
    # Its key is random: fixed here so the test knows who is held out; and, for the
    # report, started long enough ago that customers have finished their windows.
    await db.execute(
        "UPDATE program_holdouts SET hash_key = $1, started_at = now() - make_interval(days => $2)",
        KEY,
        days_ago,
    )
    return holdout


async def report(client, tenant, program_id: str) -> dict:
    return await get(client, tenant, f"/v1/programs/{program_id}/holdout")


async def test_a_held_out_customer_is_told_so_and_counted(client, tenant, db):
    program = await create_program(client, tenant)
    (before,) = customers(True, 1, "early")
    early = await create_advocate(client, tenant, program["id"], before)  # before the holdout
    holdout = await hold_out_half(client, tenant, db, program["id"])
    assert holdout["share_percent"] == 50
    (held,) = customers(True, 1)
    (treated,) = customers(False, 1)

    asked = await client.post(
        "/v1/advocates",
        json={"program_id": program["id"], "customer_id": held},
        headers=tenant.auth,
    )
    assert asked.status_code == 409, asked.text
    assert asked.headers["content-type"].startswith("application/problem+json")
    assert asked.json()["code"] == "customer_held_out"
    assert "show them no invitation" in asked.json()["detail"]
    await create_advocate(client, tenant, program["id"], treated)  # invited as before

    # An advocate from before the holdout, held out now: no share URL, no share page.
    url = await client.post(f"/v1/advocates/{early['id']}/share-url", json={}, headers=tenant.auth)
    assert url.status_code == 409 and url.json()["code"] == "customer_held_out"
    await db.execute("UPDATE program_holdouts SET share_bps = 100")  # let the URL be made
    made = await post(client, tenant, f"/v1/advocates/{early['id']}/share-url", {}, 201)
    await db.execute("UPDATE program_holdouts SET share_bps = 5000")
    page = await client.get(made["url"].replace("http://testserver.local", ""), headers=BROWSER)
    assert page.status_code == 403
    assert "No invitation to share right now" in page.text
    assert "programme is not open to you" in page.text
    assert early["code"] not in page.text
    token = made["url"].rsplit("/", 1)[1]
    widget = await client.get(f"/widget/v1/share/{token}")
    assert widget.status_code == 409 and widget.json()["code"] == "customer_held_out"

    answer = await report(client, tenant, program["id"])
    assert answer["held_out_answers"] == 4  # the code, the share URL, the page, the widget
    assert answer["windows"][0]["verdict"] == "too_few_data"
    assert "Too few customers" in answer["conclusion"]


async def test_no_holdout_is_a_404(client, tenant):
    program = await create_program(client, tenant)
    response = await client.get(f"/v1/programs/{program['id']}/holdout", headers=tenant.auth)
    assert response.status_code == 404 and response.json()["code"] == "holdout_not_found"


async def test_the_report_compares_treated_and_held_out_customers(client, tenant, db, pool, ids):
    """Treated customers come back more often (as a program that works would make them);
    the report finds it over 30 days, with intervals around each group's true rate, and
    says what the program's referrals brought per 1,000 treated customers."""
    program = await create_program(client, tenant, fraud_policy=NO_VELOCITY)
    await hold_out_half(client, tenant, db, program["id"], days_ago=400)
    truth = {False: 0.6, True: 0.2}  # repeat within 30 days: treated, held out
    rng = random.Random(7)
    first = datetime.now(UTC) - timedelta(days=300)
    for held in (False, True):
        for customer in customers(held, 60, "shopper"):
            await order(client, tenant, customer, occurred_at=first.isoformat())
            if rng.random() < truth[held]:
                again = first + timedelta(days=10)
                await order(client, tenant, customer, occurred_at=again.isoformat(), total=3000)
    # The program's referrals: an advocate (treated) and three new customers by her code.
    (anna,) = customers(False, 1, "anna")
    advocate = await create_advocate(client, tenant, program["id"], anna)
    for n in range(3):
        await order(client, tenant, f"friend-{n}", advocate["code"])
    await catch_up(pool, ids)

    answer = await report(client, tenant, program["id"])
    thirty = answer["windows"][0]
    assert thirty["days"] == 30
    assert thirty["treated_customers"] == 60 and thirty["held_out_customers"] == 60
    by = {(c["metric"], c["currency"]): c for c in thirty["comparisons"]}
    repeat = by[("repeat_rate", None)]
    assert repeat["treated"]["low"] < truth[False] < repeat["treated"]["high"]
    assert repeat["held_out"]["low"] < truth[True] < repeat["held_out"]["high"]
    assert repeat["difference"]["low"] > 0  # the loyalty effect, found
    assert thirty["verdict"] == "difference"
    revenue = by[("revenue_per_customer", "EUR")]
    assert revenue["treated"]["value"] == pytest.approx(repeat["treated"]["value"] * 3000, rel=1e-9)
    assert revenue["method"] == "bootstrap"
    # Every window is complete for these customers (their first order is 300 days old).
    assert [w["days"] for w in answer["windows"]] == [30, 90, 180]
    assert all(w["treated_customers"] == 60 for w in answer["windows"])
    # Every customer who ordered since the start: the 120 and Anna's three friends (Anna
    # herself has ordered nothing).
    assert answer["treated_customers"] + answer["held_out_customers"] == 120 + 3
    assert answer["referred_new_customers"] == 3
    assert answer["referred_new_customers_per_1000_treated"] == pytest.approx(
        round(3 * 1000 / answer["treated_customers"], 2)
    )
    assert "treated customers ordered again" in answer["conclusion"]
