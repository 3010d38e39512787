"""Payout batches as finance sees them, on a real PostgreSQL.

Every figure is checked against numbers the test works out itself from the programs' fixed
rewards (an independent model), and against the ledger: the CSVs, the batch total and the
ledger entries must agree to the cent, and no reward may ever be paid twice.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from referral.lib import money
from referral.rewards.service import release_due
from tests.factories import NO_VELOCITY, create_program, on_app_loop

BATCHES = "/v1/payout-batches"
_order_numbers = itertools.count(1)


# --- building blocks -------------------------------------------------------------------------


async def make_program(client, tenant, amounts=None, *, kind="cash", friend=None):
    rewards = {"advocate": {"kind": kind, "amounts": amounts or {"EUR": 1000}}}
    if friend is not None:
        rewards["friend"] = friend
    return await create_program(
        client, tenant, hold_days=0, rewards=rewards, fraud_policy=NO_VELOCITY
    )


async def make_advocate(client, tenant, program, customer_id, email=None) -> str:
    body = {"program_id": program["id"], "customer_id": customer_id}
    if email:
        body["email"] = email
    response = await client.post("/v1/advocates", json=body, headers=tenant.auth)
    assert response.status_code in (200, 201), response.text
    return response.json()["code"]


async def order(client, tenant, code, *, currency="EUR", order_id=None, friend=None) -> str:
    """A friend's first order with the advocate's code; returns the order id."""
    n = next(_order_numbers)
    order_id = order_id or f"ord-{n}"
    response = await client.post(
        "/v1/orders",
        headers=tenant.auth,
        json={
            "order_id": order_id,
            "customer_id": friend or f"friend-{n}",
            "subtotal": 5000,
            "total": 5000,
            "currency": currency,
            "occurred_at": datetime.now(UTC).isoformat(),
            "codes": [code],
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["rewards"], response.text
    return order_id


async def cancel_order(client, tenant, order_id: str) -> None:
    response = await client.post(f"/v1/orders/{order_id}/cancel", headers=tenant.auth)
    assert response.status_code == 200, response.text


async def new_batch(client, tenant, **body) -> dict:
    response = await client.post(BATCHES, json={"currency": "EUR", **body}, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()


async def post(client, tenant, batch_id: str, action: str, json=None, status: int = 200):
    response = await client.post(f"{BATCHES}/{batch_id}/{action}", json=json, headers=tenant.auth)
    assert response.status_code == status, response.text
    return response.json()


async def download(client, tenant, batch_id: str, name: str = "payouts.csv", **params) -> bytes:
    response = await client.get(f"{BATCHES}/{batch_id}/{name}", params=params, headers=tenant.auth)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return response.content


def parse(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


async def lines(client, tenant, batch_id: str) -> dict[str, dict]:
    response = await client.get(f"{BATCHES}/{batch_id}/lines", headers=tenant.auth)
    assert response.status_code == 200, response.text
    return {line["payee"]: line for line in response.json()}


async def reward_items(db, ids, batch_id: str, *, active: bool = True) -> list[int]:
    """Reward pks linked to the batch (not netted receivables)."""
    rows = await db.fetch(
        "SELECT reward_id FROM payout_items WHERE batch_id = $1 AND ledger_entry_id IS NULL"
        " AND active = $2 ORDER BY reward_id",
        ids.decode("payout", batch_id),
        active,
    )
    return [r["reward_id"] for r in rows]


async def approved_rewards(db, merchant_id: int, currency: str = "EUR") -> list[int]:
    rows = await db.fetch(
        "SELECT id FROM rewards WHERE merchant_id = $1 AND status = 'approved'"
        " AND currency = $2 ORDER BY id",
        merchant_id,
        currency,
    )
    return [r["id"] for r in rows]


async def account_sum(db, reward_ids: list[int], account: str) -> int:
    return await db.fetchval(
        "SELECT coalesce(sum(amount), 0)::bigint FROM ledger_entries"
        " WHERE reward_id = ANY($1::bigint[]) AND account = $2",
        reward_ids,
        account,
    )


async def assert_reconciles(client, tenant, db, ids, batch: dict, *, account="payable") -> None:
    """payouts.csv, rewards.csv, the lines, the batch total and the ledger tell one story.

    `account` is where the batch's rewards hold their value: payable before payment, paid
    after. Netted receivables are the ledger entries the batch links to."""
    batch_id, currency = batch["id"], batch["currency"]
    exponent = money.exponent(currency)
    payouts = parse(await download(client, tenant, batch_id))
    rewards_csv = parse(await download(client, tenant, batch_id, "rewards.csv"))
    by_payee = await lines(client, tenant, batch_id)

    assert sum(int(r["amount_minor"]) for r in payouts) == batch["total"]
    assert sum(line["amount"] for line in by_payee.values()) == batch["total"]
    assert len(payouts) == batch["line_count"] == len(by_payee)
    assert sum(int(r["reward_count"]) for r in payouts) == batch["reward_count"]
    for row in payouts:
        line = by_payee[row["payee_customer_id"].removeprefix("'")]
        assert int(row["amount_minor"]) == line["amount"] == line["gross"] + line["netted"]
        assert row["currency"] == currency and row["batch_id"] == batch_id
        assert Decimal(row["amount"]) == Decimal(row["amount_minor"]).scaleb(-exponent)
        whole, _, fraction = row["amount"].partition(".")
        assert len(fraction) == exponent and whole.isdigit(), row["amount"]

    assert sum(int(r["net_minor"]) for r in rewards_csv) == batch["total"]
    assert sum(r["line_type"] == "reward" for r in rewards_csv) == batch["reward_count"]
    for row in rewards_csv:
        assert Decimal(row["net"]) == Decimal(row["net_minor"]).scaleb(-exponent)
        assert int(row["net_minor"]) == int(row["gross_minor"]) + int(row["reversed_minor"])

    pk = ids.decode("payout", batch_id)
    in_batch = await reward_items(db, ids, batch_id)
    netted = await db.fetchval(
        "SELECT coalesce(sum(e.amount), 0)::bigint FROM payout_items i"
        " JOIN ledger_entries e ON e.id = i.ledger_entry_id"
        " WHERE i.batch_id = $1 AND i.active AND e.account = 'receivable'",
        pk,
    )
    assert await account_sum(db, in_batch, account) + netted == batch["total"]
    assert netted == sum(line["netted"] for line in by_payee.values())


# --- reconciliation --------------------------------------------------------------------------


async def test_csv_totals_reconcile_with_the_ledger_in_eur_jpy_and_kwd(
    client, tenant, db, pool, ids
):
    amounts = {"EUR": 1234, "JPY": 500, "KWD": 12345}
    program = await make_program(client, tenant, amounts)
    anna = await make_advocate(client, tenant, program, "anna")
    ben = await make_advocate(client, tenant, program, "ben")
    earned = {
        ("anna", "EUR"): 2,
        ("anna", "JPY"): 3,
        ("anna", "KWD"): 1,
        ("ben", "EUR"): 1,
        ("ben", "KWD"): 2,
    }
    for (payee, currency), count in earned.items():
        for _ in range(count):
            await order(client, tenant, anna if payee == "anna" else ben, currency=currency)
    await release_due(pool, ids=ids)

    expected_text = {
        ("anna", "EUR"): "24.68",
        ("ben", "EUR"): "12.34",
        ("anna", "JPY"): "1500",
        ("anna", "KWD"): "12.345",
        ("ben", "KWD"): "24.690",
    }
    for currency in ("EUR", "JPY", "KWD"):
        batch = await new_batch(client, tenant, currency=currency)
        model = {payee: count * amounts[c] for (payee, c), count in earned.items() if c == currency}
        assert batch["total"] == sum(model.values())
        assert batch["reward_count"] == sum(n for (_, c), n in earned.items() if c == currency)
        rows = parse(await download(client, tenant, batch["id"]))
        assert {r["payee_customer_id"]: int(r["amount_minor"]) for r in rows} == model
        for row in rows:
            assert row["amount"] == expected_text[(row["payee_customer_id"], currency)]
        await assert_reconciles(client, tenant, db, ids, batch)

        await post(client, tenant, batch["id"], "mark-paid")
        paid = (await client.get(f"{BATCHES}/{batch['id']}", headers=tenant.auth)).json()
        assert paid["status"] == "paid" and paid["total"] == batch["total"]
        await assert_reconciles(client, tenant, db, ids, paid, account="paid")
        assert await account_sum(db, await reward_items(db, ids, batch["id"]), "payable") == 0

    # Everything is paid: the next batch in each currency is empty.
    assert (await new_batch(client, tenant, currency="KWD"))["total"] == 0
    response = await client.post(BATCHES, json={"currency": "XXX"}, headers=tenant.auth)
    assert response.status_code == 422 and response.json()["code"] == "unknown_currency"


async def test_clawback_after_payment_is_netted_off_the_next_batch(client, tenant, db, pool, ids):
    program = await make_program(client, tenant, {"EUR": 1000})
    anna = await make_advocate(client, tenant, program, "anna")
    ben = await make_advocate(client, tenant, program, "ben")
    first = await order(client, tenant, anna, order_id="a-1")
    await order(client, tenant, anna)
    ben_order = await order(client, tenant, ben)
    await release_due(pool, ids=ids)
    paid = await new_batch(client, tenant)
    assert paid["total"] == 3000
    await post(client, tenant, paid["id"], "mark-paid")

    # After payment, both orders are cancelled: the money already paid becomes receivable.
    await cancel_order(client, tenant, first)
    await cancel_order(client, tenant, ben_order)
    receivables = await db.fetch(
        "SELECT payee_key, amount FROM ledger_entries WHERE account = 'receivable'"
        " ORDER BY payee_key"
    )
    assert [(r["payee_key"], r["amount"]) for r in receivables] == [("anna", -1000), ("ben", -1000)]
    # The paid batch and its exports do not change.
    assert parse(await download(client, tenant, paid["id"]))[0]["amount_minor"] == "2000"

    await order(client, tenant, anna)
    await order(client, tenant, anna)
    await release_due(pool, ids=ids)
    second = await new_batch(client, tenant)
    by_payee = await lines(client, tenant, second["id"])
    assert set(by_payee) == {"anna"}, "ben only owes money: no line, he rolls over"
    line = by_payee["anna"]
    assert (line["gross"], line["netted"], line["amount"]) == (2000, -1000, 1000)
    assert line["netted"] < 0 and line["amount"] == line["gross"] + line["netted"]
    assert second["total"] == 1000 and second["reward_count"] == 2
    rewards_csv = parse(await download(client, tenant, second["id"], "rewards.csv"))
    clawbacks = [r for r in rewards_csv if r["line_type"] == "clawback"]
    assert len(clawbacks) == 1
    claw = clawbacks[0]
    assert (claw["order_id"], claw["payee_customer_id"]) == ("a-1", "anna")
    assert (claw["gross_minor"], claw["reversed_minor"], claw["net_minor"], claw["net"]) == (
        "0",
        "-1000",
        "-1000",
        "-10.00",
    )
    assert b",-1000,-10.00," in await download(client, tenant, second["id"], "rewards.csv")
    await assert_reconciles(client, tenant, db, ids, second)
    await post(client, tenant, second["id"], "mark-paid")

    # Ben earns again: his receivable is netted now; anna's, netted in a paid batch, never again.
    await order(client, tenant, ben)
    await order(client, tenant, ben)
    await order(client, tenant, anna)
    await release_due(pool, ids=ids)
    third = await new_batch(client, tenant)
    by_payee = await lines(client, tenant, third["id"])
    assert {p: (x["gross"], x["netted"], x["amount"]) for p, x in by_payee.items()} == {
        "anna": (1000, 0, 1000),
        "ben": (2000, -1000, 1000),
    }
    await assert_reconciles(client, tenant, db, ids, third)


async def test_the_balances_due_are_each_currency_and_kinds_preview(
    client, tenant, db, pool, ids, settings
):
    """What the payouts page shows as due (one statement for every currency and kind) is,
    for each, exactly the preview of a batch made now: through a minimum, a clawback, a payee
    under the minimum, rewards already in an open batch, and a reward not yet approved."""
    from types import SimpleNamespace

    from referral.merchants.service import Caller
    from referral.payouts import service
    from referral.payouts.schemas import BatchCreate

    cash = await make_program(client, tenant, {"EUR": 1000, "SEK": 5000})
    credit = await make_program(client, tenant, {"EUR": 700}, kind="store_credit")
    anna, ben, cleo = [
        await make_advocate(client, tenant, cash, n) for n in ("anna", "ben", "cleo")
    ]
    dora = await make_advocate(client, tenant, credit, "dora")
    clawed = await order(client, tenant, anna)
    for code, currency in ((anna, "EUR"), (ben, "EUR"), (ben, "SEK"), (cleo, "SEK")):
        await order(client, tenant, code, currency=currency)
    for _ in range(3):
        await order(client, tenant, dora)
    await release_due(pool, ids=ids)
    await post(client, tenant, (await new_batch(client, tenant))["id"], "mark-paid")
    await cancel_order(client, tenant, clawed)  # anna owes 10 EUR back
    for code, currency in ((anna, "EUR"), (anna, "EUR"), (ben, "SEK"), (cleo, "SEK")):
        await order(client, tenant, code, currency=currency)
    await release_due(pool, ids=ids)
    await new_batch(client, tenant, currency="SEK")  # holds ben's and cleo's 10,000 SEK each
    await order(client, tenant, cleo, currency="SEK")
    await order(client, tenant, ben, currency="SEK")
    await order(client, tenant, ben, currency="SEK")
    await release_due(pool, ids=ids)
    await order(client, tenant, anna)  # not approved yet (held until release): not due
    await db.execute(
        "UPDATE merchants SET payout_minimums = '{\"SEK\": 6000}' WHERE id = $1",
        tenant.merchant_id,
    )

    caller = Caller(merchant_id=tenant.merchant_id, mode="test", kind="secret")
    runtime = SimpleNamespace(ids=ids, settings=settings)
    due = await service.balances(db, runtime=runtime, caller=caller)
    assert [(d.currency, d.kind) for d in due] == [
        ("EUR", "cash"),
        ("EUR", "store_credit"),
        ("SEK", "cash"),
    ]
    for shown in due:
        preview = await service.preview(
            db,
            runtime=runtime,
            caller=caller,
            data=BatchCreate(currency=shown.currency, kind=shown.kind, cutoff=shown.cutoff),
        )
        assert shown == preview
    eur, credit_due, sek = due
    assert (eur.total, eur.netted, eur.line_count) == (1000, -1000, 1), "anna: 20 less 10"
    assert (credit_due.total, credit_due.reward_count) == (2100, 3)
    assert sek.minimum == 6000 and eur.minimum == 0
    assert (sek.line_count, sek.total, sek.rolled_over_count, sek.rolled_over_total) == (
        1,
        10000,
        1,
        5000,
    ), "ben's 100 SEK is paid, cleo's 50 SEK rolls over"


# --- concurrency and idempotency -------------------------------------------------------------


async def test_concurrent_batch_creation_never_shares_a_reward(client, tenant, db, pool, ids):
    program = await make_program(client, tenant)
    codes = [await make_advocate(client, tenant, program, f"payee-{n}") for n in range(4)]
    for code in codes:
        await order(client, tenant, code)
    await release_due(pool, ids=ids)
    for code in codes:  # pending: approved while the batches are being created
        await order(client, tenant, code)

    async def five_batches(http):
        return await asyncio.gather(
            *(http.post(BATCHES, json={"currency": "EUR"}, headers=tenant.auth) for _ in range(5))
        )

    responses, _ = await asyncio.gather(
        on_app_loop(client, five_batches), release_due(pool, ids=ids)
    )
    assert [r.status_code for r in responses] == [201] * 5, [r.text for r in responses]
    batches = [r.json() for r in responses]
    batches.append(await new_batch(client, tenant))  # whatever was approved after them

    linked: list[int] = []
    for batch in batches:
        items = await reward_items(db, ids, batch["id"])
        assert len(items) == batch["reward_count"]
        assert batch["total"] == 1000 * len(items)
        linked += items
    assert len(linked) == len(set(linked)), "a reward is in two batches"
    everything = await db.fetch(
        "SELECT id FROM rewards WHERE merchant_id = $1 ORDER BY id", tenant.merchant_id
    )
    assert sorted(linked) == [r["id"] for r in everything]
    assert len(linked) == 8

    # The rule is a constraint, not a check.
    index = await db.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'payout_items_one_batch_per_reward'"
    )
    assert index is not None and "UNIQUE" in index
    taken = await db.fetchrow("SELECT * FROM payout_items WHERE ledger_entry_id IS NULL LIMIT 1")
    other = next(b for b in batches if ids.decode("payout", b["id"]) != taken["batch_id"])
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(
            "INSERT INTO payout_items (merchant_id, batch_id, line_id, reward_id, amount,"
            " reward_public_id, side, gross, reversed, earned_at)"
            " SELECT merchant_id, $2, line_id, reward_id, amount, reward_public_id, side, gross,"
            " reversed, earned_at FROM payout_items WHERE id = $1",
            taken["id"],
            ids.decode("payout", other["id"]),
        )


async def assert_paid_once(db, merchant_id: int, reward_ids: list[int], amount: int | None) -> None:
    rows = await db.fetch(
        "SELECT reward_id, count(*) AS n FROM reward_transitions"
        " WHERE reward_id = ANY($1::bigint[]) AND to_status = 'paid' AND reason = 'payout_paid'"
        " GROUP BY reward_id",
        reward_ids,
    )
    assert {r["reward_id"]: r["n"] for r in rows} == dict.fromkeys(reward_ids, 1)
    if amount is not None:
        assert await account_sum(db, reward_ids, "paid") == amount * len(reward_ids)
    assert await account_sum(db, reward_ids, "payable") == 0
    statuses = await db.fetch(
        "SELECT DISTINCT status FROM rewards WHERE id = ANY($1::bigint[])", reward_ids
    )
    assert [r["status"] for r in statuses] == ["paid"]
    events = await db.fetch(
        "SELECT data ->> 'reward_id' AS reward FROM events WHERE merchant_id = $1"
        " AND type = 'reward.paid' AND data ->> 'reason' = 'payout_paid'",
        merchant_id,
    )
    assert len(events) == len({e["reward"] for e in events})


async def test_mark_paid_twice_and_concurrently_pays_once(client, tenant, db, pool, ids):
    program = await make_program(client, tenant)
    anna = await make_advocate(client, tenant, program, "anna")
    ben = await make_advocate(client, tenant, program, "ben")
    for code in (anna, anna, ben):
        await order(client, tenant, code)
    await release_due(pool, ids=ids)
    first = await new_batch(client, tenant)
    once = await post(client, tenant, first["id"], "mark-paid", json={"actor": "finance"})
    twice = await post(client, tenant, first["id"], "mark-paid")
    assert once == twice and once["status"] == "paid" and once["paid_at"]
    first_rewards = await reward_items(db, ids, first["id"])
    assert len(first_rewards) == 3
    await assert_paid_once(db, tenant.merchant_id, first_rewards, 1000)
    assert {r["status"] for r in (await lines(client, tenant, first["id"])).values()} == {"paid"}

    for code in (anna, ben, ben):
        await order(client, tenant, code)
    await release_due(pool, ids=ids)
    second = await new_batch(client, tenant)
    assert (await post(client, tenant, second["id"], "export"))["status"] == "exported"

    async def five_payments(http):
        return await asyncio.gather(
            *(
                http.post(f"{BATCHES}/{second['id']}/mark-paid", headers=tenant.auth)
                for _ in range(5)
            )
        )

    responses = await on_app_loop(client, five_payments)
    assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
    assert len({r.content for r in responses}) == 1
    second_rewards = await reward_items(db, ids, second["id"])
    assert len(second_rewards) == 3 and not set(second_rewards) & set(first_rewards)
    await assert_paid_once(db, tenant.merchant_id, first_rewards + second_rewards, 1000)
    paid_events = await db.fetchval(
        "SELECT count(*) FROM events WHERE type = 'payout_batch.paid' AND merchant_id = $1",
        tenant.merchant_id,
    )
    assert paid_events == 2
    await assert_reconciles(client, tenant, db, ids, responses[0].json(), account="paid")


async def test_refund_after_batching_is_paid_as_exported_and_owed_back(
    client, tenant, db, pool, ids
):
    """Finance pays the frozen lines. An order refunded or cancelled between the batch and
    mark-paid does not block the payment: the line is booked as paid, and what the reward
    lost is a receivable netted off the payee's next batch."""
    program = await create_program(
        client, tenant, hold_days=0, rewards={"advocate": {"kind": "cash", "basis_points": 2000}}
    )  # 20% of 5000 = 1000
    anna = await make_advocate(client, tenant, program, "anna")
    ben = await make_advocate(client, tenant, program, "ben")
    refunded = await order(client, tenant, anna)
    cancelled = await order(client, tenant, anna)
    await order(client, tenant, ben)
    await release_due(pool, ids=ids)
    batch = await new_batch(client, tenant)
    assert batch["total"] == 3000
    exported = await download(client, tenant, batch["id"])
    await post(client, tenant, batch["id"], "export")

    response = await client.post(
        f"/v1/orders/{refunded}/refunds",
        headers=tenant.auth,
        json={"refund_id": "r-1", "amount": 2500, "currency": "EUR"},
    )
    assert response.status_code == 201, response.text
    await cancel_order(client, tenant, cancelled)
    bens = await db.fetchval("SELECT public_id FROM rewards WHERE payee_key = 'ben'")
    response = await client.post(
        f"/v1/rewards/{bens}/reverse", headers=tenant.auth, json={"actor": "support"}
    )
    assert response.status_code == 200, response.text
    paid = await post(client, tenant, batch["id"], "mark-paid")
    assert paid["status"] == "paid"
    assert await download(client, tenant, batch["id"]) == exported

    in_batch = await reward_items(db, ids, batch["id"])
    assert await account_sum(db, in_batch, "paid") == 3000 == paid["total"]
    assert await account_sum(db, in_batch, "payable") == 0
    rewards = {r["id"]: r for r in await db.fetch("SELECT * FROM rewards ORDER BY id")}
    for reward_id, reward in rewards.items():
        total = await db.fetchval(
            "SELECT sum(amount) FROM ledger_entries WHERE reward_id = $1", reward_id
        )
        assert total == reward["amount"]
    assert sorted((r["status"], r["amount"]) for r in rewards.values()) == [
        ("paid", 500),
        ("reversed", 0),
        ("reversed", 0),
    ]
    for reward in rewards.values():
        if reward["status"] == "reversed":
            assert reward["reversed_from"] == "paid"
    owed = await db.fetch(
        "SELECT payee_key, amount FROM ledger_entries"
        " WHERE account = 'receivable' ORDER BY payee_key, amount"
    )
    assert [(r["payee_key"], r["amount"]) for r in owed] == [
        ("anna", -1000),
        ("anna", -500),
        ("ben", -1000),
    ]

    # Undoing the reversal returns ben's reward to paid, and he owes nothing any more.
    response = await client.post(
        f"/v1/rewards/{bens}/reinstate", headers=tenant.auth, json={"actor": "support"}
    )
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["amount"]) == ("paid", 1000)
    assert (
        await db.fetchval(
            "SELECT sum(amount) FROM ledger_entries WHERE payee_key = 'ben'"
            " AND account = 'receivable'"
        )
        == 0
    )
    still_paid = await db.fetch("SELECT id FROM rewards WHERE status = 'paid' ORDER BY id")
    assert len(still_paid) == 2
    await assert_paid_once(db, tenant.merchant_id, [r["id"] for r in still_paid], None)

    for code in (anna, anna, ben):
        await order(client, tenant, code)
    await release_due(pool, ids=ids)
    later = await new_batch(client, tenant)
    by_payee = await lines(client, tenant, later["id"])
    assert {p: (x["gross"], x["netted"], x["amount"]) for p, x in by_payee.items()} == {
        "anna": (2000, -1500, 500),
        "ben": (1000, 0, 1000),
    }
    await assert_reconciles(client, tenant, db, ids, later)


