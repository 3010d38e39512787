"""The books: `GET /v1/ledger/balances?as_of=` and `GET /v1/ledger/entries.csv`.

Hypothesis draws histories of orders (some held for review), refunds, manual approvals,
reversals and reinstatements, review decisions, releases, and payout batches created and
marked paid, and runs them over HTTP on a fresh merchant. After every step the test notes
the moment and what an in-memory model, written here from the product rules, says the
program owed then; at the end it asks the API for the balances as of each of those moments
(so the past is rebuilt from the ledger, not read from the current state) and checks that
the entries export over a range sums to the change of the balances between its ends.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from referral.rewards.service import release_due
from tests.commands import referral
from tests.factories import create_advocate, create_program, make_tenant

BALANCES = "/v1/ledger/balances"
ENTRIES = "/v1/ledger/entries.csv"
ACCOUNTS = ("pending", "payable", "paid", "receivable")
FIGURES = ("pending", "in_review", "payable", "owed", "paid", "reversed", "receivable", "recovered")
# Checkout policy for these histories: a burst of referrals is the setup, not what is tested;
# the magic test-mode address 192.0.2.4 (rule 4, same IP and browser) holds an order for review.
POLICY = {"advocate_velocity": {"enabled": False}, "ip_velocity": {"enabled": False}}
REVIEW_IP = "192.0.2.4"

# The program, as the model sees it: the advocate earns 10 % of the subtotal in cash, the
# friend a fixed amount of store credit.
ADVOCATE_BASIS_POINTS = 1000
FRIEND_CREDIT = {"EUR": 500, "JPY": 700}
ADVOCATES = ("adv-1", "adv-2")


def program_rewards() -> dict[str, Any]:
    return {
        "advocate": {"kind": "cash", "basis_points": ADVOCATE_BASIS_POINTS},
        "friend": {"kind": "store_credit", "amounts": FRIEND_CREDIT},
    }


# --- the model -------------------------------------------------------------------------


@dataclass
class MOrder:
    order_id: str
    currency: str
    subtotal: int
    total: int
    refunded: int = 0


@dataclass
class MBatch:
    public_id: str
    currency: str
    kind: str
    items: list[tuple[MReward, int]] = field(default_factory=list)  # reward, frozen amount
    paid: bool = False


@dataclass
class MReceivable:
    """One receivable entry: money owed back (negative) or owed again (positive)."""

    payee: str
    currency: str
    kind: str
    amount: int
    batch: MBatch | None = None  # the batch whose line nets it off

    @property
    def recovered(self) -> bool:
        return self.batch is not None and self.batch.paid


@dataclass
class MReward:
    order: MOrder
    kind: str
    payee: str
    original: int
    basis_points: int | None
    amount: int
    status: str
    public_id: str = ""
    reversed_from: str | None = None
    before_reversal: int = 0  # what the last reversal took off
    paid_value: int = 0  # what a paid payout line paid for it
    batch: MBatch | None = None


@dataclass
class MReferral:
    public_id: str
    status: str
    rewards: list[MReward]


@dataclass
class Outcome:
    status: int
    code: str | None = None


class Model:
    def __init__(self) -> None:
        self.orders: list[MOrder] = []
        self.referrals: list[MReferral] = []
        self.rewards: list[MReward] = []
        self.receivables: list[MReceivable] = []
        self.batches: list[MBatch] = []

    # What a reward is still worth after its order's refunds.
    @staticmethod
    def target(reward: MReward) -> int:
        order = reward.order
        remaining = order.total - order.refunded
        if remaining <= 0:
            return 0
        if reward.basis_points is None:
            return reward.original
        return round(  # a Fraction rounds a tie to the even neighbour
            Fraction(reward.basis_points * order.subtotal * remaining, 10_000 * order.total)
        )

    def _owe_back(self, reward: MReward, amount: int) -> None:
        """Once paid, a change of value is money owed back (or owed again)."""
        if amount:
            self.receivables.append(
                MReceivable(reward.payee, reward.order.currency, reward.kind, amount)
            )

    def _reverse(self, reward: MReward) -> None:
        if reward.status == "paid":
            self._owe_back(reward, -reward.amount)
        reward.reversed_from, reward.before_reversal = reward.status, reward.amount
        reward.status, reward.amount = "reversed", 0

    def order(self, order: MOrder, review: bool) -> list[MReward]:
        self.orders.append(order)
        status = "in_review" if review else "pending"
        advocate_value = round(Fraction(ADVOCATE_BASIS_POINTS * order.subtotal, 10_000))
        created = [
            MReward(
                order, "cash", "", advocate_value, ADVOCATE_BASIS_POINTS, advocate_value, status
            ),
            MReward(
                order,
                "store_credit",
                "",
                FRIEND_CREDIT[order.currency],
                None,
                FRIEND_CREDIT[order.currency],
                status,
            ),
        ]
        self.rewards.extend(created)
        return created

    def refund(self, order: MOrder, amount: int) -> None:
        order.refunded += amount
        for reward in self.rewards:
            if reward.order is not order or reward.status == "reversed":
                continue
            target = self.target(reward)
            if target == 0:
                self._reverse(reward)
            elif target < reward.amount:
                if reward.status == "paid":
                    self._owe_back(reward, target - reward.amount)
                reward.amount = target

    def act(self, reward: MReward, action: str) -> Outcome:
        conflict = Outcome(409, "reward_state_conflict")
        if action == "approve":
            if reward.status not in ("pending", "in_review"):
                return conflict
            reward.status = "approved"
        elif action == "reverse":
            if reward.status == "reversed":
                return conflict
            self._reverse(reward)
        else:
            if reward.status != "reversed":
                return conflict
            target = self.target(reward)
            if target == 0:
                return Outcome(409, "reward_order_refunded")
            reward.status = reward.reversed_from
            reward.amount = min(reward.before_reversal, target)
            if reward.status == "paid":
                self._owe_back(reward, reward.amount)
        return Outcome(200)

    def review(self, referral: MReferral, decision: str) -> None:
        for reward in referral.rewards:
            if decision == "approve" and reward.status == "in_review":
                reward.status = "pending"
            elif decision == "reject" and reward.status != "reversed":
                self._reverse(reward)
        referral.status = "converted" if decision == "approve" else "rejected"

    def release(self) -> None:
        for reward in self.rewards:
            if reward.status == "pending":
                reward.status = "approved"

    def batch(self, batch: MBatch) -> dict[str, int]:
        """Every payee's approved, unbatched rewards of the currency and kind, less their
        receivables not yet netted; a payee whose line would not be positive rolls over."""
        due: dict[str, list[MReward]] = defaultdict(list)
        for reward in self.rewards:
            if (
                reward.status == "approved"
                and reward.batch is None
                and (reward.order.currency, reward.kind) == (batch.currency, batch.kind)
            ):
                due[reward.payee].append(reward)
        lines = {}
        for payee, rewards in due.items():
            open_receivables = [
                r
                for r in self.receivables
                if r.batch is None
                and (r.payee, r.currency, r.kind) == (payee, batch.currency, batch.kind)
            ]
            amount = sum(r.amount for r in rewards) + sum(r.amount for r in open_receivables)
            if amount < 1:
                continue
            lines[payee] = amount
            for reward in rewards:
                reward.batch = batch
                batch.items.append((reward, reward.amount))
            for receivable in open_receivables:
                receivable.batch = batch
        self.batches.append(batch)
        return lines

    def pay(self, batch: MBatch) -> None:
        """Each line pays its frozen amounts: a reward reduced since is paid that much, the
        difference owed back; one reversed since is paid, then reversed after payment."""
        for reward, frozen in batch.items:
            reward.paid_value = frozen
            if reward.status == "approved":
                reward.status = "paid"
                self._owe_back(reward, reward.amount - frozen)
            else:  # reversed while its line waited
                self._owe_back(reward, -frozen)
                reward.reversed_from, reward.before_reversal = "paid", frozen
        batch.paid = True

    def books(self) -> dict[str, dict[str, Any]]:
        """What the program owed, had paid and reversed, and was owed back, per currency."""
        out: dict[str, dict[str, Any]] = {}

        def of(currency: str) -> dict[str, Any]:
            if currency not in out:
                out[currency] = dict.fromkeys(FIGURES, 0)
            return out[currency]

        for r in self.rewards:
            figures = of(r.order.currency)
            if r.status in ("pending", "in_review"):
                figures[r.status] += r.amount
            elif r.status == "approved":
                figures["payable"] += r.amount
            elif r.status == "reversed":
                figures["reversed"] += r.before_reversal
            figures["paid"] += r.paid_value
        booked: dict[str, int] = defaultdict(int)
        for receivable in self.receivables:
            figures = of(receivable.currency)
            booked[receivable.currency] += receivable.amount
            if receivable.recovered:
                figures["recovered"] -= receivable.amount
            else:
                figures["receivable"] -= receivable.amount
        for currency, figures in out.items():
            figures["owed"] = figures["pending"] + figures["in_review"] + figures["payable"]
            figures["accounts"] = {
                "pending": figures["pending"] + figures["in_review"],
                "payable": figures["payable"],
                "paid": figures["paid"],
                "receivable": booked[currency],
            }
        return out


# --- the operations hypothesis draws ------------------------------------------------------

order_op = st.tuples(
    st.just("order"),
    st.integers(0, len(ADVOCATES) - 1),
    st.sampled_from(["EUR", "JPY"]),
    st.integers(1_000, 20_000),  # subtotal
    st.integers(0, 2_000),  # shipping and tax on top
    st.sampled_from([False, False, True]),  # held for review
)
refund_op = st.tuples(st.just("refund"), st.integers(0, 30), st.sampled_from([10, 35, 50, 100]))
act_op = st.tuples(
    st.just("act"), st.sampled_from(["approve", "reverse", "reinstate"]), st.integers(0, 7)
)
review_op = st.tuples(st.just("review"), st.sampled_from(["approve", "reject"]), st.integers(0, 5))
batch_op = st.tuples(
    st.just("batch"), st.sampled_from(["EUR", "JPY"]), st.sampled_from(["cash", "store_credit"])
)
_OPS = {
    "order": order_op,
    "refund": refund_op,
    "act": act_op,
    "review": review_op,
    "release": st.just(("release",)),
    "batch": batch_op,
    "pay": st.just(("pay",)),
}
operations = st.lists(
    st.sampled_from(
        ["order"] * 3 + ["refund"] * 2 + ["act"] * 2 + ["review", "release", "batch", "pay"] * 2
    ).flatmap(_OPS.__getitem__),
    min_size=6,
    max_size=24,
)


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _account_sums(rows: list[dict[str, str]]) -> dict[tuple[str, str], int]:
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        sums[(row["currency"], row["account"])] += int(row["amount_minor"])
    return {k: v for k, v in sums.items() if v}


def _accounts_change(before: dict, after: dict) -> dict[tuple[str, str], int]:
    change = {}
    for currency in set(before) | set(after):
        for account in ACCOUNTS:
            old = before.get(currency, {}).get("accounts", {}).get(account, 0)
            new = after.get(currency, {}).get("accounts", {}).get(account, 0)
            if new != old:
                change[(currency, account)] = new - old
    return change


def _books_of(answer: dict) -> dict[str, dict[str, Any]]:
    return {
        c["currency"]: {k: v for k, v in c.items() if k != "currency"} for c in answer["currencies"]
    }


class History:
    """One generated history, run on the app's loop against a fresh merchant."""

    def __init__(self, app, runtime) -> None:
        self.app, self.runtime = app, runtime
        self.model = Model()
        self.codes: list[str] = []
        self.moments: list[tuple[datetime, dict]] = []

    async def run(self, ops: list[tuple]) -> None:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver.local"
        ) as http:
            self.http = http
            async with self.runtime.pool.acquire() as conn:
                self.tenant = await make_tenant(conn, f"Books {uuid.uuid4().hex[:8]}")
            program = await create_program(
                http, self.tenant, hold_days=30, rewards=program_rewards(), fraud_policy=POLICY
            )
            for customer in ADVOCATES:
                advocate = await create_advocate(http, self.tenant, program["id"], customer)
                self.codes.append(advocate["code"])
            self.base = datetime.now(UTC)
            self.note()
            for step, op in enumerate(ops):
                await self.step(step, op)
                self.note()
            await self.check()

    def note(self) -> None:
        """The moment between two steps, and what the model says the books were then."""
        self.moments.append((datetime.now(UTC), self.model.books()))

    async def post(self, path: str, body: dict | None) -> httpx.Response:
        response = await self.http.post(path, json=body, headers=self.tenant.auth)
        assert response.status_code < 500, response.text
        return response

    async def step(self, step: int, op: tuple) -> None:
        m = self.model
        if op[0] == "order":
            _, advocate, currency, subtotal, extra, review = op
            order = MOrder(f"o-{step}", currency, subtotal, subtotal + extra)
            created = m.order(order, review)
            created[0].payee, created[1].payee = ADVOCATES[advocate], f"friend-{step}"
            body = {
                "order_id": order.order_id,
                "customer_id": f"friend-{step}",
                "email": f"friend-{step}@example.com",
                "subtotal": order.subtotal,
                "total": order.total,
                "currency": currency,
                "codes": [self.codes[advocate]],
                "occurred_at": (self.base + timedelta(seconds=step)).isoformat(),
            }
            if review:
                body["ip"] = REVIEW_IP
            r = await self.post("/v1/orders", body)
            assert r.status_code == 201, r.text
            got = r.json()
            assert got["referral"]["status"] == ("in_review" if review else "converted"), got
            assert [(x["kind"], x["amount"], x["status"]) for x in got["rewards"]] == [
                (x.kind, x.amount, x.status) for x in created
            ], got
            for reward, summary in zip(created, got["rewards"], strict=True):
                reward.public_id = summary["id"]
            m.referrals.append(MReferral(got["referral"]["id"], got["referral"]["status"], created))
        elif op[0] == "refund":
            orders = [o for o in m.orders if o.refunded < o.total]
            if not orders:
                return
            _, index, percent = op
            order = orders[index % len(orders)]
            remaining = order.total - order.refunded
            amount = remaining if percent == 100 else max(1, remaining * percent // 100)
            m.refund(order, amount)
            r = await self.post(
                f"/v1/orders/{order.order_id}/refunds",
                {"refund_id": f"rf-{step}", "amount": amount, "currency": order.currency},
            )
            assert r.status_code == 201, r.text
            mine = [x for x in m.rewards if x.order is order]
            assert [(x["amount"], x["status"]) for x in r.json()["rewards"]] == [
                (x.amount, x.status) for x in mine
            ], r.text
        elif op[0] == "act":
            if not m.rewards:
                return
            _, action, index = op
            reward = m.rewards[-1 - index % len(m.rewards)]  # mostly the latest ones
            expected = m.act(reward, action)
            r = await self.post(f"/v1/rewards/{reward.public_id}/{action}", {"actor": "books"})
            assert r.status_code == expected.status, (r.text, action, reward.status)
            if expected.code:
                assert r.json()["code"] == expected.code
            else:
                assert (r.json()["status"], r.json()["amount"]) == (reward.status, reward.amount)
        elif op[0] == "review":
            held = [x for x in m.referrals if x.status == "in_review"]
            if not held:
                return
            _, decision, index = op
            referral = held[index % len(held)]
            m.review(referral, decision)
            r = await self.post(
                f"/v1/referrals/{referral.public_id}/{decision}", {"actor": "risk@shop.example"}
            )
            assert r.status_code == 200, r.text
            assert r.json()["status"] == referral.status
        elif op[0] == "release":
            m.release()
            await release_due(
                self.runtime.pool, ids=self.runtime.ids, now=self.base + timedelta(days=3650)
            )
        elif op[0] == "batch":
            _, currency, kind = op
            r = await self.post("/v1/payout-batches", {"currency": currency, "kind": kind})
            assert r.status_code == 201, r.text
            got = r.json()
            lines = m.batch(MBatch(got["id"], currency, kind))
            assert (got["line_count"], got["total"]) == (len(lines), sum(lines.values())), (
                got,
                lines,
            )
        else:
            waiting = [b for b in m.batches if not b.paid]
            if not waiting:
                return
            batch = waiting[0]
            m.pay(batch)
            r = await self.post(f"/v1/payout-batches/{batch.public_id}/mark-paid", None)
            assert r.status_code == 200, r.text

    async def balances(self, at: datetime) -> dict:
        r = await self.http.get(
            BALANCES, params={"as_of": at.isoformat()}, headers=self.tenant.auth
        )
        assert r.status_code == 200, r.text
        assert r.json()["as_of"] == at.isoformat().replace("+00:00", "Z")
        return _books_of(r.json())

    async def entries(self, start: datetime, end: datetime) -> list[dict[str, str]]:
        r = await self.http.get(
            ENTRIES,
            params={"from": start.isoformat(), "until": end.isoformat()},
            headers=self.tenant.auth,
        )
        assert r.status_code == 200, r.text
        return _csv_rows(r.text)

    async def check(self) -> None:
        for step, (at, expected) in enumerate(self.moments):
            assert await self.balances(at) == expected, f"as of the moment after step {step - 1}"
        first, middle, last = (
            self.moments[0],
            self.moments[len(self.moments) // 2],
            self.moments[-1],
        )
        for (start, before), (end, after) in ((first, middle), (middle, last), (first, last)):
            rows = await self.entries(start, end)
            assert _account_sums(rows) == _accounts_change(before, after)
            assert _account_sums(rows) == _accounts_change(
                await self.balances(start), await self.balances(end)
            )
        # The whole history names each payout's batch: what each batch paid, and what it
        # nets off, add up to the model's.
        rows = await self.entries(first[0], last[0])
        assert all(row["reward_id"].startswith("rwd_") and row["order_id"] for row in rows)
        paid_by: dict[str, int] = defaultdict(int)
        netted_by: dict[str, int] = defaultdict(int)
        for row in rows:
            if row["account"] == "paid":
                paid_by[row["payout_batch_id"]] += int(row["amount_minor"])
            if row["netted_in_batch_id"]:
                netted_by[row["netted_in_batch_id"]] += int(row["amount_minor"])
        m = self.model
        assert {k: v for k, v in paid_by.items() if v} == {
            b.public_id: sum(frozen for _, frozen in b.items)
            for b in m.batches
            if b.paid and b.items
        }
        netted: dict[str, int] = defaultdict(int)
        for receivable in m.receivables:
            if receivable.batch is not None:
                netted[receivable.batch.public_id] += receivable.amount
        assert {k: v for k, v in netted_by.items() if v} == {k: v for k, v in netted.items() if v}


async def test_balances_as_of_any_moment_follow_the_model(client):
    app, runtime = client.app, client.app.state.runtime
    ran = []

    @settings(
        max_examples=10,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(ops=operations)
    # Paid, then refunded: owed back, and netted off (recovered) by the next payout.
    @example(
        ops=[
            ("order", 0, "EUR", 10_000, 0, False),
            ("release",),
            ("batch", "EUR", "cash"),
            ("pay",),
            ("refund", 0, 50),
            ("order", 0, "EUR", 8_000, 0, False),
            ("release",),
            ("batch", "EUR", "cash"),
            ("pay",),
        ]
    )
    # Reversed and refunded while its line waited: paid the line's amount, then owed back;
    # reinstated after payment: owed again, and the next batch pays it.
    @example(
        ops=[
            ("order", 1, "JPY", 5_000, 500, False),
            ("order", 1, "JPY", 7_000, 0, False),
            ("release",),
            ("batch", "JPY", "cash"),
            ("refund", 1, 35),
            ("act", "reverse", 3),
            ("pay",),
            ("act", "reinstate", 3),
            ("order", 1, "JPY", 3_000, 0, False),
            ("release",),
            ("batch", "JPY", "cash"),
            ("pay",),
        ]
    )
    # Held for review: in review, approved into the hold, or rejected (reversed).
    @example(
        ops=[
            ("order", 0, "EUR", 4_000, 0, True),
            ("order", 1, "EUR", 6_000, 100, True),
            ("review", "reject", 0),
            ("review", "approve", 0),
            ("act", "approve", 0),
            ("release",),
            ("batch", "EUR", "store_credit"),
            ("pay",),
            ("review", "reject", 0),
        ]
    )
    def histories(ops):
        history = History(app, runtime)
        client.blocking_portal.call(history.run, ops)
        ran.append(len(ops))

    await asyncio.to_thread(histories)
    assert len(ran) >= 10


# --- fixed scenarios --------------------------------------------------------------------------


async def _order(client, tenant, code: str, n: int | str, currency: str = "EUR", **extra) -> dict:
    body = {
        "order_id": f"ord-{n}",
        "customer_id": f"friend-{n}",
        "subtotal": 5000,
        "total": 5000,
        "currency": currency,
        "codes": [code],
        "occurred_at": datetime.now(UTC).isoformat(),
        **extra,
    }
    response = await client.post("/v1/orders", json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()


async def _post(client, tenant, path: str, body: dict | None = None) -> dict:
    response = await client.post(path, json=body, headers=tenant.auth)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def _books(client, tenant, at: datetime | None = None, **params) -> dict:
    if at is not None:
        params["as_of"] = at.isoformat()
    response = await client.get(BALANCES, params=params, headers=tenant.auth)
    assert response.status_code == 200, response.text
    return _books_of(response.json())


def _now() -> datetime:
    return datetime.now(UTC)


async def test_a_clawback_is_recovered_only_while_the_line_that_netted_it_stands_paid(
    client, tenant, pool, ids
):
    program = await create_program(
        client,
        tenant,
        hold_days=0,
        fraud_policy=POLICY,
        rewards={"advocate": {"kind": "cash", "amounts": {"EUR": 1000}}},
    )
    code = (await create_advocate(client, tenant, program["id"], "anna"))["code"]
    first = await _order(client, tenant, code, 1)
    await release_due(pool, ids=ids)
    batch_1 = await _post(client, tenant, "/v1/payout-batches", {"currency": "EUR"})
    await _post(client, tenant, f"/v1/payout-batches/{batch_1['id']}/mark-paid")
    paid_once = _now()
    await _post(client, tenant, f"/v1/rewards/{first['rewards'][0]['id']}/reverse", {"actor": "t"})
    clawed_back = _now()
    await _order(client, tenant, code, 2)
    await _order(client, tenant, code, 3)
    await release_due(pool, ids=ids)
    batch_2 = await _post(client, tenant, "/v1/payout-batches", {"currency": "EUR"})
    assert batch_2["total"] == 1000  # 2 x 1000, less the 1000 owed back
    await _post(client, tenant, f"/v1/payout-batches/{batch_2['id']}/mark-paid")
    recovered = _now()
    netted_then = _csv_rows(
        (
            await client.get(ENTRIES, params={"until": recovered.isoformat()}, headers=tenant.auth)
        ).text
    )
    (line,) = (
        await client.get(f"/v1/payout-batches/{batch_2['id']}/lines", headers=tenant.auth)
    ).json()
    await _post(
        client,
        tenant,
        f"/v1/payout-batches/{batch_2['id']}/lines/{line['id']}/fail",
        {"reason": "account closed"},
    )
    failed = _now()

    def books(**figures) -> dict:
        out = dict.fromkeys(FIGURES, 0) | figures
        out["owed"] = out["pending"] + out["in_review"] + out["payable"]
        return out

    assert await _books(client, tenant, paid_once) == {
        "EUR": books(paid=1000)
        | {"accounts": {"pending": 0, "payable": 0, "paid": 1000, "receivable": 0}}
    }
    assert await _books(client, tenant, clawed_back) == {
        "EUR": books(paid=1000, reversed=1000, receivable=1000)
        | {"accounts": {"pending": 0, "payable": 0, "paid": 1000, "receivable": -1000}}
    }
    # Asked after the line failed, the moment it stood paid still shows the clawback recovered.
    assert await _books(client, tenant, recovered) == {
        "EUR": books(paid=3000, reversed=1000, recovered=1000)
        | {"accounts": {"pending": 0, "payable": 0, "paid": 3000, "receivable": -1000}}
    }
    assert await _books(client, tenant, failed) == {
        "EUR": books(payable=2000, paid=1000, reversed=1000, receivable=1000)
        | {"accounts": {"pending": 0, "payable": 2000, "paid": 1000, "receivable": -1000}}
    }

    rows = _csv_rows((await client.get(ENTRIES, headers=tenant.auth)).text)
    by_reason = defaultdict(list)
    for row in rows:
        by_reason[row["reason"]].append(row)
    assert {r["payout_batch_id"] for r in by_reason["payout_paid"]} == {
        batch_1["id"],
        batch_2["id"],
    }
    failures = [
        (r["account"], r["amount_minor"], r["payout_batch_id"]) for r in by_reason["payout_failed"]
    ]
    assert sorted(failures) == sorted(
        [("paid", "-1000", batch_2["id"]), ("payable", "1000", batch_2["id"])] * 2
    )
    (clawback,) = [r for r in rows if r["account"] == "receivable"]
    (clawback_then,) = [r for r in netted_then if r["account"] == "receivable"]
    assert (clawback_then["netted_in_batch_id"], clawback["netted_in_batch_id"]) == (
        batch_2["id"],
        "",
    )
    assert (clawback["amount"], clawback["amount_minor"], clawback["reason"]) == (
        "-10.00",
        "-1000",
        "manual_reverse",
    )


async def test_a_moment_holds_what_was_booked_at_it_and_a_range_starts_after_from(client, tenant):
    program = await create_program(
        client,
        tenant,
        fraud_policy=POLICY,
        rewards={"advocate": {"kind": "cash", "amounts": {"EUR": 1000}}},
    )
    code = (await create_advocate(client, tenant, program["id"], "anna"))["code"]
    await _order(client, tenant, code, 1)
    (row,) = _csv_rows((await client.get(ENTRIES, headers=tenant.auth)).text)
    booked = datetime.fromisoformat(row["booked_at"])
    just_before = booked - timedelta(microseconds=1)
    assert await _books(client, tenant, just_before) == {}
    assert (await _books(client, tenant, booked))["EUR"]["pending"] == 1000

    async def entries(start: datetime, end: datetime) -> list[dict]:
        params = {"from": start.isoformat(), "until": end.isoformat()}
        return _csv_rows((await client.get(ENTRIES, params=params, headers=tenant.auth)).text)

    assert len(await entries(just_before, booked)) == 1
    assert await entries(booked, _now()) == []
    assert await entries(booked, booked) == []  # an empty range is a header, not an error


async def test_coupons_and_points_are_not_money_in_the_books(client, tenant, pool, ids):
    program = await create_program(
        client,
        tenant,
        hold_days=0,
        fraud_policy=POLICY,
        rewards={
            "advocate": {"kind": "points", "points": 100},
            "friend": {"kind": "coupon", "amounts": {"EUR": 700}},
        },
    )
    code = (await create_advocate(client, tenant, program["id"], "anna"))["code"]
    result = await _order(client, tenant, code, 1)
    assert [r["kind"] for r in result["rewards"]] == ["points", "coupon"]
    await release_due(pool, ids=ids)
    assert await _books(client, tenant) == {}
    assert _csv_rows((await client.get(ENTRIES, headers=tenant.auth)).text) == []


async def test_one_programs_books(client, tenant, other_tenant):
    programs = {}
    for name, amount in (("a", 1000), ("b", 250)):
        program = await create_program(
            client,
            tenant,
            name=name,
            hold_days=30,
            fraud_policy=POLICY,
            rewards={"advocate": {"kind": "cash", "amounts": {"EUR": amount, "JPY": amount}}},
        )
        code = (await create_advocate(client, tenant, program["id"], f"anna-{name}"))["code"]
        await _order(client, tenant, code, f"{name}1")
        await _order(client, tenant, code, f"{name}2", currency="JPY")
        programs[name] = program["id"]
    a = await _books(client, tenant, program_id=programs["a"])
    b = await _books(client, tenant, program_id=programs["b"])
    both = await _books(client, tenant)
    assert {c: f["pending"] for c, f in a.items()} == {"EUR": 1000, "JPY": 1000}
    assert {c: f["pending"] for c, f in b.items()} == {"EUR": 250, "JPY": 250}
    assert {c: f["pending"] for c, f in both.items()} == {"EUR": 1250, "JPY": 1250}
    # Another merchant sees none of it.
    response = await client.get(BALANCES, headers=other_tenant.auth)
    assert response.json()["currencies"] == []

    # The CSV: the same figures, amounts fixed-point in each currency's exponent.
    response = await client.get(
        BALANCES + ".csv", params={"program_id": programs["a"]}, headers=tenant.auth
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = _csv_rows(response.text)
    assert {
        (r["currency"], r["figure"]): (r["amount"], r["amount_minor"])
        for r in rows
        if r["figure"] in ("pending", "account_pending", "owed")
    } == {
        ("EUR", "pending"): ("10.00", "1000"),
        ("EUR", "owed"): ("10.00", "1000"),
        ("EUR", "account_pending"): ("10.00", "1000"),
        ("JPY", "pending"): ("1000", "1000"),
        ("JPY", "owed"): ("1000", "1000"),
        ("JPY", "account_pending"): ("1000", "1000"),
    }
    assert len(rows) == 2 * 12 and {r["program_id"] for r in rows} == {programs["a"]}
    entries = _csv_rows(
        (await client.get(ENTRIES, params={"program_id": programs["b"]}, headers=tenant.auth)).text
    )
    assert sorted((e["currency"], e["account"], e["amount_minor"]) for e in entries) == [
        ("EUR", "pending", "250"),
        ("JPY", "pending", "250"),
    ]


async def test_bad_input_is_a_problem(client, tenant, other_tenant):
    theirs = await create_program(client, other_tenant)
    later = (_now() + timedelta(hours=1)).isoformat()
    cases = [
        (BALANCES, {"as_of": "yesterday"}, 422, "invalid_timestamp"),
        (BALANCES, {"as_of": "2026-01-31T23:59:59"}, 422, "invalid_timestamp"),  # no zone
        (BALANCES, {"as_of": later}, 422, "as_of_in_future"),
        (BALANCES + ".csv", {"as_of": "2026-13-01T00:00:00Z"}, 422, "invalid_timestamp"),
        (BALANCES, {"program_id": "prg_nope"}, 404, "program_not_found"),
        (BALANCES, {"program_id": theirs["id"]}, 404, "program_not_found"),
        (BALANCES + ".csv", {"program_id": theirs["id"]}, 404, "program_not_found"),
        (
            ENTRIES,
            {"from": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            422,
            "invalid_range",
        ),
        (ENTRIES, {"from": later}, 422, "invalid_range"),
        (ENTRIES, {"until": later}, 422, "until_in_future"),
        (ENTRIES, {"from": "0"}, 422, "invalid_timestamp"),
        (ENTRIES, {"program_id": theirs["id"]}, 404, "program_not_found"),
    ]
    for path, params, status, code in cases:
        response = await client.get(path, params=params, headers=tenant.auth)
        assert (response.status_code, response.json()["code"]) == (status, code), (path, params)
        assert response.headers["content-type"] == "application/problem+json"


async def test_the_command_line_writes_what_the_api_answers(
    client, tenant, pool, ids, settings, tmp_path
):
    program = await create_program(
        client,
        tenant,
        hold_days=0,
        fraud_policy=POLICY,
        rewards={
            "advocate": {"kind": "cash", "amounts": {"EUR": 1250}},
            "friend": {"kind": "store_credit", "amounts": {"EUR": 300}},
        },
    )
    code = (await create_advocate(client, tenant, program["id"], "=anna"))["code"]
    await _order(client, tenant, code, 1)
    start = _now()
    await release_due(pool, ids=ids)
    await _order(client, tenant, code, 2)
    end = _now()
    merchant = ids.encode("merchant", tenant.merchant_id)

    printed = await referral(
        settings, "ledger", "balances", "--merchant", merchant, "--as-of", end.isoformat()
    )
    assert re.search(r"^EUR$", printed, re.M), printed
    assert re.search(r"^\s+pending\s+15\.50$", printed, re.M), printed
    assert re.search(r"^\s+payable\s+15\.50$", printed, re.M), printed
    as_csv = await referral(
        settings, "ledger", "balances", "--merchant", merchant, "--as-of", end.isoformat(), "--csv"
    )
    api = await client.get(
        BALANCES + ".csv", params={"as_of": end.isoformat()}, headers=tenant.auth
    )
    assert as_csv == api.text

    written = tmp_path / "entries.csv"
    out = await referral(
        settings,
        "ledger",
        "entries",
        "--merchant",
        merchant,
        "--from",
        start.isoformat(),
        "--until",
        end.isoformat(),
        "-o",
        str(written),
    )
    assert "wrote" in out
    api = await client.get(
        ENTRIES, params={"from": start.isoformat(), "until": end.isoformat()}, headers=tenant.auth
    )
    assert written.read_bytes() == api.content
    rows = _csv_rows(api.text)
    # Released (pending -> payable, twice), then the second order's two pending rewards; the
    # advocate's customer id would start a formula, so it starts with an apostrophe.
    assert sorted((r["account"], r["amount_minor"]) for r in rows) == sorted(
        [("pending", "-1250"), ("payable", "1250"), ("pending", "-300"), ("payable", "300")]
        + [("pending", "1250"), ("pending", "300")]
    )
    assert {r["payee"] for r in rows if r["kind"] == "cash"} == {"'=anna"}

    refused = await referral(
        settings, "ledger", "balances", "--merchant", merchant, "--as-of", "soon", expect=2
    )
    assert "invalid_timestamp" in refused
