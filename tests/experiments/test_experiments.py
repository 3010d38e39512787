"""Experiments through the HTTP API, as a shop runs one: start it, its advocates and their
friends see one variant each, the referral records it, and ending it (with or without a
winner) leaves the program as it should be."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from referral.experiments import rules
from referral.links.token import ClickTokenSigner
from tests.factories import NO_VELOCITY, create_advocate, create_program
from tests.scenarios import get, order, post

TEN = {"kind": "coupon", "amounts": {"EUR": 1000}}
FIFTEEN = {"kind": "coupon", "amounts": {"EUR": 1500}}
BROWSER = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36"}


def experiment_body(**overrides):
    body = {
        "name": "Friend offer: 10 EUR or 15 EUR",
        "variants": [
            {"key": "ten", "name": "10 EUR", "settings": {"friend": TEN}},
            {
                "key": "fifteen",
                "name": "15 EUR",
                "settings": {
                    "friend": FIFTEEN,
                    "share_headline": "Give 15 EUR, get 10 EUR",
                    "share_text": "Your friends save 15 EUR on their first order.",
                    "story_prompt": "My friends got 15 EUR off!",
                },
            },
        ],
    }
    body.update(overrides)
    return body


async def start(client, tenant, program_id: str, **overrides) -> dict:
    return await post(
        client, tenant, f"/v1/programs/{program_id}/experiments", experiment_body(**overrides), 201
    )


async def variant_of(db, ids, experiment: dict, advocate: dict) -> str:
    """What the keyed hash gives this advocate (the experiment's key read from its row)."""
    key = await db.fetchval(
        "SELECT hash_key FROM experiments WHERE id = $1", ids.decode("experiment", experiment["id"])
    )
    weights = [v["weight"] for v in experiment["variants"]]
    index = rules.assign(key, weights, ids.decode("advocate", advocate["id"]))
    return experiment["variants"][index]["key"]


async def advocates_in(db, ids, client, tenant, program_id, experiment, wanted: str, start=0):
    """An advocate of the program whose variant is `wanted`."""
    for n in range(start, start + 50):
        advocate = await create_advocate(client, tenant, program_id, f"adv-{wanted}-{n}")
        if await variant_of(db, ids, experiment, advocate) == wanted:
            return advocate
    raise AssertionError("no advocate in 50 got the variant")


async def click(client, code: str, visitor: str) -> str:
    client.cookies.clear()
    response = await client.get(
        f"/r/{code}", headers={**BROWSER, "cookie": f"rv={visitor}"}, follow_redirects=False
    )
    assert response.status_code == 302, response.text
    return re.search(r"ref_token=([^&]+)", response.headers["location"]).group(1)


def friend_amount(result: dict) -> int:
    (friend,) = [r for r in result["rewards"] if r["side"] == "friend"]
    return friend["amount"]


async def test_one_running_experiment_per_program(client, tenant):
    program = await create_program(client, tenant)
    created = await start(client, tenant, program["id"])
    assert created["state"] == "running" and created["id"].startswith("exp_")
    assert [v["key"] for v in created["variants"]] == ["ten", "fifteen"]
    again = await client.post(
        f"/v1/programs/{program['id']}/experiments", json=experiment_body(), headers=tenant.auth
    )
    assert again.status_code == 409 and again.json()["code"] == "experiment_running"
    await post(
        client,
        tenant,
        f"/v1/programs/{program['id']}/experiments/{created['id']}/end",
        {"actor": "growth@shop.example"},
    )
    await start(client, tenant, program["id"])  # the next one may start


async def test_bad_experiments_are_refused_with_problems(client, tenant):
    program = await create_program(client, tenant)
    path = f"/v1/programs/{program['id']}/experiments"
    one = experiment_body(variants=experiment_body()["variants"][:1])
    same_keys = experiment_body(
        variants=[{"key": "a", "name": "A"}, {"key": "a", "name": "A again"}]
    )
    bad_rule = experiment_body(
        variants=[
            {"key": "a", "name": "A"},
            {"key": "b", "name": "B", "settings": {"friend": {"kind": "coupon"}}},
        ]
    )
    for body, status, code in (
        (one, 400, "validation_error"),
        (same_keys, 422, "invalid_experiment"),
        (bad_rule, 422, "invalid_reward_rule"),
    ):
        response = await client.post(path, json=body, headers=tenant.auth)
        assert response.status_code == status, response.text
        assert response.json()["code"] == code
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_advocate_and_friend_see_one_variant_and_the_referral_records_it(
    client, tenant, db, ids, settings
):
    program = await create_program(client, tenant, fraud_policy=NO_VELOCITY)
    experiment = await start(client, tenant, program["id"])
    anna = await advocates_in(db, ids, client, tenant, program["id"], experiment, "fifteen")
    # Her exposure was recorded when the shop asked for her code, once.
    await create_advocate(client, tenant, program["id"], anna["customer_id"])
    exposures = await db.fetch(
        "SELECT variant, via FROM experiment_exposures WHERE advocate_id = $1",
        ids.decode("advocate", anna["id"]),
    )
    assert [(r["variant"], r["via"]) for r in exposures] == [("fifteen", "advocate")]

    # Her link's token carries her variant; the friend's quote and order get its offer.
    token = await click(client, anna["code"], "visitor-1")
    carried = ClickTokenSigner(settings.click_token_key).verify(token)
    assert (carried.experiment_id, carried.variant) == (experiment["id"], "fifteen")
    quote = await post(
        client,
        tenant,
        "/v1/checkout/quote",
        {"customer_id": "bo", "ref_token": token, "subtotal": 5000, "currency": "EUR"},
    )
    assert quote["friend_offer"]["amount"] == 1500
    result = await order(client, tenant, "bo", ref_token=token)
    assert friend_amount(result) == 1500
    referral = await get(client, tenant, f"/v1/referrals/{result['referral']['id']}")
    assert referral["attribution"]["experiment_id"] == experiment["id"]
    assert referral["attribution"]["variant"] == "fifteen"

    # A typed code carries the advocate's variant too.
    ten = await advocates_in(db, ids, client, tenant, program["id"], experiment, "ten")
    typed = await order(client, tenant, "cy", ten["code"])
    assert friend_amount(typed) == 1000
    referral = await get(client, tenant, f"/v1/referrals/{typed['referral']['id']}")
    assert referral["attribution"]["variant"] == "ten"


async def test_share_page_shows_the_variant_and_records_the_exposure(client, tenant, db, ids):
    program = await create_program(client, tenant)
    experiment = await start(client, tenant, program["id"])
    anna = await advocates_in(db, ids, client, tenant, program["id"], experiment, "fifteen")
    url = await post(client, tenant, f"/v1/advocates/{anna['id']}/share-url", {}, 201)
    page = await client.get(url["url"].replace("http://testserver.local", ""), headers=BROWSER)
    assert page.status_code == 200
    assert "Give 15 EUR, get 10 EUR" in page.text
    assert "Your friends save 15 EUR on their first order." in page.text


async def test_a_friends_offer_never_changes_mid_way(client, tenant, db, ids):
    """A friend who clicked a variant's link keeps its offer after the experiment ended
    with the other variant as the winner; a friend who clicked before the experiment
    keeps the program's offer of that time."""
    program = await create_program(client, tenant, fraud_policy=NO_VELOCITY)
    before_anna = await create_advocate(client, tenant, program["id"], "early")
    early_token = await click(client, before_anna["code"], "visitor-early")
    experiment = await start(client, tenant, program["id"])
    anna = await advocates_in(db, ids, client, tenant, program["id"], experiment, "fifteen")
    token = await click(client, anna["code"], "visitor-2")
    early_quote = await post(
        client,
        tenant,
        "/v1/checkout/quote",
        {
            "customer_id": "early-friend",
            "ref_token": early_token,
            "subtotal": 5000,
            "currency": "EUR",
        },
    )
    assert early_quote["friend_offer"]["amount"] == 1000  # the program's, as when clicked

    ended = await post(
        client,
        tenant,
        f"/v1/programs/{program['id']}/experiments/{experiment['id']}/end",
        {"winner": "ten", "actor": "growth@shop.example"},
    )
    assert ended["status"] == "ended" and ended["winner"] == "ten"

    # Her link said 15 EUR: her order gets 15 EUR although "ten" won.
    late = await order(client, tenant, "eve", ref_token=token)
    assert friend_amount(late) == 1500


async def test_ending_with_a_winner_makes_its_settings_the_programs(client, tenant, db, ids):
    program = await create_program(client, tenant, fraud_policy=NO_VELOCITY)
    experiment = await start(client, tenant, program["id"])
    ten = await advocates_in(db, ids, client, tenant, program["id"], experiment, "ten")
    granted = await order(client, tenant, "fay", ten["code"])
    before = await get(client, tenant, f"/v1/programs/{program['id']}")
    ended = await post(
        client,
        tenant,
        f"/v1/programs/{program['id']}/experiments/{experiment['id']}/end",
        {"winner": "fifteen", "actor": "growth@shop.example"},
    )
    after = await get(client, tenant, f"/v1/programs/{program['id']}")
    assert after["rules_version"] == before["rules_version"] + 1 == ended["rules_version"]
    assert after["rewards"]["friend"] == FIFTEEN
    assert after["rewards"]["advocate"] == before["rewards"]["advocate"]
    # The reward granted under the experiment keeps what it was.
    (friend,) = [r for r in granted["rewards"] if r["side"] == "friend"]
    reward = await get(client, tenant, f"/v1/rewards/{friend['id']}")
    assert reward["amount"] == 1000
    # A new advocate's page shows the winner's words; new friends get its offer.
    newcomer = await create_advocate(client, tenant, program["id"], "newcomer")
    url = await post(client, tenant, f"/v1/advocates/{newcomer['id']}/share-url", {}, 201)
    page = await client.get(url["url"].replace("http://testserver.local", ""), headers=BROWSER)
    assert "Give 15 EUR, get 10 EUR" in page.text
    assert friend_amount(await order(client, tenant, "gus", newcomer["code"])) == 1500
    # Ended is final.
    again = await client.post(
        f"/v1/programs/{program['id']}/experiments/{experiment['id']}/end",
        json={"winner": "ten"},
        headers=tenant.auth,
    )
    assert again.status_code == 409 and again.json()["code"] == "experiment_ended"


async def test_ending_without_a_winner_restores_the_program(client, tenant, db, ids):
    program = await create_program(client, tenant, fraud_policy=NO_VELOCITY)
    experiment = await start(client, tenant, program["id"])
    fifteen = await advocates_in(db, ids, client, tenant, program["id"], experiment, "fifteen")
    assert friend_amount(await order(client, tenant, "hal", fifteen["code"])) == 1500
    await post(
        client,
        tenant,
        f"/v1/programs/{program['id']}/experiments/{experiment['id']}/end",
        {"actor": "growth@shop.example"},
    )
    after = await get(client, tenant, f"/v1/programs/{program['id']}")
    assert after["rules_version"] == program["rules_version"]
    assert after["rewards"]["friend"] == TEN
    # The same advocate's next friend gets the program's offer again.
    assert friend_amount(await order(client, tenant, "ida", fifteen["code"])) == 1000
    url = await post(client, tenant, f"/v1/advocates/{fifteen['id']}/share-url", {}, 201)
    page = await client.get(url["url"].replace("http://testserver.local", ""), headers=BROWSER)
    assert "Give 15 EUR" not in page.text


async def test_unknown_winner_and_unknown_experiment(client, tenant, other_tenant):
    program = await create_program(client, tenant)
    experiment = await start(client, tenant, program["id"])
    path = f"/v1/programs/{program['id']}/experiments/{experiment['id']}"
    wrong = await client.post(f"{path}/end", json={"winner": "twenty"}, headers=tenant.auth)
    assert wrong.status_code == 422 and wrong.json()["code"] == "unknown_variant"
    missing = await client.get(path.replace(experiment["id"], "exp_nothing"), headers=tenant.auth)
    assert missing.status_code == 404 and missing.json()["code"] == "experiment_not_found"
    elsewhere = await client.get(path, headers=other_tenant.auth)
    assert elsewhere.status_code == 404


async def test_a_scheduled_experiment_assigns_nothing_until_it_starts(client, tenant, settings):
    program = await create_program(client, tenant)
    later = datetime.now(UTC) + timedelta(days=2)
    experiment = await start(client, tenant, program["id"], starts_at=later.isoformat())
    assert experiment["state"] == "scheduled"
    anna = await create_advocate(client, tenant, program["id"], "anna")
    token = ClickTokenSigner(settings.click_token_key).verify(
        await click(client, anna["code"], "v")
    )
    assert token.variant is None and token.experiment_id is None


async def test_another_instance_assigns_the_same_variants(client, tenant, db, ids, settings):
    """A second app on the same database (another instance, or this one restarted) signs
    the same variant into every advocate's link: nothing about it lives in one process."""
    from litestar.testing import AsyncTestClient

    from referral.app import create_app

    program = await create_program(client, tenant)
    experiment = await start(client, tenant, program["id"])
    advocates = [
        await create_advocate(client, tenant, program["id"], f"cus-{n}") for n in range(12)
    ]
    signer = ClickTokenSigner(settings.click_token_key)
    here = [signer.verify(await click(client, a["code"], "v")).variant for a in advocates]
    async with AsyncTestClient(create_app(settings), base_url="http://testserver.local") as other:
        there = [signer.verify(await click(other, a["code"], "v")).variant for a in advocates]
    assert here == there
    assert here == [await variant_of(db, ids, experiment, a) for a in advocates]
    assert set(here) == {"ten", "fifteen"}


async def test_concurrent_first_exposures_record_one(client, tenant, db, ids):
    """The shop asking for an advocate's share URL many times at once records one exposure,
    and every answer is a share URL."""
    import asyncio

    from tests.factories import on_app_loop

    program = await create_program(client, tenant)
    await start(client, tenant, program["id"])
    anna = await create_advocate(client, tenant, program["id"], "anna")
    await db.execute("DELETE FROM experiment_exposures")  # her record's exposure, forgotten

    async def many(http):
        return await asyncio.gather(
            *(
                http.post(f"/v1/advocates/{anna['id']}/share-url", json={}, headers=tenant.auth)
                for _ in range(10)
            )
        )

    answers = await on_app_loop(client, many)
    assert [a.status_code for a in answers] == [201] * 10
    rows = await db.fetch("SELECT advocate_id, via FROM experiment_exposures")
    assert [(r["advocate_id"], r["via"]) for r in rows] == [
        (ids.decode("advocate", anna["id"]), "share_url")
    ]