# --- cancel and failed lines -----------------------------------------------------------------


async def test_cancel_returns_rewards_to_the_pool(client, tenant, db, pool, ids):
    program = await make_program(client, tenant)
    anna = await make_advocate(client, tenant, program, "anna")
    await order(client, tenant, anna)
    await order(client, tenant, anna)
    await release_due(pool, ids=ids)
    batch = await new_batch(client, tenant)
    taken = await reward_items(db, ids, batch["id"])
    await post(client, tenant, batch["id"], "export")
    cancelled = await post(client, tenant, batch["id"], "cancel")
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_at"]
    assert await post(client, tenant, batch["id"], "cancel") == cancelled  # idempotent
    refused = await post(client, tenant, batch["id"], "mark-paid", status=409)
    assert refused["code"] == "payout_batch_state_conflict"
    await post(client, tenant, batch["id"], "export", status=409)
    assert await approved_rewards(db, tenant.merchant_id) == taken
    assert await account_sum(db, taken, "paid") == 0

    again = await new_batch(client, tenant)
    assert await reward_items(db, ids, again["id"]) == taken and again["total"] == 2000
    await post(client, tenant, again["id"], "mark-paid")
    await assert_paid_once(db, tenant.merchant_id, taken, 1000)
    refused = await post(client, tenant, again["id"], "cancel", status=409)
    assert refused["code"] == "payout_batch_state_conflict"


