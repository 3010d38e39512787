"""The fraud engine through the API, on a real PostgreSQL: rules that need history (shared
signals, velocity, reciprocity, rejections), what a decision does to money, the policy as a
resource, backtests and test-mode magic inputs. The review queue is in
tests/referrals/test_review.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import create_advocate, create_program
from tests.scenarios import ANNA_SEEN, explain, get, order, post, rules_of, setup

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
    # The shape is valid JSON Schema-wise; a rule it cannot state refuses it: 422, not 400.
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["code"] == "invalid_fraud_policy"
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
