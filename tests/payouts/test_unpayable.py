"""Finance files never block on one payee: the PayPal file holds every line PayPal can pay,
and the lines it cannot (no email, an invalid one, an amount PayPal would round) are listed
beside it with their reason, through the API and the CLI, without changing the batch.
Payout emails are validated strictly, never escaped into something else."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from referral.lib.emails import PAYOUT_EMAIL_REGEX, payout_email_problem
from referral.rewards.service import release_due
from tests.commands import referral
from tests.payouts.test_payouts import (
    BATCHES,
    download,
    make_advocate,
    make_program,
    new_batch,
    order,
    parse,
)

# Payees whose emails are set in the database: the API no longer takes them, but a batch
# must still cope with addresses stored before (or reached through an order's email).
STORED = {
    "bob": None,
    "dash": "-2@x.com",
    "eq": "=cmd|'/Ccalc'!A0@x.com",  # a valid RFC 5322 address, and a spreadsheet formula
    "two-ats": "carl@@example.com",
}


async def batch_with_unpayable_lines(client, tenant, db, pool, ids, currency="EUR") -> dict:
    program = await make_program(client, tenant, {currency: 1250})
    codes = {"anna": await make_advocate(client, tenant, program, "anna", "anna@example.com")}
    for payee, email in STORED.items():
        codes[payee] = await make_advocate(client, tenant, program, payee)
        await db.execute(
            "UPDATE advocates SET email = $2 WHERE merchant_id = $1 AND customer_id = $3",
            tenant.merchant_id,
            email,
            payee,
        )
    for code in codes.values():
        await order(client, tenant, code, currency=currency)
    await release_due(pool, ids=ids)
    return await new_batch(client, tenant, currency=currency)


def paypal_rows(raw: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))


async def test_the_paypal_file_pays_everyone_it_can_and_lists_the_rest(
    client, tenant, db, pool, ids
):
    batch = await batch_with_unpayable_lines(client, tenant, db, pool, ids)
    assert batch["line_count"] == 5 and batch["total"] == 5 * 1250

    response = await client.get(
        f"{BATCHES}/{batch['id']}/payouts.csv", params={"format": "paypal"}, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    assert [row[:3] for row in paypal_rows(response.content)] == [
        ["anna@example.com", "12.50", "EUR"]
    ]
    assert response.headers["unpayable-lines"] == "4"
    listed = f"{BATCHES}/{batch['id']}/paypal"
    assert response.headers["link"] == f'<http://testserver.local{listed}>; rel="describedby"'

    paypal = (await client.get(listed, headers=tenant.auth)).json()
    assert {
        line["payee"]: (line["payee_email"], line["reason"]) for line in paypal["unpayable"]
    } == {
        "bob": (None, "no_email"),
        "dash": ("-2@x.com", "invalid_email"),
        "eq": ("=cmd|'/Ccalc'!A0@x.com", "invalid_email"),
        "two-ats": ("carl@@example.com", "invalid_email"),
    }
    assert (paypal["payable_lines"], paypal["payable_total"], paypal["parts"]) == (1, 1250, 1)
    assert (paypal["unpayable_lines"], paypal["unpayable_total"]) == (4, 4 * 1250)
    lines = (await client.get(f"{BATCHES}/{batch['id']}/lines", headers=tenant.auth)).json()
    assert {line["id"] for line in lines} >= {line["line_id"] for line in paypal["unpayable"]}
    assert (await client.get(f"{BATCHES}/{batch['id']}", headers=tenant.auth)).json()["csv"][
        "paypal_unpayable"
    ] == f"http://testserver.local{listed}"

    # The batch is as it was: every line still in it, in the standard file too, still open.
    after = (await client.get(f"{BATCHES}/{batch['id']}", headers=tenant.auth)).json()
    assert {k: after[k] for k in ("status", "line_count", "total")} == {
        "status": "open",
        "line_count": 5,
        "total": 5 * 1250,
    }
    standard = parse(await download(client, tenant, batch["id"]))
    assert len(standard) == 5
    emails = {row["payee_customer_id"]: row["payee_email"] for row in standard}
    assert emails["anna"] == "anna@example.com"  # a valid address is written as it is
    assert emails["eq"].startswith("'=")  # an invalid one is text, escaped as any text


async def test_a_whole_unit_currency_leaves_out_only_the_uneven_lines(
    client, tenant, db, pool, ids
):
    program = await make_program(client, tenant, {"HUF": 100_050})
    even = await make_program(client, tenant, {"HUF": 200_000})
    uneven = await make_advocate(client, tenant, program, "uneven", "u@example.com")
    whole = await make_advocate(client, tenant, even, "whole", "w@example.com")
    await order(client, tenant, uneven, currency="HUF")
    await order(client, tenant, whole, currency="HUF")
    await release_due(pool, ids=ids)
    batch = await new_batch(client, tenant, currency="HUF")
    rows = paypal_rows(await download(client, tenant, batch["id"], format="paypal"))
    assert [row[:3] for row in rows] == [["w@example.com", "2000", "HUF"]]
    paypal = (await client.get(f"{BATCHES}/{batch['id']}/paypal", headers=tenant.auth)).json()
    assert [(x["payee"], x["reason"]) for x in paypal["unpayable"]] == [
        ("uneven", "amount_not_whole_units")
    ]


async def test_the_cli_writes_the_payable_file_and_names_the_lines_left_out(
    client, tenant, db, pool, ids, settings, tmp_path
):
    batch = await batch_with_unpayable_lines(client, tenant, db, pool, ids)
    out = tmp_path / "paypal.csv"
    printed = await referral(
        settings, "payouts", "export", batch["id"], "-o", str(out), "--format", "paypal"
    )
    http = await download(client, tenant, batch["id"], format="paypal")
    assert out.read_bytes() == http
    assert "PayPal file: 1 line(s), 1250 EUR" in printed
    assert "4 line(s), 5000 EUR (minor units), are not in the file" in printed
    for payee, reason in [
        ("bob", "no_email"),
        ("dash", "invalid_email"),
        ("two-ats", "invalid_email"),
    ]:
        (line,) = [x for x in printed.splitlines() if f"  {payee}  " in x]
        assert line.endswith(f"  1250  {reason}")
    assert "-2@x.com" in printed  # shown as stored, so finance can find the payee


@pytest.mark.parametrize(
    "email",
    [
        "-2@x.com",
        "=1+2@x.com",
        "+46701234567@sms.example",
        "a@b",
        "a b@example.com",
        "a..b@example.com",
        "anna@example.com\n",
        "x" * 65 + "@example.com",
        "anna@-x.com",
    ],
)
async def test_the_api_refuses_a_payout_email_it_could_not_pay(client, tenant, email):
    program = await make_program(client, tenant)
    response = await client.post(
        "/v1/advocates",
        json={"program_id": program["id"], "customer_id": "anna", "email": email},
        headers=tenant.auth,
    )
    assert response.status_code in (400, 422), response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    if response.status_code == 422:
        assert (problem["code"], problem["field"]) == ("invalid_email", "email")
    else:  # no @ or whitespace: refused by the schema, which names the field too
        assert "email" in problem["detail"]


async def test_the_api_keeps_a_valid_payout_email_as_typed(client, tenant):
    program = await make_program(client, tenant)
    email = "Anna.O'Neil+refs@Mail.Example.co.uk"
    response = await client.post(
        "/v1/advocates",
        json={"program_id": program["id"], "customer_id": "anna", "email": email},
        headers=tenant.auth,
    )
    assert response.status_code == 201, response.text
    assert response.json()["email"] == email


_ATEXT = "abcXYZ059!#$%&'*+/=?^_`{|}~-"
EMAILS = st.one_of(
    st.from_regex(PAYOUT_EMAIL_REGEX, fullmatch=True),
    st.text(alphabet=_ATEXT + ".@ \n\u00e9", max_size=80),
    st.builds(
        lambda a, b: f"{a}@{b}",
        st.text(alphabet=_ATEXT + ".", min_size=1, max_size=70),
        st.text(alphabet="abc-.019", min_size=1, max_size=20),
    ),
)


async def test_the_sql_and_python_rules_agree(db):
    """One rule in two places (the exports' SQL, the API's Python): they must agree."""
    loop = asyncio.get_running_loop()

    @settings(
        max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(value=EMAILS)
    def same_rule(value):
        query = db.fetchval("SELECT payout_email_problem($1)", value)
        in_sql = asyncio.run_coroutine_threadsafe(query, loop).result()
        assert in_sql == payout_email_problem(value), value

    await asyncio.to_thread(same_rule)