async def test_failed_line_before_payment_frees_its_rewards(client, tenant, db, pool, ids):
    program = await make_program(client, tenant)
    anna = await make_advocate(client, tenant, program, "anna")
    ben = await make_advocate(client, tenant, program, "ben")
    for code in (anna, anna, ben):
        await order(client, tenant, code)
    await release_due(pool, ids=ids)
    batch = await new_batch(client, tenant)
    line = (await lines(client, tenant, batch["id"]))["anna"]
    body = {"reason": "account closed", "actor": "finance"}
    await post(client, tenant, batch["id"], f"lines/{line['id']}/fail", json=body)
    await post(client, tenant, batch["id"], f"lines/{line['id']}/fail", json=body)  # again
    failed = (await lines(client, tenant, batch["id"]))["anna"]
    assert (failed["status"], failed["failure_reason"]) == ("failed", "account closed")

    paid = await post(client, tenant, batch["id"], "mark-paid")
    assert paid["status"] == "paid"
    assert (await lines(client, tenant, batch["id"]))["ben"]["status"] == "paid"
    anna_rewards = await db.fetch("SELECT id, status FROM rewards WHERE payee_key = 'anna'")
    assert {r["status"] for r in anna_rewards} == {"approved"}
    assert await account_sum(db, [r["id"] for r in anna_rewards], "paid") == 0

    later = await new_batch(client, tenant)
    assert await reward_items(db, ids, later["id"]) == sorted(r["id"] for r in anna_rewards)
    assert set(await lines(client, tenant, later["id"])) == {"anna"}
    assert later["total"] == 2000
    await assert_reconciles(client, tenant, db, ids, later)


