"""The review queue and the explain view in the console: what risk and support see, and
that a decision made here is the same decision as the API's, with the person as actor."""

from __future__ import annotations

import asyncio

from tests.console.conftest import csrf_of, sign_in
from tests.scenarios import ANNA_SEEN, order, referral_in_review


async def _held_referrals(client, tenant, n: int) -> tuple[dict, list[str]]:
    s, first = await referral_in_review(client, tenant)
    held = [first["referral"]["id"]]
    for i in range(n - 1):
        result = await order(client, tenant, f"friend-{i}", s["code"], ip=ANNA_SEEN["ip"])
        assert result["referral"]["status"] == "in_review"
        held.append(result["referral"]["id"])
    return s, held


async def test_the_queue_lists_held_referrals_oldest_first_with_their_reasons(
    client, db, settings, tenant
):
    _, held = await _held_referrals(client, tenant, 3)
    await sign_in(client, db, settings, tenant.merchant_id)
    page = await client.get("/console/review")
    assert page.status_code == 200
    positions = [page.text.index(f'value="{rid}"') for rid in held]
    assert positions == sorted(positions), "oldest first"
    assert "same_ip" in page.text


async def test_bulk_approve_decides_each_with_the_person_as_actor(
    client, db, settings, tenant, ids
):
    _, held = await _held_referrals(client, tenant, 3)
    csrf = await sign_in(client, db, settings, tenant.merchant_id, actor="Maja Risk")
    answer = await client.post(
        "/console/review",
        data={"csrf": csrf, "action": "approve", "note": "same household", "referral_id": held[:2]},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    shown = await client.get(answer.headers["location"])
    assert "2 decided (approved)" in shown.text
    assert f'value="{held[2]}"' in shown.text and f'value="{held[0]}"' not in shown.text
    internal = [ids.decode("referral", rid) for rid in held]
    statuses = dict(
        await db.fetch(
            "SELECT id, status FROM referrals WHERE merchant_id = $1 AND id = ANY($2)",
            tenant.merchant_id,
            internal,
        )
    )
    assert [statuses[i] for i in internal] == ["converted", "converted", "in_review"]
    reviews = await db.fetch(
        "SELECT actor, note, action FROM referral_reviews WHERE merchant_id = $1",
        tenant.merchant_id,
    )
    assert sorted(tuple(r) for r in reviews) == [("Maja Risk", "same household", "approve")] * 2
    transitions = await db.fetchval(
        "SELECT count(*) FROM reward_transitions t JOIN rewards w ON w.id = t.reward_id "
        "AND w.merchant_id = t.merchant_id "
        "WHERE w.merchant_id = $1 AND t.actor = 'Maja Risk'",
        tenant.merchant_id,
    )
    assert transitions >= 2


async def test_a_referral_that_cannot_be_decided_is_named_and_the_others_go_through(
    client, db, settings, tenant, other_tenant
):
    _, held = await _held_referrals(client, tenant, 1)
    _, theirs = await _held_referrals(client, other_tenant, 1)
    csrf = await sign_in(client, db, settings, tenant.merchant_id)
    answer = await client.post(
        "/console/review",
        data={"csrf": csrf, "action": "approve", "referral_id": [theirs[0], held[0]]},
        follow_redirects=True,
    )
    assert "1 decided (approved)" in answer.text
    assert f"{theirs[0]}: no referral with id" in answer.text
    status = await db.fetchval(
        "SELECT status FROM referrals WHERE merchant_id = $1", other_tenant.merchant_id
    )
    assert status == "in_review", "another merchant's referral is untouched"


async def test_choosing_nothing_says_so(console):
    answer = await console.post(
        "/console/review", data={"csrf": console.csrf, "action": "approve"}, follow_redirects=True
    )
    assert "Select at least one referral first." in answer.text


async def test_a_double_submitted_approval_approves_once(client, db, settings, tenant):
    _, held = await _held_referrals(client, tenant, 1)
    csrf = await sign_in(client, db, settings, tenant.merchant_id, actor="Maja")
    answers = await asyncio.gather(
        *(
            client.post(
                "/console/review",
                data={"csrf": csrf, "action": "approve", "referral_id": held},
                follow_redirects=False,
            )
            for _ in range(2)
        )
    )
    assert [a.status_code for a in answers] == [303, 303]
    reviews = await db.fetchval(
        "SELECT count(*) FROM referral_reviews WHERE merchant_id = $1", tenant.merchant_id
    )
    assert reviews == 1


async def test_the_explain_view_answers_why_and_decides_too(client, db, settings, tenant):
    _, held = await _held_referrals(client, tenant, 1)
    await sign_in(client, db, settings, tenant.merchant_id, actor="Support Sam")
    page = await client.get(f"/console/referrals/{held[0]}")
    assert page.status_code == 200
    text = page.text
    for expected in (
        "A fraud rule held it",
        "same_ip",
        "Eligibility checks",
        "A code typed at checkout",
        "Advocate&#39;s reward",
        "Friend&#39;s reward",
    ):
        assert expected in text, expected
    decided = await client.post(
        f"/console/referrals/{held[0]}/decision",
        data={"csrf": csrf_of(text), "action": "reject", "note": "shared card"},
        follow_redirects=True,
    )
    assert "Rejected." in decided.text and "Support Sam" in decided.text
    assert "shared card" in decided.text


async def test_another_merchants_or_modes_referral_is_not_found(
    client, db, settings, tenant, other_tenant
):
    _, held = await _held_referrals(client, tenant, 1)
    csrf = await sign_in(client, db, settings, other_tenant.merchant_id)
    page = await client.get(f"/console/referrals/{held[0]}")
    assert page.status_code == 404 and "Not found" in page.text
    refused = await client.post(
        f"/console/referrals/{held[0]}/decision",
        data={"csrf": csrf, "action": "approve"},
        follow_redirects=False,
    )
    assert refused.status_code == 404
    # The tenant's own live mode does not see its test data either.
    csrf = await sign_in(client, db, settings, tenant.merchant_id)
    await client.post("/console/mode", data={"csrf": csrf}, follow_redirects=False)
    assert (await client.get(f"/console/referrals/{held[0]}")).status_code == 404
    status = await db.fetchval(
        "SELECT status FROM referrals WHERE merchant_id = $1", tenant.merchant_id
    )
    assert status == "in_review"
