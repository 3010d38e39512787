"""The payouts pages as finance uses them: what is due, a preview that is what the batch then
holds, the batch's files (the API's, byte for byte), marking it paid and failing a line with
the person as actor, each checked in the database."""

from __future__ import annotations

import re

from referral.rewards.service import release_due
from tests.console.conftest import sign_in
from tests.factories import NO_VELOCITY, create_program, referred_order

EMAILS = {"anna": "anna@example.com", "ben": "ben@example.com", "cleo": None}


async def _due(client, tenant, db, pool, ids) -> dict:
    """Anna earns 10 EUR, Ben 20 EUR, Cleo (no email) 10 EUR and 100 SEK, all approved; the
    merchant's EUR minimum is 15 EUR, so Anna and Cleo's EUR roll over."""
    program = await create_program(
        client,
        tenant,
        hold_days=0,
        fraud_policy=NO_VELOCITY,
        rewards={"advocate": {"kind": "cash", "amounts": {"EUR": 1000, "SEK": 10000}}},
    )
    codes = {}
    for name, email in EMAILS.items():
        body = {"program_id": program["id"], "customer_id": name, "name": name.title()}
        if email:
            body["email"] = email
        made = await client.post("/v1/advocates", json=body, headers=tenant.auth)
        assert made.status_code == 201, made.text
        codes[name] = made.json()["code"]
    earned = (("anna", "EUR"), ("ben", "EUR"), ("ben", "EUR"), ("cleo", "EUR"), ("cleo", "SEK"))
    for n, (name, currency) in enumerate(earned, 1):
        await referred_order(client, tenant, codes[name], n, currency=currency)
    await release_due(pool, ids=ids)
    await db.execute(
        "UPDATE merchants SET payout_minimums = '{\"EUR\": 1500}' WHERE id = $1",
        tenant.merchant_id,
    )
    return codes


async def _no_minimum(db, tenant) -> None:
    await db.execute(
        "UPDATE merchants SET payout_minimums = '{}' WHERE id = $1", tenant.merchant_id
    )


async def _due_page(client) -> str:
    return _text((await client.get("/console/payouts")).text)