async def test_failed_line_after_payment_reverses_the_paid_entries(client, tenant, db, pool, ids):
    program = await make_program(client, tenant)
    anna = await make_advocate(client, tenant, program, "anna")
    ben = await make_advocate(client, tenant, program, "ben")
    for code in (anna, anna, ben):
        await order(client, tenant, code)
    await release_due(pool, ids=ids)
    batch = await new_batch(client, tenant)
    exported = await download(client, tenant, batch["id"])
    await post(client, tenant, batch["id"], "mark-paid")
    line = (await lines(client, tenant, batch["id"]))["anna"]
    assert line["status"] == "paid"
    await post(
        client, tenant, batch["id"], f"lines/{line['id']}/fail", json={"reason": "payment bounced"}
    )
    assert (await lines(client, tenant, batch["id"]))["anna"]["status"] == "failed"
    assert await download(client, tenant, batch["id"]) == exported

    rewards = await db.fetch("SELECT id, status, amount FROM rewards ORDER BY id")
    anna_rewards = await reward_items(db, ids, batch["id"], active=False)  # freed by the failure
    assert len(anna_rewards) == 2
    for reward in rewards:
        entries = (
            await account_sum(db, [reward["id"]], "payable")
            + await account_sum(db, [reward["id"]], "paid")
            + await account_sum(db, [reward["id"]], "pending")
        )
        assert entries == reward["amount"] == 1000
        assert reward["status"] == ("approved" if reward["id"] in anna_rewards else "paid")
    assert await account_sum(db, anna_rewards, "paid") == 0
    assert await account_sum(db, anna_rewards, "payable") == 2000
    history = await db.fetch(
        "SELECT from_status, to_status, reason FROM reward_transitions"
        " WHERE reward_id = $1 ORDER BY id",
        anna_rewards[0],
    )
    assert [(h["from_status"], h["to_status"]) for h in history][-2:] == [
        ("approved", "paid"),
        ("paid", "approved"),
    ]

    later = await new_batch(client, tenant)
    assert await reward_items(db, ids, later["id"]) == anna_rewards
    await assert_reconciles(client, tenant, db, ids, later)
    await post(client, tenant, later["id"], "mark-paid")
    assert await account_sum(db, anna_rewards, "paid") == 2000
    cancelled = await new_batch(client, tenant)
    await post(client, tenant, cancelled["id"], "cancel")
    await post(
        client,
        tenant,
        cancelled["id"],
        f"lines/{line['id']}/fail",
        json={"reason": "x"},
        status=409,
    )


