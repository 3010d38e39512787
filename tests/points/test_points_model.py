"""Points against an independent in-memory model: random sequences of orders, refunds,
cancels, shares (people and bots), published stories, redemptions, their cancels and the
expiry job; after each step the balance, and at the end every lot and the level, are what
the model says. The model knows only the rules as a shop reads them (a point per euro, pro
rata refunds rounded down, shares capped per day and once per channel, oldest lots spent
first, cancels returning points to the lots they came from, lots expiring a year after
they were earned, levels by points earned that never go down within their year)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from referral.points import service as points_service
from referral.points.rules import add_months
from referral.rewards.service import release_due
from referral.settings import Limit, RateLimits
from tests.conftest import make_settings
from tests.factories import NO_VELOCITY, create_advocate, make_tenant, referred_order

RULES = {
    "earning": {
        "order": {"points": 1, "per": {"EUR": 100}},
        "share": {"points": 7, "per_day": 2},
        "story": {"points": 40},
    },
    "expiry": {"months": 12, "since": "earned"},
    "catalogue": [
        {"id": "small", "points": 30, "kind": "coupon", "amount": 300, "currency": "EUR"},
        {"id": "big", "points": 120, "kind": "store_credit", "amount": 1500, "currency": "EUR"},
    ],
    "levels": {
        "qualifier": "points",
        "levels": [
            {"name": "Member", "threshold": 0},
            {"name": "Silver", "threshold": 150, "multiplier_bp": 15_000},
            {"name": "Gold", "threshold": 400, "multiplier_bp": 20_000},
        ],
    },
}
MULTIPLIER = {"Member": 10_000, "Silver": 15_000, "Gold": 20_000}
COST = {"small": 30, "big": 120}
CUSTOMER = "cus_model"
STORIES = 2


@dataclass
class MLot:
    key: tuple  # oldest first: orders by their minute, then the rest as they came
    source: str
    points: int
    remaining: int
    expires_at: datetime | None  # None: earned "now" (expires a year after the real clock)


@dataclass
class MOrder:
    total: int
    refunded: int = 0
    cancelled: bool = False
    lot: MLot | None = None
    taken: int = 0  # what its refunds took back so far


@dataclass
class Model:
    lots: list[MLot] = field(default_factory=list)
    orders: list[MOrder] = field(default_factory=list)
    redemptions: list[dict] = field(default_factory=list)  # {"moves": [(lot, n)], "active"}
    shares: set[str] = field(default_factory=set)
    stories: set[int] = field(default_factory=set)
    earned: int = 0  # qualifying: points earned less what refunds took back
    level: str = "Member"
    created: int = 0

    def balance(self) -> int:
        return sum(lot.remaining for lot in self.lots)

    def _oldest(self) -> list[MLot]:
        return sorted((lot for lot in self.lots if lot.remaining > 0), key=lambda x: x.key)

    def _relevel(self) -> None:
        reached = "Member"
        for name, threshold in (("Silver", 150), ("Gold", 400)):
            if self.earned >= threshold:
                reached = name
        order = ["Member", "Silver", "Gold"]
        if order.index(reached) > order.index(self.level):  # never down within the year
            self.level = reached

    def _earn(self, source: str, base: int, key: tuple, expires_at: datetime | None) -> None:
        points = base * MULTIPLIER[self.level] // 10_000
        if points <= 0:
            return
        lot = MLot(key, source, points, points, expires_at)
        self.lots.append(lot)
        self.earned += points
        self._relevel()
        return lot

    def order(self, minute: int, subtotal: int, earned_at: datetime) -> None:
        mult = MULTIPLIER[self.level]
        points = subtotal * mult // (100 * 10_000)
        o = MOrder(total=subtotal)
        if points > 0:
            o.lot = MLot((0, minute), "order", points, points, add_months(earned_at, 12))
            self.lots.append(o.lot)
            self.earned += points
            self._relevel()
        self.orders.append(o)

    def refund(self, index: int, amount: int) -> None:
        o = self.orders[index]
        o.refunded += amount
        self._rebalance(o)

    def cancel_order(self, index: int) -> None:
        o = self.orders[index]
        o.cancelled = True
        o.refunded = o.total
        self._rebalance(o)

    def _rebalance(self, o: MOrder) -> None:
        if o.lot is None:
            return
        kept = o.lot.points * (o.total - o.refunded) // o.total if o.refunded < o.total else 0
        due = o.lot.points - kept - o.taken
        if due <= 0:
            return
        for lot in [o.lot] + [x for x in self._oldest() if x is not o.lot]:
            part = min(lot.remaining, due)
            lot.remaining -= part
            due -= part
            o.taken += part
            self.earned -= part
        self._relevel()

    def share(self, day: str, channel: str) -> None:
        today = [k for k in self.shares if k.startswith(day)]
        key = f"{day}:{channel}"
        if key in self.shares or len(today) >= 2:
            return
        self.shares.add(key)
        self.created += 1
        self._earn("share", 7, (1, self.created), None)

    def story(self, index: int) -> None:
        if index in self.stories:
            return
        self.stories.add(index)
        self.created += 1
        self._earn("story", 40, (1, self.created), None)

    def redeem(self, item: str) -> bool:
        cost = COST[item]
        if self.balance() < cost:
            return False
        moves = []
        for lot in self._oldest():
            part = min(lot.remaining, cost)
            if part:
                lot.remaining -= part
                cost -= part
                moves.append((lot, part))
        self.redemptions.append({"moves": moves, "active": True})
        return True

    def cancel(self, index: int) -> None:
        r = self.redemptions[index]
        if r["active"]:
            r["active"] = False
            for lot, part in r["moves"]:
                lot.remaining += part

    def expire(self, at: datetime) -> None:
        for lot in self.lots:
            if lot.expires_at is not None and lot.expires_at <= at:
                lot.remaining = 0

    def expire_everything(self) -> None:
        for lot in self.lots:
            lot.remaining = 0


CHANNELS = ("whatsapp", "email", "x", "copy")
operations = st.lists(
    st.one_of(
        st.tuples(st.just("order"), st.integers(0, 40_000)),
        st.tuples(st.just("refund"), st.integers(0, 9), st.integers(1, 100)),
        st.tuples(st.just("cancel_order"), st.integers(0, 9)),
        st.tuples(st.just("share"), st.sampled_from(CHANNELS), st.booleans()),
        st.tuples(st.just("story"), st.integers(0, STORIES - 1), st.booleans()),
        st.tuples(st.just("redeem"), st.sampled_from(["small", "big"])),
        st.tuples(st.just("cancel"), st.integers(0, 9)),
        st.tuples(st.just("expire"), st.integers(0, 45)),
        st.tuples(st.just("expire_all")),
    ),
    min_size=1,
    max_size=25,
)


class Example:
    def __init__(self, app, runtime) -> None:
        self.app, self.runtime = app, runtime
        self.model = Model()
        self.base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)

    async def run(self, ops: list[tuple]) -> None:
        transport = httpx.ASGITransport(app=self.app, client=("203.0.113.9", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as h:
            self.http = h
            async with self.runtime.pool.acquire() as conn:
                self.tenant = await make_tenant(conn, f"Points {uuid.uuid4().hex[:8]}")
            await self.setup()
            for step, op in enumerate(ops):
                await self.step(step, op)
                shown = await self.balance()
                assert shown["balance"] == self.model.balance(), (step, op, shown)
            await self.check()

    async def setup(self) -> None:
        auth = self.tenant.auth
        response = await self.http.post(
            "/v1/programs",
            headers=auth,
            json={
                "name": "Points model",
                "landing_url": "https://shop.example/",
                "hold_days": 0,
                "starts_at": (self.base - timedelta(days=1)).isoformat(),
                "fraud_policy": NO_VELOCITY,
                "rewards": {"advocate": {"kind": "cash", "amounts": {"EUR": 500}}},
            },
        )
        assert response.status_code == 201, response.text
        self.program = response.json()
        advocate = await create_advocate(self.http, self.tenant, self.program["id"], CUSTOMER)
        self.stories = []
        for n in range(STORIES):
            order = await referred_order(
                self.http, self.tenant, advocate["code"], n, order_id=f"friend-{n}"
            )
            (reward,) = [r for r in order["rewards"] if r["side"] == "advocate"]
            await release_due(self.runtime.pool, ids=self.runtime.ids)
            story = await self.http.post(
                "/v1/stories",
                json={"advocate_id": advocate["id"], "reward_id": reward["id"]},
                headers=auth,
            )
            assert story.status_code == 201, story.text
            assert story.json()["status"] == "pending"
            self.stories.append(story.json()["id"])
        # The rules come after the friends' orders: the model starts at a balance of 0.
        response = await self.http.put(
            f"/v1/programs/{self.program['id']}/points", json=RULES, headers=auth
        )
        assert response.status_code == 200, response.text
        share = await self.http.post(
            f"/v1/advocates/{advocate['id']}/share-url", json={}, headers=auth
        )
        assert share.status_code == 201, share.text
        self.share_path = share.json()["url"].removeprefix("http://testserver.local")
        self.order_ids: list[str] = []
        self.redemption_ids: list[str] = []

    async def balance(self) -> dict:
        response = await self.http.get(
            f"/v1/customers/{CUSTOMER}/points",
            params={"program_id": self.program["id"]},
            headers=self.tenant.auth,
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def step(self, step: int, op: tuple) -> None:
        m, auth, kind = self.model, self.tenant.auth, op[0]
        if kind == "order":
            at = self.base + timedelta(minutes=step)
            order_id = f"o-{step}"
            r = await self.http.post(
                "/v1/orders",
                headers=auth,
                json={
                    "order_id": order_id,
                    "customer_id": CUSTOMER,
                    "subtotal": op[1],
                    "total": op[1],
                    "currency": "EUR",
                    "occurred_at": at.isoformat(),
                },
            )
            assert r.status_code == 201, r.text
            self.order_ids.append(order_id)
            m.order(step, op[1], at)
        elif kind in ("refund", "cancel_order"):
            if not self.order_ids:
                return
            index = op[1] % len(self.order_ids)
            o = m.orders[index]
            if o.cancelled or o.refunded >= o.total:
                return
            if kind == "cancel_order":
                r = await self.http.post(f"/v1/orders/{self.order_ids[index]}/cancel", headers=auth)
                assert r.status_code == 200, r.text
                m.cancel_order(index)
                return
            amount = max(1, (o.total - o.refunded) * op[2] // 100)
            r = await self.http.post(
                f"/v1/orders/{self.order_ids[index]}/refunds",
                headers=auth,
                json={"refund_id": f"r-{step}", "amount": amount, "currency": "EUR"},
            )
            assert r.status_code == 201, r.text
            m.refund(index, amount)
        elif kind == "share":
            bot = op[2]
            agent = "Slackbot-LinkExpanding 1.0" if bot else "Mozilla/5.0 (X11; Linux) Firefox/120"
            r = await self.http.get(f"{self.share_path}/to/{op[1]}", headers={"user-agent": agent})
            assert r.status_code in (204, 302), r.text
            if not bot:
                m.share(datetime.now(UTC).date().isoformat(), op[1])
        elif kind == "story":
            status = "published" if op[2] else "hidden"
            r = await self.http.patch(
                f"/v1/stories/{self.stories[op[1]]}", json={"status": status}, headers=auth
            )
            assert r.status_code == 200, r.text
            if op[2]:
                m.story(op[1])
        elif kind == "redeem":
            r = await self.http.post(
                f"/v1/customers/{CUSTOMER}/points/redemptions",
                json={"program_id": self.program["id"], "item": op[1]},
                headers=auth,
            )
            if m.redeem(op[1]):
                assert r.status_code == 201, r.text
                self.redemption_ids.append(r.json()["id"])
            else:
                assert r.status_code == 409 and r.json()["code"] == "insufficient_points", r.text
        elif kind == "cancel":
            if not self.redemption_ids:
                return
            index = op[1] % len(self.redemption_ids)
            r = await self.http.post(
                f"/v1/customers/{CUSTOMER}/points/redemptions/{self.redemption_ids[index]}/cancel",
                headers=auth,
            )
            assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
            m.cancel(index)
        elif kind == "expire":
            at = add_months(self.base, 12) + timedelta(minutes=op[1], seconds=30)
            await points_service.expire_due(self.runtime.pool, ids=self.runtime.ids, now=at)
            m.expire(at)
        elif kind == "expire_all":
            at = add_months(datetime.now(UTC), 12) + timedelta(days=1)
            await points_service.expire_due(self.runtime.pool, ids=self.runtime.ids, now=at)
            m.expire_everything()

    async def check(self) -> None:
        m, shown = self.model, await self.balance()
        expected = [
            (lot.source, lot.points, lot.remaining)
            for lot in sorted(m.lots, key=lambda x: x.key)
            if lot.remaining > 0
        ]
        assert [(x["source"], x["points"], x["remaining"]) for x in shown["lots"]] == expected
        assert shown["level"]["name"] == m.level
        # The journal explains every lot: its points plus its entries after the earning.
        async with self.runtime.pool.acquire() as conn:
            unexplained = await conn.fetchval(
                """
                SELECT count(*) FROM points_lots l
                WHERE l.merchant_id = $1 AND l.remaining <> (
                    SELECT sum(e.delta) FROM points_entries e
                    WHERE e.merchant_id = l.merchant_id AND e.lot_id = l.id)
                """,
                self.tenant.merchant_id,
            )
        assert unexplained == 0


@pytest.fixture(name="settings")
def unlimited_share_page(database_url):
    """The share page's per-address limit off: every share here comes from one address."""
    return make_settings(
        database_url, rate_limits=RateLimits(share_page=Limit(per_minute=0, burst=0))
    )


async def test_points_follow_the_model(client):
    app, runtime = client.app, client.app.state.runtime
    ran = []

    @settings(
        max_examples=20,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(ops=operations)
    # Spent, refunded below what is left, the redemption cancelled: the points go back to
    # the lots they came from, and the refund took from the other lots.
    @example(
        ops=[
            ("order", 20_000),
            ("order", 10_000),
            ("redeem", "big"),
            ("refund", 1, 100),
            ("cancel", 0),
            ("expire", 0),
        ]
    )
    # Two shares a day count, once per channel; a bot's share never.
    @example(
        ops=[
            ("share", "x", True),
            ("share", "x", False),
            ("share", "x", False),
            ("share", "email", False),
            ("share", "copy", False),
        ]
    )
    # A level's multiplier applies to what is earned after reaching it.
    @example(ops=[("order", 16_000), ("order", 10_000), ("story", 0, True), ("share", "x", False)])
    def sequences(ops):
        example_run = Example(app, runtime)
        client.blocking_portal.call(example_run.run, ops)
        ran.append(len(ops))

    await asyncio.to_thread(sequences)
    assert len(ran) >= 20