def _text(html: str) -> str:
    """The page's words without tags, spaces folded (what a person reads)."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


async def _create(console, currency: str = "EUR") -> str:
    preview = await console.get(f"/console/payouts/preview?currency={currency}&kind=cash")
    assert preview.status_code == 200, preview.text
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', preview.text))
    made = await console.post("/console/payouts/batches", data=fields, follow_redirects=False)
    assert made.status_code == 303, made.text
    return made.headers["location"].split("?")[0].rsplit("/", 1)[1]


async def test_due_per_currency_and_the_preview_is_what_the_batch_holds(
    console, tenant, db, pool, ids
):
    await _due(console, tenant, db, pool, ids)
    page = await _due_page(console)
    # EUR: only Ben reaches 15 EUR; Anna and Cleo (10 EUR each) roll over. SEK: Cleo.
    assert "EUR · Cash 20 EUR 1 payee · 2 rewards" in page
    assert "Under 15 EUR, rolling over: 2 payees, 20 EUR" in page
    assert "SEK · Cash 100 SEK 1 payee · 1 reward" in page

    preview = await console.get("/console/payouts/preview?currency=EUR&kind=cash")
    shown = _text(preview.text)
    assert "Total 20 EUR" in shown and "Payees 1" in shown
    assert "Under the minimum, left for a later batch: 2 payees, 20 EUR." in shown
    assert await db.fetchval("SELECT count(*) FROM payout_batches") == 0, "a preview makes nothing"

    batch_id = await _create(console)
    batch = await db.fetchrow(
        "SELECT status, total, line_count, reward_count, minimum FROM payout_batches "
        "WHERE merchant_id = $1 AND id = $2",
        tenant.merchant_id,
        ids.decode("payout", batch_id),
    )
    assert tuple(batch) == ("open", 2000, 1, 2, 1500)
    page = await console.get(f"/console/payouts/{batch_id}?done=created")
    assert "Batch created: 1 payee, 20 EUR." in _text(page.text)
    listed = await _due_page(console)
    assert "open" in listed and "No payee reaches the minimum yet." in listed
    assert "Under 15 EUR, rolling over: 2 payees, 20 EUR" in listed, "still due"


async def test_the_files_are_the_apis_byte_for_byte(console, tenant, db, pool, ids):
    await _due(console, tenant, db, pool, ids)
    await _no_minimum(db, tenant)
    batch_id = await _create(console)
    page = await console.get(f"/console/payouts/{batch_id}")
    shown = _text(page.text)
    # Cleo has no email: the PayPal file leaves her out and the page says why.
    assert "The PayPal file leaves out 1 line (10 EUR)" in shown
    assert "no email on file" in shown
    for path in ("payouts.csv", "payouts.csv?format=paypal&part=1", "rewards.csv"):
        mine = await console.get(f"/console/payouts/{batch_id}/{path}")
        api = await console.get(f"/v1/payout-batches/{batch_id}/{path}", headers=tenant.auth)
        assert mine.status_code == api.status_code == 200
        assert mine.headers["content-type"].startswith("text/csv")
        assert "attachment" in mine.headers["content-disposition"]
        assert mine.content == api.content and mine.content
    assert (
        await db.fetchval(
            "SELECT status FROM payout_batches WHERE id = $1", ids.decode("payout", batch_id)
        )
        == "open"
    ), "downloading changes nothing"


async def test_mark_paid_and_fail_a_line_with_the_person_as_actor(
    client, tenant, db, pool, ids, settings
):
    await _due(client, tenant, db, pool, ids)
    await _no_minimum(db, tenant)
    client.csrf = await sign_in(client, db, settings, tenant.merchant_id, actor="Fia Finance")
    batch_id = await _create(client)
    base = f"/console/payouts/{batch_id}"

    exported = await client.post(f"{base}/exported", data={"csrf": client.csrf})
    assert "Marked exported" in exported.text
    paid = await client.post(f"{base}/paid", data={"csrf": client.csrf})
    assert "Marked paid: 3 payees, 40 EUR" in _text(paid.text)
    pk = ids.decode("payout", batch_id)
    assert await db.fetchval("SELECT status FROM payout_batches WHERE id = $1", pk) == "paid"
    actors = await db.fetch(
        "SELECT DISTINCT t.actor, t.reason FROM reward_transitions t JOIN payout_items i "
        "ON i.reward_id = t.reward_id AND i.merchant_id = t.merchant_id WHERE i.batch_id = $1 "
        "AND t.to_status = 'paid'",
        pk,
    )
    assert [tuple(r) for r in actors] == [("Fia Finance", "payout_paid")]

    line = await db.fetchrow(
        "SELECT id FROM payout_lines WHERE batch_id = $1 AND payee_key = 'ben'", pk
    )
    line_id = ids.encode("payout_line", line["id"])
    failed = await client.post(
        f"{base}/lines/{line_id}/fail",
        data={"csrf": client.csrf, "reason": "account  closed", "payee": "ben"},
    )
    shown = _text(failed.text)
    assert "The line for ben is marked failed: account closed." in shown
    assert "Failed (1)" in shown and "ben" in shown and "anna@example.com" not in shown
    row = await db.fetchrow(
        "SELECT status, failure_reason FROM payout_lines WHERE id = $1", line["id"]
    )
    assert tuple(row) == ("failed", "account closed")
    reversed_by = await db.fetch(
        "SELECT DISTINCT t.actor FROM reward_transitions t JOIN payout_items i "
        "ON i.reward_id = t.reward_id AND i.merchant_id = t.merchant_id "
        "WHERE i.line_id = $1 AND t.reason = 'payout_failed'",
        line["id"],
    )
    assert [r["actor"] for r in reversed_by] == ["Fia Finance"]
    # Ben's 20 EUR is due again.
    assert "EUR · Cash 20 EUR 1 payee · 2 rewards" in await _due_page(client)

    blank = await client.post(
        f"{base}/lines/{line_id}/fail", data={"csrf": client.csrf, "reason": "  "}
    )
    assert blank.status_code == 422 and "say why the line failed" in blank.text


async def test_cancel_returns_the_rewards(console, tenant, db, pool, ids):
    await _due(console, tenant, db, pool, ids)
    batch_id = await _create(console, "SEK")
    cancelled = await console.post(
        f"/console/payouts/{batch_id}/cancelled", data={"csrf": console.csrf}
    )
    assert "Batch cancelled" in cancelled.text
    assert (
        await db.fetchval(
            "SELECT status FROM payout_batches WHERE id = $1", ids.decode("payout", batch_id)
        )
        == "cancelled"
    )
    assert "SEK · Cash 100 SEK 1 payee · 1 reward" in await _due_page(console)


async def test_nothing_due_says_what_to_do_and_a_preview_that_pays_nothing_offers_no_button(
    console, tenant, db
):
    page = await console.get("/console/payouts")
    assert "Nothing is due" in page.text and "No batches yet" in page.text
    empty = await console.get("/console/payouts/preview?currency=EUR")
    assert "a batch now would pay nothing" in empty.text
    assert "/console/payouts/batches" not in empty.text
    wrong = await console.get("/console/payouts/preview?currency=XXX")
    assert wrong.status_code == 422 and "unknown currency XXX" in wrong.text
    swedish = await console.get("/console/payouts", headers={"accept-language": "sv"})
    assert "Utbetalningar" in swedish.text and "Inget att betala" in swedish.text


async def test_a_batch_of_another_merchant_or_the_other_mode_is_not_found(
    console, client, tenant, other_tenant, db, pool, ids
):
    await _due(console, tenant, db, pool, ids)
    await _due(console, other_tenant, db, pool, ids)
    made = await console.post(
        "/v1/payout-batches", json={"currency": "SEK"}, headers=other_tenant.auth
    )
    theirs = made.json()["id"]
    for path in ("", "/payouts.csv", "/rewards.csv"):
        assert (await console.get(f"/console/payouts/{theirs}{path}")).status_code == 404
    refused = await console.post(f"/console/payouts/{theirs}/paid", data={"csrf": console.csrf})
    assert refused.status_code == 404
    assert (
        await db.fetchval(
            "SELECT status FROM payout_batches WHERE id = $1", ids.decode("payout", theirs)
        )
        == "open"
    )

    mine = await _create(console, "SEK")
    switched = await console.post("/console/mode", data={"csrf": console.csrf})
    assert switched.status_code == 200
    assert (await console.get(f"/console/payouts/{mine}")).status_code == 404
    assert "Nothing is due" in (await console.get("/console/payouts")).text


async def test_batches_newest_first_and_lines_page_by_payee(
    console, tenant, db, pool, ids, monkeypatch
):
    from referral.console.pages import payouts

    await _due(console, tenant, db, pool, ids)
    await _no_minimum(db, tenant)
    eur = await _create(console, "EUR")
    sek = await _create(console, "SEK")
    monkeypatch.setattr(payouts, "PAGE_SIZE", 1)
    monkeypatch.setattr(payouts, "LINES_PAGE_SIZE", 2)
    first = await console.get("/console/payouts")
    assert f"/console/payouts/{sek}" in first.text and f"/console/payouts/{eur}" not in first.text
    older = re.search(r'href="(/console/payouts\?after=[^"#]+)', first.text).group(1)
    second = await console.get(older.replace("&amp;", "&"))
    assert f"/console/payouts/{eur}" in second.text and f"/console/payouts/{sek}" not in second.text

    lines = await console.get(f"/console/payouts/{eur}")
    assert "anna@example.com" in lines.text and "ben@example.com" in lines.text
    assert 'id="reason-' in lines.text and lines.text.count('id="reason-') == 2
    more = re.search(rf'href="(/console/payouts/{eur}\?after=[^"#]+)', lines.text).group(1)
    rest = await console.get(more.replace("&amp;", "&"))
    assert "cleo" in rest.text and "anna@example.com" not in rest.text
    assert "More lines" not in rest.text


def test_every_word_is_said_in_english_and_swedish():
    from referral.console.pages import payouts, stories

    for module in (payouts, stories):
        assert module.WORDS["en"].keys() == module.WORDS["sv"].keys(), module.__name__