async def test_failed_line_after_a_clawback_undoes_payment_and_clawback(
    client, tenant, db, pool, ids
):
    """The payment bounced after one order was partly refunded and another cancelled: the
    payee never got the money, so nothing is owed back, and the next batch pays what the
    rewards are worth now."""
    program = await create_program(
        client, tenant, hold_days=0, rewards={"advocate": {"kind": "cash", "basis_points": 2000}}
    )  # 20% of 5000 = 1000
    anna = await make_advocate(client, tenant, program, "anna")
    refunded, cancelled, _ = [await order(client, tenant, anna) for _ in range(3)]
    await release_due(pool, ids=ids)
    batch = await new_batch(client, tenant)
    await post(client, tenant, batch["id"], "mark-paid")
    response = await client.post(
        f"/v1/orders/{refunded}/refunds",
        headers=tenant.auth,
        json={"refund_id": "r-1", "amount": 2500, "currency": "EUR"},
    )
    assert response.status_code == 201, response.text
    await cancel_order(client, tenant, cancelled)
    assert (
        await db.fetchval("SELECT sum(amount) FROM ledger_entries WHERE account = 'receivable'")
        == -1500
    )

    line = (await lines(client, tenant, batch["id"]))["anna"]
    await post(
        client, tenant, batch["id"], f"lines/{line['id']}/fail", json={"reason": "payment bounced"}
    )
    rewards = await db.fetch("SELECT id, status, amount, reversed_from FROM rewards ORDER BY id")
    assert [(r["status"], r["amount"]) for r in rewards] == [
        ("approved", 500),
        ("reversed", 0),
        ("approved", 1000),
    ]
    assert rewards[1]["reversed_from"] == "approved"
    for reward in rewards:
        total = await db.fetchval(
            "SELECT sum(amount) FROM ledger_entries WHERE reward_id = $1", reward["id"]
        )
        assert total == reward["amount"]
    every = [r["id"] for r in rewards]
    assert await account_sum(db, every, "paid") == 0
    assert await account_sum(db, every, "receivable") == 0
    assert await account_sum(db, every, "payable") == 1500

    later = await new_batch(client, tenant)
    line = (await lines(client, tenant, later["id"]))["anna"]
    assert (line["gross"], line["netted"], line["amount"]) == (1500, 0, 1500)
    await assert_reconciles(client, tenant, db, ids, later)


