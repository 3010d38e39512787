"""Payees through the API: where a customer's payouts go, set by the shop's backend or on the
share page (validated, shown masked, every change audited masked); the batches and their
files carry the details frozen; the yearly totals per payee and currency; erasure."""

from __future__ import annotations

import csv
import io
import random
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from html import unescape
from zoneinfo import ZoneInfo

from referral.rewards.service import release_due
from tests.commands import referral
from tests.factories import create_program
from tests.payouts.test_payouts import BATCHES, download, make_advocate, make_program, order, parse

SE_IBAN = "SE3550000000054910000003"
SE_MASKED = "SE35 **** **** **** **** 0003"
DE_IBAN = "DE89370400440532013000"
BANK = {
    "method": "bank_transfer",
    "iban": "se35 5000 0000 0549 1000 0003",
    "account_holder": "Anna Svensson",
}


async def put(client, tenant, customer_id: str, body: dict, status: int = 200, **headers) -> dict:
    response = await client.put(
        f"/v1/payees/{customer_id}", json=body, headers={**tenant.auth, **headers}
    )
    assert response.status_code == status, response.text
    return response.json()


async def audit_rows(client, tenant, subject_id: str) -> list[dict]:
    response = await client.get(
        "/v1/audit-log", params={"subject_id": subject_id, "limit": 100}, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


class TestSetAndRead:
    async def test_bank_details_are_kept_compact_and_shown_masked(self, client, tenant):
        payee = await put(client, tenant, "cus_anna", {**BANK, "bic": "essesess"})
        assert payee["id"].startswith("pye_")
        assert (payee["method"], payee["iban"], payee["bic"]) == (
            "bank_transfer",
            SE_MASKED,
            "ESSESESS",
        )
        assert payee["account_holder"] == "Anna Svensson" and payee["updated_by"] == "key"
        shown = await client.get("/v1/payees/cus_anna", headers=tenant.auth)
        assert shown.status_code == 200 and shown.json() == payee
        assert SE_IBAN not in shown.text

    async def test_an_email_payee_is_masked_and_a_change_replaces_everything(self, client, tenant):
        await put(client, tenant, "cus_anna", BANK)
        payee = await put(
            client, tenant, "cus_anna", {"method": "email", "email": "anna@example.com"}
        )
        assert payee["email"] == "a***@example.com"
        assert payee["iban"] is None and payee["account_holder"] is None

    async def test_the_same_idempotency_key_answers_the_first_answer(self, client, tenant):
        first = await put(client, tenant, "cus_anna", BANK, **{"idempotency-key": "payee-1"})
        again = await put(client, tenant, "cus_anna", BANK, **{"idempotency-key": "payee-1"})
        assert again == first
        assert len(await audit_rows(client, tenant, first["id"])) == 1

    async def test_changes_at_once_each_audit_the_others_result(self, client, tenant):
        """Ten PUTs of one new payee on separate connections: one row, and the audit trail
        a chain (each `before` the `after` of the one before it, the first with none)."""
        import asyncio

        from tests.factories import on_app_loop

        async def send(http):
            async def one(n: int):
                body = {"method": "email", "email": f"anna@shop{n}.example"}  # masked apart
                return await http.put("/v1/payees/cus_race", json=body, headers=tenant.auth)

            return await asyncio.gather(*(one(n) for n in range(10)))

        responses = await on_app_loop(client, send)
        assert [r.status_code for r in responses] == [200] * 10
        payee = (await client.get("/v1/payees/cus_race", headers=tenant.auth)).json()
        rows = await audit_rows(client, tenant, payee["id"])
        assert len(rows) == 10
        # Follow the chain from the row with no `before` (the log's order is each change's
        # transaction start, not the order the lock let them through).
        by_before = {str(r["before"]): r for r in rows}
        assert len(by_before) == 10, "no two changes saw the same `before`"
        row, seen = by_before["None"], 1
        while str(row["after"]) in by_before:
            row, seen = by_before[str(row["after"])], seen + 1
        assert seen == 10 and row["after"]["email"] == payee["email"]

    async def test_unknown_payee_is_a_404(self, client, tenant):
        response = await client.get("/v1/payees/nobody", headers=tenant.auth)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "payee_not_found"

    async def test_what_cannot_be_paid_to_is_refused_with_its_problem(self, client, tenant):
        refused = {
            "invalid_iban": {**BANK, "iban": "SE35 5000 0000 0549 1000 0004"},  # check digits
            "missing_account_holder": {**BANK, "account_holder": "  "},
            "invalid_email": {"method": "email", "email": "=cmd|calc@example.com"},
            "invalid_bic": {**BANK, "bic": "NOT A BIC"},
            "invalid_payout_method": {"method": "email", "email": "a@example.com", "iban": DE_IBAN},
        }
        for code, body in refused.items():
            response = await client.put("/v1/payees/cus_x", json=body, headers=tenant.auth)
            assert response.status_code == 422, (code, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["code"] == code
        nothing = await client.get("/v1/payees/cus_x", headers=tenant.auth)
        assert nothing.status_code == 404, "a refused change keeps nothing"

    async def test_a_change_is_audited_masked_before_and_after(self, client, tenant):
        made = await put(
            client, tenant, "cus_anna", {"method": "email", "email": "anna@example.com"}
        )
        await put(client, tenant, "cus_anna", BANK)
        rows = await audit_rows(client, tenant, made["id"])
        assert [r["action"] for r in rows] == ["payee.updated", "payee.updated"]
        first, second = rows
        assert first["before"] is None and first["after"]["email"] == "a***@example.com"
        assert second["before"]["email"] == "a***@example.com"
        assert second["after"]["iban"] == SE_MASKED
        assert second["after"]["account_holder"] == "A*** S***"
        assert second["actor"]["type"] == "key" and second["subject_type"] == "payee"
        text = str(rows)
        assert SE_IBAN not in text and "anna@example.com" not in text and "Svensson" not in text
        assert "cus_anna" not in text, "the audit log outlives erasure: no customer id in it"


# --------------------------------------------------------------------------- the share page


async def share_page(client, tenant, *, locale: str = "en") -> tuple[str, dict]:
    program = await create_program(client, tenant, locale=locale)
    response = await client.post(
        "/v1/advocates",
        json={"program_id": program["id"], "customer_id": "cus_anna", "name": "Anna Svensson"},
        headers=tenant.auth,
    )
    assert response.status_code == 201, response.text
    advocate = response.json()
    url = await client.post(
        f"/v1/advocates/{advocate['id']}/share-url", json={}, headers=tenant.auth
    )
    assert url.status_code == 201, url.text
    return url.json()["url"].removeprefix("http://testserver.local"), advocate


def text_of(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</p>', html, re.S)
    assert match, f"no #{element_id} on the page"
    return unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()


class TestSharePage:
    async def test_the_advocate_sets_their_iban_and_sees_it_masked(self, client, tenant):
        path, advocate = await share_page(client, tenant)
        page = await client.get(path)
        assert text_of(page.text, "payee-current") == "You haven't told us yet."

        form = {"method": "bank_transfer", "iban": SE_IBAN, "account_holder": "Anna Svensson"}
        saved = await client.post(f"{path}/payee", data=form, follow_redirects=False)
        assert saved.status_code == 303 and saved.headers["location"].endswith("?done=payee#payee")
        page = await client.get(saved.headers["location"])
        assert text_of(page.text, "payee-current") == f"Paid to: {SE_MASKED} · Anna Svensson"
        assert text_of(page.text, "payee-saved") == "Saved. Your next payout goes there."
        assert SE_IBAN not in page.text

        shown = (await client.get("/v1/payees/cus_anna", headers=tenant.auth)).json()
        assert shown["updated_by"] == "advocate" and shown["iban"] == SE_MASKED
        (row,) = await audit_rows(client, tenant, shown["id"])
        assert row["actor"] == {"type": "advocate", "key_id": None, "name": advocate["id"]}
        assert row["after"]["iban"] == SE_MASKED

    async def test_a_wrong_iban_is_shown_readably_with_what_was_typed(self, client, tenant):
        path, _ = await share_page(client, tenant)
        form = {
            "method": "bank_transfer",
            "iban": "SE35 5000 0000 0549 1000 0004",
            "account_holder": "Anna",
        }
        refused = await client.post(f"{path}/payee", data=form, follow_redirects=False)
        assert refused.status_code == 422
        assert refused.headers["content-type"].startswith("text/html")
        assert text_of(refused.text, "payee-error").startswith("That IBAN isn't valid.")
        assert 'value="SE35 5000 0000 0549 1000 0004"' in refused.text, "kept to correct it"
        assert (await client.get("/v1/payees/cus_anna", headers=tenant.auth)).status_code == 404

    async def test_swedish_words(self, client, tenant):
        path, _ = await share_page(client, tenant, locale="sv")
        page = await client.get(path)
        assert "Vart ska vi skicka dina belöningar?" in page.text
        refused = await client.post(f"{path}/payee", data={"method": "email", "email": "nope"})
        assert refused.status_code == 422
        assert text_of(refused.text, "payee-error").startswith("E-postadressen ser inte rätt ut.")

    async def test_a_forged_token_changes_nothing(self, client, tenant):
        path, _ = await share_page(client, tenant)
        forged = path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb")
        response = await client.post(
            f"{forged}/payee", data={"method": "email", "email": "a@example.com"}
        )
        assert response.status_code == 403
        assert (await client.get("/v1/payees/cus_anna", headers=tenant.auth)).status_code == 404


# --------------------------------------------------------------------------- payout files


def rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


class TestPayoutFiles:
    async def test_batches_freeze_the_details_and_each_file_lists_what_it_leaves_out(
        self, client, tenant, db, pool, ids, settings, tmp_path
    ):
        program = await make_program(client, tenant, {"EUR": 1250})
        codes = {
            "anna": await make_advocate(client, tenant, program, "anna", "anna@example.com"),
            "ben": await make_advocate(client, tenant, program, "ben", "ben@example.com"),
            "cleo": await make_advocate(client, tenant, program, "cleo"),
            "dan": await make_advocate(client, tenant, program, "dan", "dan@example.com"),
        }
        await put(
            client, tenant, "anna", {**BANK, "account_holder": "=Anna Svensson", "bic": "ESSESESS"}
        )
        await put(client, tenant, "ben", {"method": "email", "email": "ben.paypal@example.com"})
        await put(client, tenant, "dan", {**BANK, "iban": DE_IBAN, "account_holder": "Dan"})
        # An IBAN stored before its check could fail it: the export checks again.
        await db.execute(
            "UPDATE payees SET iban = 'DE00370400440532013000'"
            " WHERE merchant_id = $1 AND customer_id = 'dan'",
            tenant.merchant_id,
        )
        for code in codes.values():
            await order(client, tenant, code)
        await release_due(pool, ids=ids)
        batch = (await client.post(BATCHES, json={"currency": "EUR"}, headers=tenant.auth)).json()
        assert batch["line_count"] == 4
        # Changed after the batch was made: the batch pays where it was told to.
        await put(client, tenant, "anna", {"method": "email", "email": "anna@example.com"})

        standard = {
            r["payee_customer_id"]: r for r in parse(await download(client, tenant, batch["id"]))
        }
        assert standard["anna"]["payout_method"] == "bank_transfer"
        assert standard["anna"]["iban"] == SE_IBAN and standard["anna"]["bic"] == "ESSESESS"
        assert standard["anna"]["account_holder"] == "'=Anna Svensson", "free text is escaped"
        assert standard["ben"]["payee_email"] == "ben.paypal@example.com"
        assert (
            standard["cleo"]["payout_method"] == "email" and standard["cleo"]["payee_email"] == ""
        )

        bank = await client.get(
            f"{BATCHES}/{batch['id']}/payouts.csv", params={"format": "bank"}, headers=tenant.auth
        )
        assert bank.status_code == 200, bank.text
        header, *paid = rows(bank.content)
        assert header[:4] == ["reference", "account_holder", "iban", "bic"]
        assert [r[1:7] for r in paid] == [
            ["'=Anna Svensson", SE_IBAN, "ESSESESS", "12.50", "1250", "EUR"]
        ]
        assert bank.headers["unpayable-lines"] == "3"
        listed = (
            await client.get(f"{BATCHES}/{batch['id']}/bank-transfers", headers=tenant.auth)
        ).json()
        assert {u["payee"]: u["reason"] for u in listed["unpayable"]} == {
            "ben": "paid_by_email",
            "cleo": "paid_by_email",
            "dan": "invalid_iban",
        }
        assert (listed["payable_lines"], listed["payable_total"]) == (1, 1250)

        paypal = await client.get(
            f"{BATCHES}/{batch['id']}/payouts.csv", params={"format": "paypal"}, headers=tenant.auth
        )
        assert [r[0] for r in rows(paypal.content)] == ["ben.paypal@example.com"]
        listed = (await client.get(f"{BATCHES}/{batch['id']}/paypal", headers=tenant.auth)).json()
        assert {u["payee"]: u["reason"] for u in listed["unpayable"]} == {
            "anna": "paid_by_bank_transfer",
            "cleo": "no_email",
            "dan": "paid_by_bank_transfer",
        }
        # Byte for byte the same each time, and from the command line.
        assert await download(client, tenant, batch["id"], format="bank") == bank.content
        out = tmp_path / "bank.csv"
        await referral(
            settings, "payouts", "export", batch["id"], "-o", str(out), "--format", "bank"
        )
        assert out.read_bytes() == bank.content


# --------------------------------------------------------------------------- yearly totals


async def test_totals_per_year_and_currency_equal_a_model_of_the_paid_lines(
    client, tenant, db, pool, ids
):
    """Random rounds of rewards in three currencies, each round's batches paid on a random
    day across three years (set on the batch, in a time zone 14 hours ahead of UTC, so
    the year of a payment near midnight differs from UTC's); one paid line failed."""
    zone = "Pacific/Kiritimati"
    response = await client.patch("/v1/merchant", json={"time_zone": zone}, headers=tenant.auth)
    assert response.status_code == 200, response.text
    rng = random.Random(16)
    currencies = {"EUR": 1000, "SEK": 10000, "JPY": 500}
    program = await make_program(client, tenant, currencies)
    payees = ["anna", "ben", "=cleo"]
    codes = {
        p: await make_advocate(client, tenant, program, p, f"{p.strip('=')}@example.com")
        for p in payees
    }
    await put(client, tenant, "anna", BANK)
    model: dict[tuple[str, int, str], list[int]] = defaultdict(list)
    failed_once = False
    for _ in range(5):
        for payee in payees:
            for _ in range(rng.randint(0, 2)):
                await order(client, tenant, codes[payee], currency=rng.choice(list(currencies)))
        await release_due(pool, ids=ids)
        for currency in currencies:
            made = await client.post(BATCHES, json={"currency": currency}, headers=tenant.auth)
            assert made.status_code == 201, made.text
            batch = made.json()
            if batch["line_count"] == 0:
                continue
            paid = await client.post(f"{BATCHES}/{batch['id']}/mark-paid", headers=tenant.auth)
            assert paid.status_code == 200, paid.text
            lines = (await client.get(f"{BATCHES}/{batch['id']}/lines", headers=tenant.auth)).json()
            if not failed_once:  # paid, then failed: the money came back, it was not paid
                failed_once = True
                gone, *lines = lines
                fail = await client.post(
                    f"{BATCHES}/{batch['id']}/lines/{gone['id']}/fail",
                    json={"reason": "account closed"},
                    headers=tenant.auth,
                )
                assert fail.status_code == 200, fail.text
            at = datetime(rng.choice([2024, 2025, 2026]), 1, 1, tzinfo=UTC) + timedelta(
                seconds=rng.randrange(366 * 86400)
            )
            if rng.random() < 0.3:  # just before midnight UTC on New Year's Eve
                at = datetime(rng.choice([2024, 2025]), 12, 31, 23, 0, tzinfo=UTC)
            await db.execute(
                "UPDATE payout_batches SET paid_at = $3 WHERE merchant_id = $1 AND id = $2",
                tenant.merchant_id,
                ids.decode("payout", batch["id"]),
                at,
            )
            year = at.astimezone(ZoneInfo(zone)).year
            for line in lines:
                model[(line["payee"], year, currency)].append(line["amount"])

    assert failed_once and len({y for _, y, _ in model}) >= 2, "the rounds must span years"
    for payee in payees:
        for year in (2024, 2025, 2026, 2027):
            response = await client.get(
                f"/v1/payees/{payee}/totals", params={"year": year}, headers=tenant.auth
            )
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer["time_zone"] == zone
            got = {(t["currency"], t["kind"]): (t["amount"], t["lines"]) for t in answer["totals"]}
            expected = {
                (c, "cash"): (sum(model[(payee, year, c)]), len(model[(payee, year, c)]))
                for c in currencies
                if model[(payee, year, c)]
            }
            assert got == expected, (payee, year)

    # The yearly file: the same sums, one row per payee and currency, real details for
    # finance, masked for a read-only key; free text escaped.
    for year in (2024, 2025, 2026):
        response = await client.get(
            "/v1/payee-totals", params={"year": year}, headers={**tenant.auth, "accept": "text/csv"}
        )
        assert response.status_code == 200 and response.headers["content-type"].startswith(
            "text/csv"
        )
        file = parse(response.content)
        expected = {
            ("'" + p if p.startswith("=") else p, c): sum(model[(p, year, c)])
            for p in payees
            for c in currencies
            if model[(p, year, c)]
        }
        assert {
            (r["payee_customer_id"], r["currency"]): int(r["amount_minor"]) for r in file
        } == expected
        for r in file:
            if r["payee_customer_id"] == "anna":
                assert (r["iban"], r["account_holder"], r["payout_method"]) == (
                    SE_IBAN,
                    "Anna Svensson",
                    "bank_transfer",
                )
        as_json = (
            await client.get("/v1/payee-totals", params={"year": year}, headers=tenant.auth)
        ).json()
        assert as_json["masked"] is False
        assert sum(r["amount"] for r in as_json["data"]) == sum(expected.values())

    made = await client.post("/v1/keys", json={"scopes": ["read"]}, headers=tenant.auth)
    read_only = {"authorization": f"Bearer {made.json()['secret']}"}
    for year in (2024, 2025, 2026):
        masked = await client.get("/v1/payee-totals", params={"year": year}, headers=read_only)
        assert masked.status_code == 200 and masked.json()["masked"] is True
        assert SE_IBAN not in masked.text and "anna@example.com" not in masked.text


async def test_a_year_out_of_range_is_a_problem(client, tenant):
    for path in ("/v1/payee-totals", "/v1/payees/anna/totals"):
        response = await client.get(path, params={"year": "1999"}, headers=tenant.auth)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


# --------------------------------------------------------------------------- data rights


async def test_a_payee_known_only_by_their_details_is_exported_and_erased(client, tenant, db):
    await put(client, tenant, "cus_zoe", BANK)
    exported = await client.get("/v1/customers/cus_zoe/export", headers=tenant.auth)
    assert exported.status_code == 200, exported.text
    (payee,) = exported.json()["payees"]
    assert (payee["iban"], payee["account_holder"]) == (SE_IBAN, "Anna Svensson")

    erased = await client.post("/v1/customers/cus_zoe/erase", headers=tenant.auth)
    assert erased.status_code == 201, erased.text
    assert erased.json()["erased"]["payees"] == 1
    assert (await client.get("/v1/payees/cus_zoe", headers=tenant.auth)).status_code == 404
    left = await db.fetchval(
        "SELECT count(*) FROM payees WHERE merchant_id = $1"
        " AND (customer_id = 'cus_zoe' OR iban = $2)",
        tenant.merchant_id,
        SE_IBAN,
    )
    assert left == 0
