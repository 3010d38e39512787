"""The rollups under random histories, against a recomputation from the raw rows.

Hypothesis generates sequences of clicks (people and bots, some reaching the writer days
late), share page views and shares, signups, orders (referred or not, in EUR or SEK, some
dated days or weeks back, some from the advocate's own IP so they go to review), partial
refunds, cancels, approvals and rejections of referrals in review, and reward releases. Each
sequence runs over HTTP on a fresh merchant in a drawn time zone; then the rollup worker
catches up, and every report's totals, series, breakdown and rows over the whole history
must equal what this file computes from the `clicks`, `shares`, `share_page_views`,
`orders`, `referrals`, `rewards` and `advocates` rows, by the definitions as the issue and
the metric catalogue state them (never reading an `analytics_*` table, nor
`referral.analytics.rules`). Distinct counts are HyperLogLog sketches: within 2 %. Last,
`rebuild` must find the incremental rollups identical to the ones it recomputes.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from referral.analytics import service as analytics
from referral.rewards.service import release_due
from tests.analytics.conftest import CHROME, PREVIEW_BOT
from tests.factories import make_tenant

ZONES = ["Europe/Stockholm", "America/Los_Angeles", "Asia/Kolkata", "UTC"]
# Advocates 0 and 1 are customers who ordered before (their IPs are known, so an order from
# that IP with their code goes to review); advocate 2 is customer f-0, a friend who may
# be referred first (a friend turned advocate), and whose own code is a self-referral.
ADVOCATES = [("adv-0", "198.51.100.10"), ("adv-1", "198.51.100.11"), ("f-0", None)]
CUSTOMERS = ["f-0", "f-1", "f-2", "f-3", "adv-1", "n-0", "n-1"]  # adv-1: not new
VISITORS = [f"visitor{n:02d}abcdefghij" for n in range(4)]
CHANNELS = [None, "whatsapp", "qr"]
SHARE_CHANNELS = ["whatsapp", "email"]
CURRENCIES = ["EUR", "SEK"]
CASH = {"cash", "store_credit"}
BLOCKED = {"fraud_blocked", "review_rejected"}
HISTORY_DAYS = 70  # the reports' range: T-70..T holds every event below

# --- the operations hypothesis draws ------------------------------------------------------

click_op = st.tuples(
    st.just("click"),
    st.integers(0, 2),
    st.integers(0, len(VISITORS) - 1),
    st.sampled_from(CHANNELS),
    st.sampled_from([0, 0, 1, 2]),  # days late (0: through /r/{code} now)
    st.sampled_from([False] * 5 + [True]),  # a link-preview bot
)
share_op = st.tuples(st.just("share"), st.integers(0, 2), st.sampled_from(SHARE_CHANNELS))
view_op = st.tuples(st.just("view"), st.integers(0, 2))
signup_op = st.tuples(st.just("signup"), st.integers(0, 3), st.integers(0, 2))
order_op = st.tuples(
    st.just("order"),
    st.integers(0, len(CUSTOMERS) - 1),
    st.sampled_from([None, 0, 1, 2]),
    st.sampled_from(CURRENCIES),
    st.integers(100, 20_000),
    st.sampled_from([0, 0, 0, 1, 3, 40]),  # days ago
    st.sampled_from([False] * 3 + [True]),  # from the advocate's IP: review
)
refund_op = st.tuples(st.just("refund"), st.integers(0, 30), st.integers(1, 100))
cancel_op = st.tuples(st.just("cancel"), st.integers(0, 30))
review_op = st.tuples(st.just("review"), st.integers(0, 5), st.sampled_from(["approve", "reject"]))
release_op = st.just(("release",))
_OPS = {
    "click": click_op,
    "share": share_op,
    "view": view_op,
    "signup": signup_op,
    "order": order_op,
    "refund": refund_op,
    "cancel": cancel_op,
    "review": review_op,
    "release": release_op,
}
operations = st.lists(
    st.sampled_from(
        ["click"] * 4
        + ["order"] * 5
        + ["share", "view", "signup", "refund", "refund", "cancel", "review", "review", "release"]
    ).flatmap(_OPS.__getitem__),
    min_size=3,
    max_size=25,
)


# --- running a sequence -------------------------------------------------------------------


class Example:
    """One generated sequence, run on the app's loop against a fresh merchant."""

    def __init__(self, app, runtime, zone: str) -> None:
        self.app, self.runtime, self.zone = app, runtime, zone
        self.orders: list[str] = []
        self.now = datetime.now(UTC)
        self.advocates: list[dict] = []
        self.rows: list[Any] = []
        self.pages: list[str] = []

    async def run(self, ops: list[tuple]) -> None:
        transport = httpx.ASGITransport(app=self.app, client=("203.0.113.50", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver.local"
        ) as http:
            self.http = http
            async with self.runtime.pool.acquire() as conn:
                self.tenant = await make_tenant(conn, f"Model {uuid.uuid4().hex[:8]}")
            await self.setup()
            for step, op in enumerate(ops):
                await self.step(step, op)
            assert await self.runtime.clicks.flush() == 0  # every step flushed its clicks
            await analytics.catch_up(self.runtime.pool, ids=self.runtime.ids)
            await self.check()

    async def call(self, method: str, path: str, body: Any = None, **kw) -> httpx.Response:
        headers = {**self.tenant.auth, **kw.pop("headers", {})}
        response = await self.http.request(method, path, json=body, headers=headers, **kw)
        assert response.status_code < 500, response.text
        return response

    async def setup(self) -> None:
        r = await self.call("PATCH", "/v1/merchant", {"time_zone": self.zone})
        assert r.status_code == 200, r.text
        r = await self.call(
            "POST",
            "/v1/programs",
            {
                "name": "Model",
                "landing_url": "https://shop.example/",
                "hold_days": 0,
                "rewards": {
                    # A share of the order: a partial refund lowers what the ledger owes.
                    "advocate": {"kind": "cash", "basis_points": 1000},
                    "friend": {"kind": "coupon", "amounts": {"EUR": 500, "SEK": 5000}},
                },
                "fraud_policy": {"same_ip": {"action": "review"}},
            },
        )
        assert r.status_code == 201, r.text
        self.program = r.json()
        async with self.runtime.pool.acquire() as conn:
            # Orders dated weeks back belong to the program: it started before them.
            await conn.execute(
                "UPDATE programs SET starts_at = now() - interval '400 days' "
                "WHERE merchant_id = $1",
                self.tenant.merchant_id,
            )
        for n, (customer, ip) in enumerate(ADVOCATES):
            if ip is not None:  # a customer of the shop, seen 60 days ago from this IP
                await self.place(f"own-{n}", customer, None, "EUR", 4000, 60, ip=ip)
            r = await self.call(
                "POST",
                "/v1/advocates",
                {"program_id": self.program["id"], "customer_id": customer},
            )
            assert r.status_code in (200, 201), r.text
            self.advocates.append(r.json())
            r = await self.call("POST", f"/v1/advocates/{r.json()['id']}/share-url", {})
            self.pages.append(r.json()["url"].removeprefix("http://testserver.local"))
        async with self.runtime.pool.acquire() as conn:
            self.rows = [
                await conn.fetchrow(
                    "SELECT id, program_id FROM advocates WHERE merchant_id = $1 "
                    "AND customer_id = $2",
                    self.tenant.merchant_id,
                    customer,
                )
                for customer, _ in ADVOCATES
            ]

    async def place(
        self,
        order_id: str,
        customer: str,
        advocate: int | None,
        currency: str,
        total: int,
        days_ago: int,
        ip: str | None = None,
    ) -> None:
        at = self.now - timedelta(days=days_ago, seconds=len(self.orders) + 1)
        body: dict[str, Any] = {
            "order_id": order_id,
            "customer_id": customer,
            "email": f"{customer}@shop-customers.example",
            "subtotal": total,
            "total": total,
            "currency": currency,
            "occurred_at": at.isoformat(),
        }
        if advocate is not None:
            body["codes"] = [self.advocates[advocate]["code"]]
        if ip is not None:
            body["ip"] = ip
        r = await self.call("POST", "/v1/orders", body)
        assert r.status_code == 201, r.text
        self.orders.append(order_id)

    async def step(self, step: int, op: tuple) -> None:
        kind = op[0]
        if kind == "click":
            _, advocate, visitor, channel, days_late, bot = op
            if days_late == 0:
                params = {"ch": channel} if channel else {}
                agent = PREVIEW_BOT if bot else CHROME
                r = await self.http.get(
                    f"/r/{self.advocates[advocate]['code']}",
                    params=params,
                    headers={"user-agent": agent, "cookie": f"rv={VISITORS[visitor]}"},
                    follow_redirects=False,
                )
                assert r.status_code == 302, r.text
            else:  # replayed by the writer after an outage: clicked days ago
                row = self.rows[advocate]
                self.runtime.clicks.record(
                    (
                        uuid.uuid4().hex,
                        # Replayed in the order clicked, as a writer replays its buffer; out
                        # of order: test_reports.py::test_a_late_click_out_of_order_...
                        self.now - timedelta(days=days_late) + timedelta(seconds=step),
                        self.tenant.merchant_id,
                        row["program_id"],
                        row["id"],
                        self.advocates[advocate]["code"],
                        channel or "link",
                        VISITORS[visitor],
                        None,
                        None,
                        PREVIEW_BOT if bot else CHROME,
                        None,
                        None,
                        bot,
                    )
                )
            assert await self.runtime.clicks.flush() == 1
        elif kind == "share":
            _, advocate, channel = op
            r = await self.http.get(
                f"{self.pages[advocate]}/to/{channel}",
                headers={"user-agent": CHROME},
                follow_redirects=False,
            )
            assert r.status_code in (204, 302), r.text
        elif kind == "view":
            r = await self.http.get(self.pages[op[1]], headers={"user-agent": CHROME})
            assert r.status_code == 200, r.text
        elif kind == "signup":
            _, friend, advocate = op
            await self.call(
                "POST",
                "/v1/signups",
                {
                    "customer_id": CUSTOMERS[friend],
                    "codes": [self.advocates[advocate]["code"]],
                },
            )
        elif kind == "order":
            _, customer, advocate, currency, total, days_ago, suspicious = op
            ip = ADVOCATES[advocate][1] if suspicious and advocate is not None else None
            await self.place(
                f"o-{step}", CUSTOMERS[customer], advocate, currency, total, days_ago, ip=ip
            )
        elif kind == "refund" and self.orders:
            _, index, percent = op
            order_id = self.orders[index % len(self.orders)]
            async with self.runtime.pool.acquire() as conn:
                order = await conn.fetchrow(
                    "SELECT total - refunded AS left, currency, status FROM orders "
                    "WHERE merchant_id = $1 AND order_id = $2",
                    self.tenant.merchant_id,
                    order_id,
                )
            if order["left"] > 0 and order["status"] != "cancelled":
                body = {
                    "refund_id": f"rf-{step}",
                    "amount": max(1, order["left"] * percent // 100),
                    "currency": order["currency"].strip(),
                }
                r = await self.call("POST", f"/v1/orders/{order_id}/refunds", body)
                assert r.status_code == 201, r.text
        elif kind == "cancel" and self.orders:
            order_id = self.orders[op[1] % len(self.orders)]
            r = await self.call("POST", f"/v1/orders/{order_id}/cancel", {})
            assert r.status_code == 200, r.text
        elif kind == "review":
            _, index, action = op
            r = await self.call("GET", "/v1/referrals", params={"status": "in_review"})
            queue = r.json()["data"]
            if queue:
                referral = queue[index % len(queue)]
                r = await self.call(
                    "POST", f"/v1/referrals/{referral['id']}/{action}", {"actor": "model"}
                )
                assert r.status_code in (200, 409), r.text
        elif kind == "release":
            await release_due(self.runtime.pool, ids=self.runtime.ids)

    async def check(self) -> None:
        merchant = self.tenant.merchant_id
        async with self.runtime.pool.acquire() as conn:
            raw = await Raw.fetch(conn, merchant, ZoneInfo(self.zone))
        model = Model(raw)
        end = raw.today
        span = {"from": (end - timedelta(days=HISTORY_DAYS)).isoformat(), "to": end.isoformat()}
        for name in ("funnel", "impact", "cost", "virality", "value", "fraud"):
            r = await self.call("GET", f"/v1/analytics/{name}", params=span)
            assert r.status_code == 200, r.text
            answer = r.json()
            want = model.report(name, model.days(end - timedelta(days=HISTORY_DAYS), end))
            same(name, answer["totals"], want, answer["totals"])
            for bucket in answer["series"]:
                day = date.fromisoformat(bucket["start"])
                same(f"{name} on {day}", bucket["values"], model.report(name, {day}), None)
            if name in model.BREAKDOWNS:
                by, want_rows = model.breakdown(
                    name, model.days(end - timedelta(days=HISTORY_DAYS), end)
                )
                got_rows = {
                    g["key"]: g["values"] for g in (answer["breakdown"] or {"rows": []})["rows"]
                }
                assert set(got_rows) == set(want_rows), (name, got_rows, want_rows)
                for key, row in got_rows.items():
                    same(f"{name} {by}={key}", row, want_rows[key], None)
        for name in ("advocates", "stories"):
            r = await self.call("GET", f"/v1/analytics/{name}", params={**span, "limit": 100})
            assert r.status_code == 200, r.text
            rows = r.json()["rows"]
            want = model.board(name, model.days(end - timedelta(days=HISTORY_DAYS), end))
            by_id = {
                self.runtime.ids.encode(name[:-1] if name == "advocates" else "story", k): v
                for k, v in want.items()
            }
            assert {row["id"] for row in rows} == set(by_id), (name, rows, want)
            for row in rows:
                same(f"{name} {row['id']}", row["values"], by_id[row["id"]], None)
            ranked = [
                values_of(row["values"])[("first_orders" if name == "advocates" else "clicks", "")]
                for row in rows
            ]
            assert ranked == sorted(ranked, reverse=True)

        (rebuilt,) = await analytics.rebuild(
            self.runtime.pool, ids=self.runtime.ids, merchant_id=merchant
        )
        assert rebuilt.identical, rebuilt.differences


def values_of(listed: list[dict]) -> dict[tuple[str, str], Any]:
    return {(v["metric"], v.get("currency") or ""): v["value"] for v in listed}


ESTIMATES = {
    "visitors",
    "sharing_advocates",
    "ordering_customers",
    "participation",
    "invites_per_advocate",
    "friend_conversion",
    "k_factor",
    "visitors_per_unique_click",
    "signups_per_visitor",
}


def same(where: str, got_list: list[dict], want: dict[tuple[str, str], Any], _: Any) -> None:
    """The API's values equal the model's: the same metrics; per currency, a currency the
    model has no figure for must be 0 (or null for a rate); estimates within 2 %."""
    got = values_of(got_list)
    assert {m for m, c in got if not c} == {m for m, c in want if not c}, (where, got, want)
    for key in set(got) | set(want):
        g, w = got.get(key), want.get(key)
        if w is AnyValue:
            continue
        if key[1] and (key not in want or key not in got):  # a currency with nothing here
            assert g in (0, None) and w in (0, None), (where, key, g, w)
            continue
        if w is None or g is None:
            assert g == w, (where, key, g, w)
        elif key[0] in ESTIMATES:
            assert g == pytest.approx(w, rel=0.02, abs=1e-6), (where, key, g, w)
        else:
            assert g == pytest.approx(w, rel=1e-6, abs=1e-6), (where, key, g, w)


# --- the raw rows and the definitions ------------------------------------------------------


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@dataclass
class Raw:
    zone: ZoneInfo
    today: date
    clicks: list
    shares: list
    page_views: list
    story_views: list
    orders: list
    referrals: list
    rewards: list
    advocates: list

    @classmethod
    async def fetch(cls, conn, merchant: int, zone: ZoneInfo) -> Raw:
        async def rows(sql: str) -> list:
            return await conn.fetch(sql, merchant)

        return cls(
            zone=zone,
            today=datetime.now(UTC).astimezone(zone).date(),
            clicks=await rows(
                "SELECT clicked_at, program_id, advocate_id, channel, visitor_id, story_id,"
                " is_bot FROM clicks WHERE merchant_id = $1"
            ),
            shares=await rows(
                "SELECT shared_at, program_id, advocate_id, story_id, channel FROM shares"
                " WHERE merchant_id = $1"
            ),
            page_views=await rows(
                "SELECT viewed_at, program_id, advocate_id FROM share_page_views"
                " WHERE merchant_id = $1"
            ),
            story_views=await rows(
                "SELECT v.viewed_at, s.id AS story_id, s.advocate_id FROM story_views v"
                " JOIN stories s ON s.merchant_id = v.merchant_id AND s.id = v.story_id"
                " WHERE v.merchant_id = $1"
            ),
            orders=await rows(
                "SELECT id, customer_id, email_normalised, currency, total, refunded, status,"
                " occurred_at, referral_id FROM orders WHERE merchant_id = $1"
            ),
            referrals=await rows(
                "SELECT id, program_id, advocate_id, status, rejection_reason, attribution,"
                " decision, signed_up_at, created_at, first_order_pk, friend_customer_id"
                " FROM referrals WHERE merchant_id = $1"
            ),
            rewards=await rows(
                "SELECT program_id, advocate_id, referral_id, side, kind, currency, amount,"
                " original_amount, status, earned_at FROM rewards WHERE merchant_id = $1"
            ),
            advocates=await rows(
                "SELECT id, program_id, customer_id FROM advocates WHERE merchant_id = $1"
            ),
        )


@dataclass
class Customer:
    day: date
    referred: bool
    first_at: datetime
    orders: list  # not cancelled, in time order


class Model:
    """The reports' figures computed from the raw rows, per merchant's day."""

    BREAKDOWNS = {
        "funnel": "channel",
        "impact": "channel",
        "cost": "side",
        "fraud": "rule",
        "value": "cohort",
    }

    def __init__(self, raw: Raw) -> None:
        self.raw = raw
        # (day, metric) -> (dim, currency, advocate, story) -> value: what adds up over days.
        self.cells: dict[tuple, Counter] = defaultdict(Counter)
        # (day, metric) -> members, for the distinct counts.
        self.members: dict[tuple, set] = defaultdict(set)
        self.cycles: list[tuple[date, int]] = []
        self.customers: list[Customer] = []
        self._count()

    def day(self, at: datetime) -> date:
        return at.astimezone(self.raw.zone).date()

    def add(
        self,
        day: date,
        metric: str,
        value: int = 1,
        dim: str = "",
        cur: str = "",
        advocate: int = 0,
        story: int = 0,
    ) -> None:
        self.cells[(day, metric)][(dim, cur, advocate, story)] += value

    def _count(self) -> None:
        raw = self.raw
        first_shared: dict[int, datetime] = {}
        seen = set()
        for c in sorted(raw.clicks, key=lambda c: c["clicked_at"]):
            if c["is_bot"]:
                continue
            day = self.day(c["clicked_at"])
            story = c["story_id"] or 0
            self.add(day, "clicks", 1, c["channel"], advocate=c["advocate_id"], story=story)
            key = (c["visitor_id"], c["advocate_id"], day)
            if key not in seen:  # the first of the visitor's clicks on the link that day
                seen.add(key)
                self.add(
                    day, "unique_clicks", 1, c["channel"], advocate=c["advocate_id"], story=story
                )
            self.members[(day, "visitors")].add(c["visitor_id"])
            first_shared.setdefault(c["advocate_id"], c["clicked_at"])
        for s in raw.shares:
            day = self.day(s["shared_at"])
            self.add(
                day, "shares", 1, s["channel"], advocate=s["advocate_id"], story=s["story_id"] or 0
            )
            self.members[(day, "sharing_advocates")].add(s["advocate_id"])
            known = first_shared.get(s["advocate_id"])
            if known is None or s["shared_at"] < known:
                first_shared[s["advocate_id"]] = s["shared_at"]
        for v in raw.page_views:
            self.add(self.day(v["viewed_at"]), "share_page_views", 1, advocate=v["advocate_id"])
        for v in raw.story_views:
            self.add(
                self.day(v["viewed_at"]),
                "story_views",
                1,
                advocate=v["advocate_id"],
                story=v["story_id"],
            )

        referrals = {r["id"]: r for r in raw.referrals}
        orders = {o["id"]: o for o in raw.orders}

        def live(r) -> bool:
            return r is not None and r["status"] != "rejected"

        def channel(r) -> str:
            attribution = _json(r["attribution"])
            if attribution.get("path") == "code":
                return "code"
            return attribution.get("channel") or "other"

        def story_of(r) -> int:
            public = _json(r["attribution"]).get("story_id")
            return 0 if not public else -1  # no stories in these sequences

        by_customer: dict[str, list] = defaultdict(list)
        for o in raw.orders:
            key = o["customer_id"] or o["email_normalised"]
            day = self.day(o["occurred_at"])
            self.members[(day, "ordering_customers")].add(key)
            if o["status"] == "cancelled":
                continue
            by_customer[key].append(o)
            cur, net = o["currency"].strip(), o["total"] - o["refunded"]
            self.add(day, "orders", 1)
            self.add(day, "revenue", net, cur=cur)
            r = referrals.get(o["referral_id"])
            if live(r):
                common = {"dim": channel(r), "advocate": r["advocate_id"], "story": story_of(r)}
                self.add(day, "referred_orders", 1, **common)
                self.add(day, "referred_revenue", net, cur=cur, **common)
                if r["first_order_pk"] == o["id"]:
                    self.add(day, "first_orders", 1, **common)
                    self.add(day, "first_order_revenue", net, cur=cur, **common)

        for r in raw.referrals:
            first = orders.get(r["first_order_pk"])
            decided = first["occurred_at"] if first else r["signed_up_at"] or r["created_at"]
            day = self.day(decided)
            if r["status"] == "converted":
                outcome = "allowed"
            elif r["status"] == "rejected":
                outcome = "blocked" if r["rejection_reason"] in BLOCKED else "ineligible"
            else:
                outcome = r["status"]  # in_review, pending
            self.add(day, "referrals", 1, outcome, advocate=r["advocate_id"])
            reasons = (_json(r["decision"]).get("fraud") or {}).get("reasons") or []
            for rule in {x["rule"] for x in reasons if x["action"] in ("review", "block")}:
                self.add(day, "referrals_by_rule", 1, rule)
            if not live(r):
                continue
            if r["signed_up_at"] is not None:
                self.add(
                    self.day(r["signed_up_at"]),
                    "signups",
                    1,
                    channel(r),
                    advocate=r["advocate_id"],
                    story=story_of(r),
                )
            shared = first_shared.get(r["advocate_id"])
            if first is not None and shared is not None and shared <= first["occurred_at"]:
                days = (first["occurred_at"] - shared) // timedelta(days=1)
                self.cycles.append((day, min(days, 365)))

        for w in raw.rewards:
            if w["currency"] is None:
                continue
            day, cur = self.day(w["earned_at"]), w["currency"].strip()
            r = referrals.get(w["referral_id"])
            if (
                w["status"] == "reversed"
                and r is not None
                and r["status"] == "rejected"
                and r["rejection_reason"] in BLOCKED
            ):
                self.add(day, "reward_blocked", w["original_amount"], w["side"], cur)
            elif w["kind"] in CASH and w["status"] in ("approved", "paid"):
                self.add(day, "reward_cost", w["amount"], w["side"], cur)
            elif w["kind"] in CASH and w["status"] in ("pending", "in_review"):
                self.add(day, "reward_pending", w["amount"], w["side"], cur)
            elif w["kind"] == "coupon" and w["status"] in ("approved", "paid"):
                self.add(day, "coupon_value", w["amount"], w["side"], cur)

        for placed in by_customer.values():
            placed.sort(key=lambda o: (o["occurred_at"], o["id"]))
            first = placed[0]
            r = referrals.get(first["referral_id"])
            referred = live(r) and r["first_order_pk"] == first["id"]
            self.customers.append(
                Customer(self.day(first["occurred_at"]), referred, first["occurred_at"], placed)
            )
            day = self.day(first["occurred_at"])
            self.add(day, "new_customers", 1, "referred" if referred else "other")
            if referred:
                self.add(day, "referred_new_customers", 1, channel(r))

        referred_customers = {
            r["friend_customer_id"]
            for r in raw.referrals
            if live(r) and r["first_order_pk"] is not None
        }
        for a in raw.advocates:
            if a["customer_id"] not in referred_customers:
                continue
            firsts = [
                orders[r["first_order_pk"]]["occurred_at"]
                for r in raw.referrals
                if r["advocate_id"] == a["id"] and live(r) and r["first_order_pk"] is not None
            ]
            if firsts:
                self.add(self.day(min(firsts)), "friends_turned_advocates", 1, advocate=a["id"])

    # -- sums over a set of days -----------------------------------------------------------

    def days(self, start: date, end: date) -> set[date]:
        return {start + timedelta(days=n) for n in range((end - start).days + 1)}

    def _cells(self, days: set[date], metric: str, dim, advocate, story):
        for day in days:
            for (dm, c, a, s), v in self.cells.get((day, metric), {}).items():
                if dim in (None, dm) and advocate in (None, a) and story in (None, s):
                    yield c, v

    def sum(
        self,
        days: set[date],
        metric: str,
        *,
        dim: str | None = None,
        advocate: int | None = None,
        story: int | None = None,
    ) -> int:
        return sum(v for _, v in self._cells(days, metric, dim, advocate, story))

    def money(
        self, days: set[date], metric: str, *, dim: str | None = None, advocate: int | None = None
    ) -> dict[str, int]:
        out: dict[str, int] = Counter()
        for c, v in self._cells(days, metric, dim, advocate, None):
            out[c] += v
        return dict(out)

    def dims(self, days: set[date], metrics: tuple[str, ...]) -> set[str]:
        return {
            dm
            for day in days
            for m in metrics
            for (dm, _, _, _), v in self.cells.get((day, m), {}).items()
            if v
        }

    def distinct(self, days: set[date], metric: str) -> int:
        found: set = set()
        for d in days:
            found |= self.members.get((d, metric), set())
        return len(found)

    @staticmethod
    def ratio(a: float, b: float) -> float | None:
        return None if not b else a / b

    @staticmethod
    def per(amount: int, count: int) -> int | None:
        if not count:
            return None
        quotient, remainder = divmod(abs(amount), count)
        rounded = quotient + (1 if 2 * remainder >= count else 0)  # halves away from zero
        return rounded if amount >= 0 else -rounded

    def report(self, name: str, days: set[date]) -> dict[tuple[str, str], Any]:
        return getattr(self, f"_{name}")(days)

    def _funnel(self, days: set[date], **only) -> dict:
        steps = [
            ("share_page_views", self.sum(days, "share_page_views", **only)),
            ("shares", self.sum(days, "shares", **only)),
            ("clicks", self.sum(days, "clicks", **only)),
            ("unique_clicks", self.sum(days, "unique_clicks", **only)),
            ("visitors", self.distinct(days, "visitors")),
            ("signups", self.sum(days, "signups", **only)),
            ("first_orders", self.sum(days, "first_orders", **only)),
        ]
        singular = {
            "share_page_views": "share_page_view",
            "shares": "share",
            "clicks": "click",
            "unique_clicks": "unique_click",
            "visitors": "visitor",
            "signups": "signup",
        }
        out: dict = {}
        for n, (metric, value) in enumerate(steps):
            out[(metric, "")] = value
            if n:
                before, was = steps[n - 1]
                out[(f"{metric}_per_{singular[before]}", "")] = self.ratio(value, was)
        for cur, v in self.money(days, "first_order_revenue").items():
            out[("first_order_revenue", cur)] = v
        return out

    def _impact(self, days: set[date]) -> dict:
        orders, revenue = self.sum(days, "orders"), self.money(days, "revenue")
        referred, referred_revenue = (
            self.sum(days, "referred_orders"),
            self.money(days, "referred_revenue"),
        )
        new = self.sum(days, "new_customers")
        referred_new = self.sum(days, "new_customers", dim="referred")
        out: dict = {
            ("orders", ""): orders,
            ("referred_orders", ""): referred,
            ("referred_order_share", ""): self.ratio(referred, orders),
            ("new_customers", ""): new,
            ("referred_new_customers", ""): referred_new,
            ("referred_new_customer_share", ""): self.ratio(referred_new, new),
        }
        for cur, v in revenue.items():
            out[("revenue", cur)] = v
            out[("referred_revenue_share", cur)] = self.ratio(referred_revenue.get(cur, 0), v)
        for cur, v in referred_revenue.items():
            out[("referred_revenue", cur)] = v
        # aov and referred_aov: in the orders' currency; not compared here (the rollups
        # keep order counts without a currency, see the report's note).
        out.update(
            {
                k: AnyValue
                for k in [("aov", c) for c in revenue] + [("referred_aov", c) for c in revenue]
            }
        )
        return out

    def _cost(self, days: set[date]) -> dict:
        cost = self.money(days, "reward_cost")
        referred_revenue = self.money(days, "referred_revenue")
        referred_new = self.sum(days, "new_customers", dim="referred")
        out: dict = {("referred_new_customers", ""): referred_new}
        for metric in ("reward_cost", "reward_pending", "coupon_value", "referred_revenue"):
            for cur, v in self.money(days, metric).items():
                out[(metric, cur)] = v
        for cur in set(cost) | set(referred_revenue):
            out[("cost_per_new_customer", cur)] = self.per(cost.get(cur, 0), referred_new)
            out[("roi", cur)] = self.ratio(
                referred_revenue.get(cur, 0) - cost.get(cur, 0), cost.get(cur, 0)
            )
        return out

    def _virality(self, days: set[date]) -> dict:
        sharing = self.distinct(days, "sharing_advocates")
        ordering = self.distinct(days, "ordering_customers")
        visitors = self.distinct(days, "visitors")
        first_orders = self.sum(days, "first_orders")
        participation = self.ratio(sharing, ordering)
        invites = self.ratio(visitors, sharing)
        conversion = self.ratio(first_orders, visitors)
        cycles = [n for d, n in self.cycles if d in days]
        return {
            ("sharing_advocates", ""): sharing,
            ("ordering_customers", ""): ordering,
            ("participation", ""): participation,
            ("visitors", ""): visitors,
            ("invites_per_advocate", ""): invites,
            ("first_orders", ""): first_orders,
            ("friend_conversion", ""): conversion,
            ("k_factor", ""): None
            if None in (participation, invites, conversion)
            else participation * invites * conversion,
            ("cycle_days_median", ""): statistics.median(cycles) if cycles else None,
            ("friends_turned_advocates", ""): self.sum(days, "friends_turned_advocates"),
        }

    def _cohort(self, days: set[date], who: set[bool]) -> dict:
        cohort = [c for c in self.customers if c.day in days and c.referred in who]
        out: dict = {("customers", ""): len(cohort)}
        for n in (30, 90, 180):
            mature = [c for c in cohort if c.day <= self.raw.today - timedelta(days=n)]
            within = [
                [o for o in c.orders if o["occurred_at"] <= c.first_at + timedelta(days=n)]
                for c in mature
            ]
            repeat = sum(1 for w in within if len(w) > 1)
            revenue: dict[str, int] = Counter()
            for w in within:
                for o in w:
                    revenue[o["currency"].strip()] += o["total"] - o["refunded"]
            out[(f"mature_customers_{n}", "")] = len(mature)
            out[(f"repeat_customers_{n}", "")] = repeat
            out[(f"repeat_rate_{n}", "")] = self.ratio(repeat, len(mature))
            out[(f"orders_per_customer_{n}", "")] = self.ratio(sum(map(len, within)), len(mature))
            for cur, v in revenue.items():
                out[(f"revenue_per_customer_{n}", cur)] = self.per(v, len(mature))
        return out

    def _value(self, days: set[date]) -> dict:
        return self._cohort(days, {True, False})

    def _fraud(self, days: set[date]) -> dict:
        outcomes = {
            o: self.sum(days, "referrals", dim=o)
            for o in ("allowed", "in_review", "blocked", "pending", "ineligible")
        }
        decided = outcomes["allowed"] + outcomes["in_review"] + outcomes["blocked"]
        out: dict = {("referrals", ""): sum(outcomes.values())}
        out.update({(f"referrals_{o}", ""): n for o, n in outcomes.items()})
        for o in ("allowed", "in_review", "blocked"):
            out[(f"{o}_share", "")] = self.ratio(outcomes[o], decided)
        for cur, v in self.money(days, "reward_blocked").items():
            out[("reward_blocked", cur)] = v
        return out

    def breakdown(self, name: str, days: set[date]) -> tuple[str, dict[str, dict]]:
        by = self.BREAKDOWNS[name]
        if name == "value":
            return by, {
                "referred": self._cohort(days, {True}),
                "other": self._cohort(days, {False}),
            }
        if name == "fraud":
            rules = self.dims(days, ("referrals_by_rule",))
            return by, {
                rule: {("referrals", ""): self.sum(days, "referrals_by_rule", dim=rule)}
                for rule in rules
                if self.sum(days, "referrals_by_rule", dim=rule)
            }
        if name == "cost":
            metrics = ("reward_cost", "reward_pending", "coupon_value")
        elif name == "impact":
            metrics = ("referred_orders", "referred_revenue", "first_orders")
        else:
            metrics = (
                "shares",
                "clicks",
                "unique_clicks",
                "signups",
                "first_orders",
                "first_order_revenue",
            )
        keys = self.dims(days, metrics)
        rows = {}
        for key in keys:
            row: dict = {}
            for metric in metrics:
                if metric.endswith("revenue") or metric in (
                    "reward_cost",
                    "reward_pending",
                    "coupon_value",
                ):
                    for cur, v in self.money(days, metric, dim=key).items():
                        row[(metric, cur)] = v
                else:
                    row[(metric, "")] = self.sum(days, metric, dim=key)
            if name == "impact":
                row[("referred_new_customers", "")] = self.sum(
                    days, "referred_new_customers", dim=key
                )
            if any(row.values()):
                rows[key] = row
        return by, rows

    def board(self, name: str, days: set[date]) -> dict[int, dict]:
        if name == "stories":
            return {}  # no story is told in these sequences
        out = {}
        for a in self.raw.advocates:
            only = {"advocate": a["id"]}
            row: dict = {
                ("first_orders", ""): self.sum(days, "first_orders", **only),
                ("unique_clicks", ""): self.sum(days, "unique_clicks", **only),
                ("clicks", ""): self.sum(days, "clicks", **only),
                ("signups", ""): self.sum(days, "signups", **only),
            }
            for cur, v in self.money(days, "first_order_revenue", **only).items():
                row[("first_order_revenue", cur)] = v
            if row[("first_orders", "")]:
                out[a["id"]] = row
        return out


class _Any:
    """A figure this model does not check (its definition needs what the rollups lack)."""

    def __eq__(self, other: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "<any>"


AnyValue = _Any()


async def test_reports_follow_the_raw_rows(client):
    app, runtime = client.app, client.app.state.runtime
    ran = []

    @settings(
        max_examples=30,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(zone=st.sampled_from(ZONES), ops=operations)
    # A late click, a referred order refunded in part, its reward released, a cancel.
    @example(
        zone="Europe/Stockholm",
        ops=[
            ("click", 0, 0, "whatsapp", 1, False),
            ("click", 0, 0, "whatsapp", 0, False),
            ("share", 0, "whatsapp"),
            ("order", 1, 0, "EUR", 10_000, 0, False),
            ("release",),
            ("refund", 3, 50),
            ("order", 2, 1, "SEK", 5_000, 3, False),
            ("cancel", 4),
        ],
    )
    # Review: one approved, one rejected; a friend turned advocate; a cohort 40 days old.
    @example(
        zone="America/Los_Angeles",
        ops=[
            ("order", 0, 0, "EUR", 8_000, 40, False),
            ("order", 0, None, "EUR", 2_000, 3, False),
            ("order", 1, 2, "EUR", 3_000, 0, False),
            ("order", 2, 0, "SEK", 9_000, 0, True),
            ("order", 3, 1, "EUR", 9_000, 0, True),
            ("review", 0, "approve"),
            ("review", 0, "reject"),
            ("signup", 3, 2),
            ("view", 1),
        ],
    )
    def sequences(zone, ops):
        example = Example(app, runtime, zone)
        client.blocking_portal.call(example.run, ops)
        ran.append(len(ops))

    await asyncio.to_thread(sequences)
    assert len(ran) >= 30