# --- minimum and cutoff ----------------------------------------------------------------------


async def test_payees_under_the_minimum_roll_over(client, tenant, db, pool, ids):
    program = await make_program(client, tenant)
    anna = await make_advocate(client, tenant, program, "anna")
    ben = await make_advocate(client, tenant, program, "ben")
    for code in (anna, ben, ben):
        await order(client, tenant, code)
    await release_due(pool, ids=ids)
    batch = await new_batch(client, tenant, minimum=2000)
    assert batch["minimum"] == 2000
    assert set(await lines(client, tenant, batch["id"])) == {"ben"}
    assert batch["total"] == 2000
    await post(client, tenant, batch["id"], "mark-paid")

    # The merchant's own minimum applies when the request names none.
    await db.execute(
        "UPDATE merchants SET payout_minimums = '{\"EUR\": 2000}' WHERE id = $1", tenant.merchant_id
    )
    assert (await new_batch(client, tenant))["line_count"] == 0
    await order(client, tenant, anna)
    await release_due(pool, ids=ids)
    later = await new_batch(client, tenant)
    assert later["minimum"] == 2000
    line = (await lines(client, tenant, later["id"]))["anna"]
    assert (line["amount"], line["reward_count"]) == (2000, 2)
    await assert_reconciles(client, tenant, db, ids, later)


