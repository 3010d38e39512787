"""The review queue through the API: money held in review, a person's approve and reject
(reversible and audited), and lists that show each referral as reading it does."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from referral.rewards.service import release_due
from tests.factories import on_app_loop
from tests.scenarios import ANNA_SEEN, get, order, post, referral_in_review, setup

# --- review: held money, approve, reject, undo ------------------------------------------


async def test_review_holds_rewards_until_approved(client, tenant, pool, ids):
    s, result = await referral_in_review(client, tenant)
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
    s, result = await referral_in_review(client, tenant)
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
    s, result = await referral_in_review(client, tenant)
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


async def test_lists_show_each_referral_and_reward_exactly_as_reading_it_does(client, tenant):
    """Lists load a page's rewards, histories, orders and reviews in batches: each item must
    still be what reading it alone shows (and no item may borrow another's)."""
    s, in_review = await referral_in_review(client, tenant)
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
