"""The fraud engine through the API, on a real PostgreSQL: rules that need history (shared
signals, velocity, reciprocity, rejections), what a decision does to money, the review
queue, the policy as a resource, backtests and test-mode magic inputs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest

from referral.rewards.service import release_due
from tests.factories import create_advocate, create_program, on_app_loop

_orders = count(1)
ANNA_SEEN = {
    "ip": "198.51.100.7",
    "user_agent": "Mozilla/5.0 (Anna's laptop)",
    "payment_fingerprint": "pm_fp_anna_visa",
    "shipping_address": {
        "line1": "Storgatan 12",
        "city": "Malmö",
        "postal_code": "211 42",
        "country": "SE",
    },
}


async def post(client, tenant, path: str, body: Any, status: int = 200) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=tenant.auth)
    assert response.status_code == status, response.text
    return response.json()


async def get(client, tenant, path: str) -> dict[str, Any]:
    response = await client.get(path, headers=tenant.auth)
    assert response.status_code == 200, response.text
    return response.json()


async def order(client, tenant, customer_id: str, code: str | None = None, **fields) -> dict:
    body = {
        "order_id": f"o-{next(_orders)}",
        "customer_id": customer_id,
        "email": f"{customer_id}@example.org",
        "subtotal": 5000,
        "total": 5000,
        "currency": "EUR",
        "occurred_at": datetime.now(UTC).isoformat(),
        **fields,
    }
    if code:
        body["codes"] = [code]
    return await post(client, tenant, "/v1/orders", body, 201)


async def setup(client, tenant, fraud_policy: dict | None = None, **program) -> dict:
    """A program, advocate Anna, and one order of Anna's own (what the shop sends for every
    customer), so her device, network, card and address are known."""
    created = await create_program(client, tenant, fraud_policy=fraud_policy or {}, **program)
    anna = await create_advocate(client, tenant, created["id"], "anna")
    await order(client, tenant, "anna", **ANNA_SEEN)
    return {"program": created, "anna": anna, "code": anna["code"]}


async def explain(client, tenant, result: dict) -> dict:
    return await get(client, tenant, f"/v1/referrals/{result['referral']['id']}")


def rules_of(referral: dict) -> dict[str, dict]:
    return {r["rule"]: r for r in referral["decision"]["reasons"]}


# --- rules that compare the friend with the advocate -----------------------------------


async def test_same_payment_blocks_and_pays_nothing(client, tenant, db):
    s = await setup(client, tenant)
    result = await order(
        client, tenant, "bert", s["code"], payment_fingerprint=ANNA_SEEN["payment_fingerprint"]
    )
    assert result["referral"]["status"] == "rejected"
    assert result["referral"]["rejection_reason"] == "fraud_blocked"
    assert result["rewards"] == []
    referral = await explain(client, tenant, result)
    assert referral["decision"]["action"] == "block"
    assert rules_of(referral)["same_payment"]["action"] == "block"
    assert referral["decision"]["features"]["matched"] == ["payment"]
    assert await db.fetchval("SELECT count(*) FROM rewards") == 0
    assert await db.fetchval("SELECT count(*) FROM ledger_entries") == 0
    # Nothing raw is kept: the card fingerprint is stored only as a keyed hash.
    assert not await db.fetchval(
        "SELECT count(*) FROM customer_signals WHERE position($1::bytea in value) > 0",
        b"pm_fp_anna_visa",
    )


async def test_household_shares_an_ip_but_not_a_browser(client, tenant):
    s = await setup(client, tenant)
    household = await order(
        client, tenant, "bert", s["code"], ip=ANNA_SEEN["ip"], user_agent="Mozilla/5.0 (Bert)"
    )
    assert household["referral"]["status"] == "converted"
    assert len(household["rewards"]) == 2
    referral = await explain(client, tenant, household)
    assert referral["decision"]["action"] == "allow"
    assert rules_of(referral)["same_ip"]["action"] == "flag"

    same_browser = await order(
        client, tenant, "carl", s["code"], ip=ANNA_SEEN["ip"], user_agent=ANNA_SEEN["user_agent"]
    )
    assert same_browser["referral"]["status"] == "in_review"
    assert {r["status"] for r in same_browser["rewards"]} == {"in_review"}
    assert set(rules_of(await explain(client, tenant, same_browser))) == {"same_ip_and_user_agent"}


async def test_an_advocate_who_never_ordered_is_known_from_asking_for_their_link(client, tenant):
    program = await create_program(client, tenant)
    eva = await post(
        client,
        tenant,
        "/v1/advocates",
        {
            "program_id": program["id"],
            "customer_id": "eva",
            "ip": "198.51.100.20",
            "user_agent": "Mozilla/5.0 (Eva's phone)",
            "visitor_id": "v-eva",
        },
        201,
    )
    same_phone = await order(
        client,
        tenant,
        "eva-2",
        eva["code"],
        ip="198.51.100.20",
        user_agent="Mozilla/5.0 (Eva's phone)",
    )
    assert same_phone["referral"]["status"] == "in_review"
    assert "same_ip_and_user_agent" in rules_of(await explain(client, tenant, same_phone))
    same_cookie = await order(client, tenant, "eva-3", eva["code"], visitor_id="v-eva")
    assert "same_device" in rules_of(await explain(client, tenant, same_cookie))


async def test_same_shipping_address_however_it_is_typed(client, tenant):
    s = await setup(client, tenant)
    typed = {"line1": "STORGATAN 12 ", "city": "Malmo", "postal_code": "21142", "country": "se"}
    result = await order(client, tenant, "bert", s["code"], shipping_address=typed)
    assert result["referral"]["status"] == "in_review"
    assert "same_address" in rules_of(await explain(client, tenant, result))
    elsewhere = {**typed, "line1": "Storgatan 14"}
    other = await order(client, tenant, "carl", s["code"], shipping_address=elsewhere)
    assert other["referral"]["status"] == "converted"


async def test_same_device_through_the_links_visitor_cookie(client, tenant):
    s = await setup(client, tenant)
    # Anna clicks her own link and buys: the shop sends her visitor id with the order.
    click = await client.get(f"/r/{s['code']}", follow_redirects=False)
    visitor = client.cookies.get("rv") or click.cookies.get("rv")
    assert visitor, click.headers
    await order(client, tenant, "anna", visitor_id=visitor)
    # A second account in the same browser follows the link and orders.
    again = await client.get(f"/r/{s['code']}", follow_redirects=False)
    token = again.headers["location"].split("ref_token=")[1]
    result = await order(client, tenant, "anna-2nd", ref_token=token)
    assert result["referral"]["status"] == "in_review"
    assert "same_device" in rules_of(await explain(client, tenant, result))
    # Another browser: allowed.
    client.cookies.clear()
    fresh = await client.get(f"/r/{s['code']}", follow_redirects=False)
    other = await order(
        client, tenant, "bert", ref_token=fresh.headers["location"].split("ref_token=")[1]
    )
    assert "same_device" not in rules_of(await explain(client, tenant, other))


# --- rules over the click, the email and history ----------------------------------------


async def test_deal_site_referrer_and_order_seconds_after_the_click(client, tenant):
    s = await setup(client, tenant)
    click = await client.get(
        f"/r/{s['code']}",
        headers={"Referer": "https://www.retailmenot.com/view/shop.example"},
        follow_redirects=False,
    )
    token = click.headers["location"].split("ref_token=")[1]
    result = await order(client, tenant, "bert", ref_token=token)
    referral = await explain(client, tenant, result)
    fired = rules_of(referral)
    assert fired["deal_site_referrer"]["evidence"]["referer_host"] == "www.retailmenot.com"
    assert fired["order_too_soon"]["action"] == "flag"
    assert result["referral"]["status"] == "in_review"

    plain = await client.get(
        f"/r/{s['code']}", headers={"Referer": "https://www.instagram.com/"}, follow_redirects=False
    )
    later = (datetime.now(UTC) + timedelta(minutes=3)).isoformat()
    calm = await order(
        client,
        tenant,
        "carl",
        ref_token=plain.headers["location"].split("ref_token=")[1],
        occurred_at=later,
    )
    assert rules_of(await explain(client, tenant, calm)) == {}


async def test_disposable_email(client, tenant):
    s = await setup(client, tenant)
    burner = await order(client, tenant, "bert", s["code"], email="bert@mailinator.com")
    assert burner["referral"]["status"] == "in_review"
    assert rules_of(await explain(client, tenant, burner))["disposable_email"]["evidence"] == {
        "domain": "mailinator.com"
    }
    normal = await order(client, tenant, "carl", s["code"], email="carl@proton.me")
    assert normal["referral"]["status"] == "converted"


async def test_advocate_velocity_counts_referrals_per_hour(client, tenant):
    s = await setup(client, tenant, {"advocate_velocity": {"max_per_hour": 2}})
    statuses = [
        (await order(client, tenant, f"friend-{i}", s["code"]))["referral"]["status"]
        for i in range(4)
    ]
    assert statuses == ["converted", "converted", "in_review", "in_review"]


async def test_ip_velocity_counts_orders_and_signups_from_one_address(client, tenant):
    s = await setup(client, tenant, {"ip_velocity": {"max_per_day": 3, "action": "review"}})
    shared = {"ip": "203.0.113.50"}
    await post(client, tenant, "/v1/signups", {"customer_id": "x1", **shared}, 201)
    for customer in ("x2", "x3"):
        await order(client, tenant, customer, **shared)
    third = await order(client, tenant, "bert", s["code"], **shared)  # the 4th from the IP
    assert third["referral"]["status"] == "in_review"
    evidence = rules_of(await explain(client, tenant, third))["ip_velocity"]["evidence"]
    assert evidence == {"last_day": 4, "max_per_day": 3}
    other_ip = await order(client, tenant, "carl", s["code"], ip="203.0.113.51")
    assert other_ip["referral"]["status"] == "converted"


async def test_existing_customer_is_flagged_where_the_program_allows_them(client, tenant):
    s = await setup(
        client,
        tenant,
        rewards={
            "advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
            "new_customers_only": False,
        },
    )
    await order(client, tenant, "bert")  # bought before, unreferred
    result = await order(client, tenant, "bert", s["code"])
    assert result["referral"]["status"] == "converted"
    assert rules_of(await explain(client, tenant, result))["existing_customer"]["action"] == "flag"


async def test_reciprocal_referral(client, tenant):
    s = await setup(client, tenant)
    eva = await create_advocate(client, tenant, s["program"]["id"], "eva")  # never bought
    eva_refers_bert = await order(client, tenant, "bert", eva["code"])
    assert eva_refers_bert["referral"]["status"] == "converted"
    bert = await create_advocate(client, tenant, s["program"]["id"], "bert")
    back = await order(client, tenant, "eva", bert["code"])  # B refers A
    assert back["referral"]["status"] == "in_review"
    assert "reciprocal_referral" in rules_of(await explain(client, tenant, back))
    onward = await order(client, tenant, "dora", bert["code"])  # B refers C: fine
    assert onward["referral"]["status"] == "converted"


async def test_blocklisted_network_is_checked_on_the_live_address(client, tenant):
    s = await setup(client, tenant, {"blocklist": {"ips": ["192.0.2.128/25", "2001:db8::/32"]}})
    blocked = await order(client, tenant, "bert", s["code"], ip="2001:db8::7")
    assert blocked["referral"]["rejection_reason"] == "fraud_blocked"
    evidence = rules_of(await explain(client, tenant, blocked))["blocklist"]["evidence"]
    assert evidence == {"list": "ips", "entry": "2001:db8::/32"}
    fine = await order(client, tenant, "carl", s["code"], ip="192.0.2.127")
    assert fine["referral"]["status"] == "converted"


async def test_too_many_rejections_suspend_the_advocates_codes(client, tenant, db):
    s = await setup(client, tenant, {"rejected_referrals": {"max_rejected": 2}})
    for customer in ("bert", "carl"):  # the same card as Anna's: blocked
        result = await order(
            client,
            tenant,
            customer,
            s["code"],
            payment_fingerprint=ANNA_SEEN["payment_fingerprint"],
        )
        assert result["referral"]["rejection_reason"] == "fraud_blocked"
    third = await order(client, tenant, "dora", s["code"])
    assert third["referral"]["rejection_reason"] == "fraud_blocked"
    assert "rejected_referrals" in rules_of(await explain(client, tenant, third))
    assert await db.fetchval("SELECT status FROM codes WHERE code = $1", s["code"]) == "disabled"
    events = await get(client, tenant, "/v1/events?type=advocate.codes_suspended")
    assert [e["data"]["advocate_id"] for e in events["data"]] == [s["anna"]["id"]]
    # The suspended code earns nothing more: eligibility sees an inactive code.
    after = await order(client, tenant, "erik", s["code"])
    assert after["referral"]["rejection_reason"] == "code_inactive"
    suspended = await get(client, tenant, f"/v1/advocates/{s['anna']['id']}")
    assert suspended["suspended_at"] is not None

    # A person lifts it: the code works again and old rejections no longer count.
    lifted = await post(
        client,
        tenant,
        f"/v1/advocates/{s['anna']['id']}/reactivate",
        {"actor": "risk@shop.example", "note": "cards were the family's"},
    )
    assert lifted["suspended_at"] is None
    assert await db.fetchval("SELECT status FROM codes WHERE code = $1", s["code"]) == "active"
    fresh = await order(client, tenant, "fiona", s["code"])
    assert fresh["referral"]["status"] == "converted"
    events = await get(client, tenant, "/v1/events?type=advocate.codes_reactivated")
    assert events["data"][0]["data"]["actor"] == "risk@shop.example"


async def test_test_mode_magic_inputs_fire_rules_only_in_test_mode(client, tenant):
    s = await setup(client, tenant)
    magic = await order(client, tenant, "bert", s["code"], email="same_payment@fraud.test")
    assert magic["referral"]["rejection_reason"] == "fraud_blocked"
    reason = rules_of(await explain(client, tenant, magic))["same_payment"]
    assert reason["evidence"] == {"test_mode": True}
    by_ip = await order(client, tenant, "carl", s["code"], ip="192.0.2.9")  # rule 9
    assert "disposable_email" in rules_of(await explain(client, tenant, by_ip))

    live = {"Authorization": f"Bearer {tenant.live_secret_key}"}
    program = await client.post(
        "/v1/programs",
        json={
            "name": "L",
            "landing_url": "https://l.example/",
            "rewards": {"advocate": {"kind": "cash", "amounts": {"EUR": 100}}},
        },
        headers=live,
    )
    assert program.status_code == 201, program.text
    advocate = await client.post(
        "/v1/advocates",
        json={"program_id": program.json()["id"], "customer_id": "anna"},
        headers=live,
    )
    live_order = await client.post(
        "/v1/orders",
        json={
            "order_id": "live-1",
            "customer_id": "bert",
            "email": "same_payment@fraud.test",
            "codes": [advocate.json()["code"]],
            "subtotal": 5000,
            "total": 5000,
            "currency": "EUR",
            "occurred_at": datetime.now(UTC).isoformat(),
        },
        headers=live,
    )
    assert live_order.status_code == 201, live_order.text
    assert live_order.json()["referral"]["status"] == "converted"


# --- review: held money, approve, reject, undo ------------------------------------------


async def _in_review(client, tenant, **program) -> tuple[dict, dict]:
    s = await setup(client, tenant, {"same_ip": {"action": "review"}}, hold_days=0, **program)
    result = await order(client, tenant, "bert", s["code"], ip=ANNA_SEEN["ip"])
    assert result["referral"]["status"] == "in_review"
    return s, result


async def test_review_holds_rewards_until_approved(client, tenant, pool, ids):
    s, result = await _in_review(client, tenant)
    referral_id = result["referral"]["id"]
    queue = await get(
        client, tenant, f"/v1/referrals?status=in_review&program_id={s['program']['id']}"
    )
    assert [r["id"] for r in queue["data"]] == [referral_id]
    assert queue["data"][0]["decision"]["reasons"][0]["rule"] == "same_ip"

    later = datetime.now(UTC) + timedelta(days=1)
    assert await release_due(pool, ids=ids, now=later) == 0  # held: the worker skips them

    approved = await post(
        client,
        tenant,
        f"/v1/referrals/{referral_id}/approve",
        {"actor": "risk@shop.example", "note": "known household"},
    )
    assert approved["status"] == "converted"
    assert {r["status"] for r in approved["rewards"]} == {"pending"}
    assert [(r["action"], r["actor"], r["note"]) for r in approved["reviews"]] == [
        ("approve", "risk@shop.example", "known household")
    ]
    assert await release_due(pool, ids=ids, now=later) == 2
    queue = await get(client, tenant, "/v1/referrals?status=in_review")
    assert queue["data"] == []


async def test_reject_after_payment_reverses_through_the_ledger_and_approve_undoes_it(
    client, tenant, pool, ids, db
):
    s, result = await _in_review(client, tenant)
    referral_id = result["referral"]["id"]
    action = {"actor": "risk@shop.example"}
    await post(client, tenant, f"/v1/referrals/{referral_id}/approve", action)
    await release_due(pool, ids=ids, now=datetime.now(UTC) + timedelta(days=1))
    batch = await post(client, tenant, "/v1/payout-batches", {"currency": "EUR"}, 201)
    await post(client, tenant, f"/v1/payout-batches/{batch['id']}/export", None)
    await post(client, tenant, f"/v1/payout-batches/{batch['id']}/mark-paid", None)

    rejected = await post(
        client, tenant, f"/v1/referrals/{referral_id}/reject", {**action, "note": "same person"}
    )
    assert rejected["status"] == "rejected"
    assert rejected["rejection_reason"] == "review_rejected"
    assert {r["status"] for r in rejected["rewards"]} == {"reversed"}
    receivable = await db.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE account = 'receivable'"
    )
    assert receivable == -1000  # Anna was paid 10 EUR and now owes it back

    again = await post(client, tenant, f"/v1/referrals/{referral_id}/approve", action)
    assert again["status"] == "converted"
    statuses = {r["side"]: r["status"] for r in again["rewards"]}
    assert statuses["advocate"] == "paid"
    assert (
        await db.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE account = 'receivable'"
        )
        == 0
    )
    assert [r["action"] for r in again["reviews"]] == ["approve", "reject", "approve"]
    events = await get(client, tenant, "/v1/events?limit=100")
    reviewed = [e["type"] for e in events["data"] if e["type"].startswith("referral.review")]
    assert reviewed == ["referral.review_approved", "referral.review_rejected"] + [
        "referral.review_approved"
    ]
    # Each reward's own history names who moved it.
    history = again["rewards"][0]["history"]
    assert {h["actor"] for h in history if h["reason"] == "referral_rejected"} == {
        "risk@shop.example"
    }


async def test_rejecting_a_referral_takes_its_stories_off_the_public_pages(
    client, tenant, pool, ids
):
    s = await setup(client, tenant, hold_days=0, stories_auto_publish=True)
    result = await order(client, tenant, "bert", s["code"])
    await release_due(pool, ids=ids, now=datetime.now(UTC) + timedelta(days=1))
    reward = next(r for r in result["rewards"] if r["side"] == "advocate")
    story = await post(
        client,
        tenant,
        "/v1/stories",
        {"advocate_id": s["anna"]["id"], "reward_id": reward["id"]},
        201,
    )
    assert story["status"] == "published"
    assert (await client.get(story["url"])).status_code == 200
    await post(
        client, tenant, f"/v1/referrals/{result['referral']['id']}/reject", {"actor": "risk"}
    )
    assert (await get(client, tenant, f"/v1/stories/{story['id']}"))["status"] == "hidden"
    assert (await client.get(story["url"])).status_code == 404


async def test_a_blocked_referral_approved_by_a_person_gets_its_rewards(client, tenant):
    s = await setup(client, tenant)
    blocked = await order(
        client, tenant, "bert", s["code"], payment_fingerprint=ANNA_SEEN["payment_fingerprint"]
    )
    assert blocked["rewards"] == []
    approved = await post(
        client,
        tenant,
        f"/v1/referrals/{blocked['referral']['id']}/approve",
        {"actor": "risk@shop.example", "note": "shared family card"},
    )
    assert approved["status"] == "converted"
    assert sorted((r["side"], r["status"], r["amount"]) for r in approved["rewards"]) == [
        ("advocate", "pending", 1000),
        ("friend", "pending", 1000),
    ]
    rejected = await post(
        client, tenant, f"/v1/referrals/{blocked['referral']['id']}/reject", {"actor": "risk"}
    )
    assert {r["status"] for r in rejected["rewards"]} == {"reversed"}


async def test_a_referral_rejected_before_the_order_goes_back_to_waiting_for_it(client, tenant):
    s = await setup(client, tenant)
    signup = await post(
        client, tenant, "/v1/signups", {"customer_id": "bert", "codes": [s["code"]]}, 201
    )
    referral_id = signup["referral"]["id"]
    assert signup["referral"]["status"] == "pending"
    rejected = await post(client, tenant, f"/v1/referrals/{referral_id}/reject", {"actor": "r"})
    assert rejected["status"] == "rejected"
    undone = await post(client, tenant, f"/v1/referrals/{referral_id}/approve", {"actor": "r"})
    assert undone["status"] == "pending" and undone["rewards"] == []
    first = await order(client, tenant, "bert")  # the friend's first order still counts
    assert first["referral"]["id"] == referral_id
    assert first["referral"]["status"] == "converted" and len(first["rewards"]) == 2


async def test_eligibility_failures_cannot_be_approved(client, tenant):
    s = await setup(client, tenant)
    self_referral = await order(client, tenant, "anna", s["code"])
    assert self_referral["referral"]["rejection_reason"] == "self_referral"
    response = await client.post(
        f"/v1/referrals/{self_referral['referral']['id']}/approve",
        json={"actor": "risk"},
        headers=tenant.auth,
    )
    assert response.status_code == 409
    assert response.json()["code"] == "referral_not_eligible"
    missing = await client.post(
        "/v1/referrals/ref_nothere12/approve", json={"actor": "x"}, headers=tenant.auth
    )
    assert missing.status_code == 404
    no_actor = await client.post(
        f"/v1/referrals/{self_referral['referral']['id']}/reject", json={}, headers=tenant.auth
    )
    assert no_actor.status_code == 400
    assert no_actor.headers["content-type"].startswith("application/problem+json")


async def test_concurrent_approvals_and_rejections_leave_one_consistent_story(client, tenant, db):
    s, result = await _in_review(client, tenant)
    referral_id = result["referral"]["id"]

    async def send(http):
        calls = [
            http.post(
                f"/v1/referrals/{referral_id}/{'approve' if i % 2 else 'reject'}",
                json={"actor": f"reviewer-{i}"},
                headers=tenant.auth,
            )
            for i in range(12)
        ]
        return await asyncio.gather(*calls)

    responses = await on_app_loop(client, send)
    assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
    final = await get(client, tenant, f"/v1/referrals/{referral_id}")
    last = final["reviews"][-1]
    assert final["status"] == last["to_status"]
    expected = {"converted": {"pending"}, "rejected": {"reversed"}}[final["status"]]
    assert {r["status"] for r in final["rewards"]} == expected
    # The ledger agrees with every reward, whatever order the calls ran in.
    mismatched = await db.fetchval("""
        SELECT count(*) FROM rewards r
        WHERE r.kind IN ('cash', 'store_credit')
          AND r.amount <> coalesce((SELECT sum(e.amount) FROM ledger_entries e
                                    WHERE e.reward_id = r.id), 0)""")
    assert mismatched == 0
    # Reviews alternate: nobody approved an approved referral twice in the trail.
    actions = [r["action"] for r in final["reviews"]]
    assert all(a != b for a, b in zip(actions, actions[1:], strict=False))


# --- the policy as a resource ------------------------------------------------------------


async def test_policy_read_replace_and_refuse_whole(client, tenant):
    s = await setup(client, tenant)
    path = f"/v1/programs/{s['program']['id']}/fraud-policy"
    current = await get(client, tenant, path)
    assert current["version"] == 0
    assert current["policy"]["same_ip"] == {"enabled": True, "action": "flag", "weight": 15}

    bad = await client.put(
        path,
        json={"same_ip": {"action": "block"}, "blocklist": {"ips": ["300.1.2.3"]}},
        headers=tenant.auth,
    )
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert "blocklist" in bad.json()["detail"] and "300.1.2.3" in bad.json()["detail"]
    assert await get(client, tenant, path) == current  # nothing half-applied

    response = await client.put(path, json={"same_ip": {"action": "block"}}, headers=tenant.auth)
    assert response.status_code == 200, response.text
    replaced = response.json()
    assert replaced["version"] == 1
    assert replaced["policy"]["same_ip"]["action"] == "block"
    assert replaced["policy"]["same_payment"]["action"] == "block"  # defaults for the rest

    changes = await get(client, tenant, "/v1/events?type=program.fraud_policy_changed")
    assert [
        (e["data"]["version"], e["data"]["policy"]["same_ip"]["action"]) for e in changes["data"]
    ] == [(1, "block")]
    patched = await client.patch(
        f"/v1/programs/{s['program']['id']}", json={"fraud_policy": {}}, headers=tenant.auth
    )
    assert patched.status_code == 400  # only through the versioned endpoint

    blocked = await order(client, tenant, "bert", s["code"], ip=ANNA_SEEN["ip"])
    referral = await explain(client, tenant, blocked)
    assert referral["decision"]["policy_version"] == 1
    assert referral["decision"]["action"] == "block"


# --- backtests ---------------------------------------------------------------------------


async def test_backtest_counts_changes_with_samples_and_writes_nothing(client, tenant, db):
    s = await setup(client, tenant)
    household = [
        await order(client, tenant, f"h{i}", s["code"], ip=ANNA_SEEN["ip"]) for i in range(3)
    ]
    others = [await order(client, tenant, f"o{i}", s["code"]) for i in range(2)]
    await order(client, tenant, "anna", s["code"])  # self-referral: eligibility, not policy
    assert {o["referral"]["status"] for o in household + others} == {"converted"}
    snapshot = """SELECT (SELECT count(*) FROM events),
                         (SELECT md5(string_agg(r::text, ',' ORDER BY r.id)) FROM referrals r)"""
    before = await db.fetchrow(snapshot)
    path = f"/v1/programs/{s['program']['id']}/fraud-policy/backtest"
    window = {
        "created_from": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "created_before": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }
    result = await post(
        client,
        tenant,
        path,
        {"policy": {"same_ip": {"action": "block"}}, "samples": 2, **window},
    )
    assert result["referrals"] == 6 and result["ineligible"] == 1
    assert result["replayed"] == 5 and result["changed"] == 3 and result["unchanged"] == 2
    (change,) = result["changes"]
    assert (change["was"], change["would_be"], change["count"]) == ("allow", "block", 3)
    household_ids = {o["referral"]["id"] for o in household}
    assert len(change["sample_ids"]) == 2 and set(change["sample_ids"]) <= household_ids
    same_ip = next(r for r in result["rules"] if r["rule"] == "same_ip")
    assert (same_ip["fired"], same_ip["would_fire"]) == (3, 3)
    assert result["not_replayable"] == []
    assert await db.fetchrow(snapshot) == before

    with_ips = await post(
        client, tenant, path, {"policy": {"blocklist": {"ips": ["10.0.0.0/8"]}}, **window}
    )
    assert with_ips["changed"] == 0
    assert with_ips["not_replayable"][0].startswith("blocklist.ips")

    backwards = await client.post(
        path,
        json={
            "policy": {},
            "created_from": window["created_before"],
            "created_before": window["created_from"],
        },
        headers=tenant.auth,
    )
    assert backwards.status_code == 422 and backwards.json()["code"] == "invalid_time_range"


@pytest.mark.parametrize("rule", ["same_customer", "same_email"])
async def test_self_referral_rules_explain_what_eligibility_refuses(client, tenant, rule):
    s = await setup(client, tenant)
    if rule == "same_customer":
        result = await order(client, tenant, "anna", s["code"])
    else:
        await client.post(
            "/v1/advocates",
            json={
                "program_id": s["program"]["id"],
                "customer_id": "anna",
                "email": "a.x@gmail.com",
            },
            headers=tenant.auth,
        )
        result = await order(client, tenant, "anna-alt", s["code"], email="ax+1@googlemail.com")
    assert result["referral"]["rejection_reason"] == "self_referral"
    assert rule in rules_of(await explain(client, tenant, result))


async def test_lists_show_each_referral_and_reward_exactly_as_reading_it_does(client, tenant):
    """Lists load a page's rewards, histories, orders and reviews in batches: each item must
    still be what reading it alone shows (and no item may borrow another's)."""
    s, in_review = await _in_review(client, tenant)
    await post(
        client, tenant, f"/v1/referrals/{in_review['referral']['id']}/reject", {"actor": "risk"}
    )
    await order(client, tenant, "carl", s["code"])
    await order(client, tenant, "anna", s["code"])  # self-referral: no rewards
    await post(client, tenant, "/v1/signups", {"customer_id": "dora", "codes": [s["code"]]}, 201)
    listed = (await get(client, tenant, "/v1/referrals?limit=100"))["data"]
    assert len(listed) == 4
    for item in listed:
        assert item == await get(client, tenant, f"/v1/referrals/{item['id']}")
    rewards = (await get(client, tenant, "/v1/rewards?limit=100"))["data"]
    assert len(rewards) == 4
    for item in rewards:
        assert item == await get(client, tenant, f"/v1/rewards/{item['id']}")