async def test_cutoff_is_the_approval_time(client, tenant, db, pool, ids):
    program = await make_program(client, tenant)
    anna = await make_advocate(client, tenant, program, "anna")
    await order(client, tenant, anna)
    await release_due(pool, ids=ids)
    await asyncio.sleep(0.05)
    cutoff = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await order(client, tenant, anna)
    await release_due(pool, ids=ids)
    early = await db.fetchval("SELECT id FROM rewards WHERE approved_at <= $1", cutoff)

    batch = await new_batch(client, tenant, cutoff=cutoff.isoformat())
    assert await reward_items(db, ids, batch["id"]) == [early]
    assert batch["total"] == 1000
    assert datetime.fromisoformat(batch["cutoff"]) == cutoff
    rest = await new_batch(client, tenant)
    assert len(await reward_items(db, ids, rest["id"])) == 1 and rest["total"] == 1000

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = await client.post(
        BATCHES, json={"currency": "EUR", "cutoff": future}, headers=tenant.auth
    )
    assert response.status_code == 422 and response.json()["code"] == "cutoff_in_future"
    response = await client.post(
        BATCHES, json={"currency": "EUR", "cutoff": "2020-01-01T00:00:00"}, headers=tenant.auth
    )
    assert response.status_code == 422, response.text


# --- CSV safety, PayPal, byte identity -------------------------------------------------------

FORMULAS = ['=HYPERLINK("x")', "+1234", "@SUM", "-5"]


async def test_formula_cells_are_escaped_in_text_columns_only(client, tenant, db, pool, ids):
    program = await make_program(client, tenant)
    codes = {cid: await make_advocate(client, tenant, program, cid) for cid in FORMULAS}
    for cid, code in codes.items():
        await order(client, tenant, code, order_id=f"={cid}" if cid == "@SUM" else None)
    plain = await make_advocate(client, tenant, program, "plain")
    clawed = await order(client, tenant, plain, order_id="+refund-me")
    await release_due(pool, ids=ids)
    first = await new_batch(client, tenant)
    first_rewards = parse(await download(client, tenant, first["id"], "rewards.csv"))
    assert {r["order_id"] for r in first_rewards} >= {"'=@SUM", "'+refund-me"}
    await post(client, tenant, first["id"], "mark-paid")
    await cancel_order(client, tenant, clawed)
    await order(client, tenant, plain)
    await order(client, tenant, plain)
    for code in codes.values():
        await order(client, tenant, code)
    await release_due(pool, ids=ids)
    batch = await new_batch(client, tenant)

    raw = await download(client, tenant, batch["id"])
    assert b'"\'=HYPERLINK(""x"")"' in raw  # RFC 4180: the cell is quoted, quotes doubled
    payees = {r["payee_customer_id"] for r in parse(raw)}
    assert payees == {"'" + cid for cid in FORMULAS} | {"plain"}
    emails = {r["payee_customer_id"]: r["payee_email"] for r in parse(raw)}
    assert emails["'@SUM"] == "'@SUM"  # a payee key with an @ doubles as the email
    rewards_csv = parse(await download(client, tenant, batch["id"], "rewards.csv"))
    assert {r["payee_customer_id"] for r in rewards_csv} == payees
    claw = next(r for r in rewards_csv if r["line_type"] == "clawback")
    assert claw["order_id"] == "'+refund-me"
    assert (claw["net_minor"], claw["net"], claw["reversed_minor"]) == ("-1000", "-10.00", "-1000")
    for row in rewards_csv:
        for cell in (row["reward_id"], row["referral_id"], row["side"], row["currency"]):
            assert not cell.startswith("'")
    await assert_reconciles(client, tenant, db, ids, batch)


async def test_paypal_layout(client, tenant, db, pool, ids):
    program = await make_program(client, tenant, {"JPY": 500, "EUR": 1050})
    long_id = "customer with a very long id 0123456789"
    formula_id = '=HYPERLINK("https://evil.example/a/long/path")'
    anna = await make_advocate(client, tenant, program, long_id, email="anna@example.com")
    eve = await make_advocate(client, tenant, program, formula_id, email="eve@example.com")
    for code in (anna, anna, eve):
        await order(client, tenant, code, currency="JPY")
    await order(client, tenant, anna, currency="EUR")
    await release_due(pool, ids=ids)
    jpy = await new_batch(client, tenant, currency="JPY")

    raw = await download(client, tenant, jpy["id"], format="paypal")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    assert len(rows) == 2, "no header row: the first row is the first payee"
    by_email = {row[0]: row for row in rows}
    assert set(by_email) == {"anna@example.com", "eve@example.com"}
    for row in rows:
        assert len(row) == 6 and row[2] == "JPY" and row[5] == "PAYPAL"
        assert len(row[3]) <= 30 and not any(c.isspace() for c in row[3]), row[3]
        assert 0 < len(row[4]) <= 400 and jpy["id"] in row[4]
    assert by_email["anna@example.com"][1] == "1000"  # whole yen, no decimals
    assert by_email["eve@example.com"][1] == "500"
    assert by_email["anna@example.com"][3] == "customer_with_a_very_long_id_0"
    assert by_email["eve@example.com"][3].startswith("'=HYPERLINK(")

    eur = await new_batch(client, tenant, currency="EUR")
    row = next(
        csv.reader(
            io.StringIO((await download(client, tenant, eur["id"], format="paypal")).decode())
        )
    )
    assert row[:3] == ["anna@example.com", "10.50", "EUR"]

    for part in (0, 2):
        response = await client.get(
            f"{BATCHES}/{jpy['id']}/payouts.csv",
            params={"format": "paypal", "part": part},
            headers=tenant.auth,
        )
        assert response.status_code == 422 and response.json()["code"] == "invalid_part"

    nomail = await make_advocate(client, tenant, program, "no-email")
    await order(client, tenant, nomail, currency="JPY")
    await release_due(pool, ids=ids)
    missing = await new_batch(client, tenant, currency="JPY")
    # One payee without an email does not hold up the file: it is left out and listed
    # (tests/payouts/test_unpayable.py).
    response = await client.get(
        f"{BATCHES}/{missing['id']}/payouts.csv?format=paypal", headers=tenant.auth
    )
    assert response.status_code == 200 and response.content == b""
    assert response.headers["unpayable-lines"] == "1"
    assert parse(await download(client, tenant, missing["id"]))[0]["payee_email"] == ""


async def test_paypal_files_hold_at_most_5000_rows(client, tenant, db, ids):
    """5,001 frozen lines (written directly: the export only reads lines) make two parts."""
    pk = await db.fetchval(
        "INSERT INTO payout_batches (merchant_id, currency, kind, cutoff, line_count, total)"
        " VALUES ($1, 'EUR', 'cash', now(), 5001, 5001 * 100) RETURNING id",
        tenant.merchant_id,
    )
    await db.execute(
        "INSERT INTO payout_lines (merchant_id, batch_id, payee_key, payee_email, gross, netted,"
        " amount, reward_count, first_reward_at, last_reward_at, reference)"
        " SELECT $1, $2, 'p' || lpad(n::text, 5, '0'), 'p' || n || '@example.com', 100, 0, 100,"
        " 1, now(), now(), 'ref-' || n FROM generate_series(1, 5001) AS n",
        tenant.merchant_id,
        pk,
    )
    batch_id = ids.encode("payout", pk)
    parts = [
        list(
            csv.reader(
                io.StringIO(
                    (await download(client, tenant, batch_id, format="paypal", part=n)).decode()
                )
            )
        )
        for n in (1, 2)
    ]
    assert [len(p) for p in parts] == [5000, 1]
    keys = [row[3] for part in parts for row in part]
    assert keys == sorted(keys) and len(set(keys)) == 5001
    assert all(row[1] == "1.00" for part in parts for row in part)
    response = await client.get(
        f"{BATCHES}/{batch_id}/payouts.csv?format=paypal&part=3", headers=tenant.auth
    )
    assert response.status_code == 422 and response.json()["code"] == "invalid_part"


async def test_exports_are_byte_identical_and_the_bom_is_opt_in(client, tenant, db, pool, ids):
    program = await make_program(client, tenant)
    for n, name in enumerate(["Zoë", "anna", "Ørjan"]):
        code = await make_advocate(client, tenant, program, name, email=f"p{n}@example.com")
        await order(client, tenant, code)
    await release_due(pool, ids=ids)
    batch = await new_batch(client, tenant)
    kinds = [("payouts.csv", {}), ("payouts.csv", {"format": "paypal"}), ("rewards.csv", {})]
    first = [await download(client, tenant, batch["id"], name, **q) for name, q in kinds]
    assert "Ørjan".encode() in first[0]
    for data in first:
        assert not data.startswith(b"\xef\xbb\xbf")
    with_bom = [
        await download(client, tenant, batch["id"], name, bom="true", **q) for name, q in kinds
    ]
    assert with_bom == [b"\xef\xbb\xbf" + data for data in first]

    # Nothing that happens later changes what finance downloaded.
    await post(client, tenant, batch["id"], "export")
    assert [await download(client, tenant, batch["id"], n, **q) for n, q in kinds] == first
    await post(client, tenant, batch["id"], "mark-paid")
    code = await make_advocate(client, tenant, program, "anna")
    await order(client, tenant, code)
    await release_due(pool, ids=ids)
    await new_batch(client, tenant)
    assert [await download(client, tenant, batch["id"], n, **q) for n, q in kinds] == first
    status = (await client.get(f"{BATCHES}/{batch['id']}", headers=tenant.auth)).json()
    assert status["status"] == "paid"


async def test_a_download_never_marks_a_batch_exported(client, tenant, db, pool, ids):
    program = await make_program(client, tenant)
    await order(client, tenant, await make_advocate(client, tenant, program, "anna"))
    await release_due(pool, ids=ids)
    batch = await new_batch(client, tenant)
    await download(client, tenant, batch["id"])
    await download(client, tenant, batch["id"], "rewards.csv")
    assert (await client.get(f"{BATCHES}/{batch['id']}", headers=tenant.auth)).json()[
        "status"
    ] == "open"
    exported = await post(client, tenant, batch["id"], "export")
    assert exported["status"] == "exported" and exported["exported_at"]
    assert await post(client, tenant, batch["id"], "export") == exported


# --- tenancy ---------------------------------------------------------------------------------


async def test_another_merchant_sees_nothing(client, tenant, other_tenant, db, pool, ids):
    program = await make_program(client, tenant)
    await order(
        client,
        tenant,
        await make_advocate(client, tenant, program, "anna", email="anna@example.com"),
    )
    await release_due(pool, ids=ids)
    batch = await new_batch(client, tenant)
    line = (await lines(client, tenant, batch["id"]))["anna"]
    base = f"{BATCHES}/{batch['id']}"
    for path in (
        base,
        f"{base}/lines",
        f"{base}/payouts.csv",
        f"{base}/payouts.csv?format=paypal",
        f"{base}/rewards.csv",
    ):
        response = await client.get(path, headers=other_tenant.auth)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] == "payout_batch_not_found"
    for action, body in (
        ("export", None),
        ("mark-paid", None),
        ("cancel", None),
        (f"lines/{line['id']}/fail", {"reason": "x"}),
    ):
        response = await client.post(f"{base}/{action}", json=body, headers=other_tenant.auth)
        assert response.status_code == 404, (action, response.text)
    listed = await client.get(BATCHES, headers=other_tenant.auth)
    assert listed.status_code == 200 and listed.json()["data"] == []
    theirs = await new_batch(client, other_tenant)
    assert theirs["total"] == 0, "another merchant's batch never takes this one's rewards"
    mine = (await client.get(base, headers=tenant.auth)).json()
    assert mine["status"] == "open" and mine["total"] == 1000
