"""Benchmark of the growth analytics: a year of a busy shop, every report over it, and the
rebuild that proves the rollups right.

    make bench-analytics        (or: .venv/bin/python bench/analytics.py [--checkout-rate N])

Starts a PostgreSQL (embedded, in `.referral/bench-analytics-pg-*`, removed afterwards; or a
fresh database on the server named by BENCH_DATABASE_URL, dropped afterwards), migrates, and
seeds one merchant in Europe/Stockholm with two programs (cash + coupon; store credit +
coupon) and, at BENCH_SCALE=1, 50,000 advocates, 1,000,000 orders (200,000 of them referred)
and 10,000,000 clicks over the last 365 of the merchant's days:

- advocates: 500 through the services (they have codes: the API orders use them), the rest
  by one COPY. 30% of them ever share; how much each sharer is clicked and referred follows
  a Zipf law (s = 1.1) over the sharers, each from a start day on (most start early);
- orders, referrals, rewards and stories by COPY through staging tables (explicit ids), in
  chunks of ~25,000 orders. Nothing is marked by hand: the tables' analytics triggers mark
  every row as the app's writes do, and after each chunk the rollup worker
  (`analytics.service.catch_up`) books them, as the app's background worker would;
  referred friends (a 4% guest share keyed by email) order again more often than other
  customers; 1.5% of orders cancelled, 2% refunded, 3.5% partly refunded; 78% EUR, 22% SEK;
  referrals 2% blocked by fraud rules, 1% ineligible, 3% sent to review (older ones
  approved or rejected), signups before the first order for 30% and 15% more signups that
  never order; rewards pending, in review, approved, paid or reversed as their age, order
  and review say; a few hundred advocates were referred friends first;
- clicks through the real click writer (`ClickWriter.record` and `flush`, in this process,
  batches of ~50,000), in time order day by day: local hours follow a daily curve, days a
  weekly one, a growth trend and a November/December peak; 3% are link-preview bots; 30% of
  human clicks repeat the advocate's previous visitor; clicks of an advocate with a
  published story carry it 20% of the time. The worker books them every 4 batches;
- shares, share page views and story views by COPY, their deltas written by one statement
  each with the definitions of the stream writers (the same ones the rebuild uses).

Then the app is served by granian (1 worker, uvloop, its rollup worker on) and:

1. `POST /v1/orders` through checkout.py's open-loop load generator (half referred through
   the 500 advocates' codes), at 200/s for BENCH_ORDER_DURATION (20 s), then stepped through
   BENCH_ORDER_STEPS until a step no longer holds (p99 > 100 ms, errors or falling behind):
   the highest sustained order rate, printed beside bench-checkout's figure
   (BENCH_CHECKOUT_RATE or --checkout-rate, default 300/s: the upper end of the 200-300/s its
   README reports); it must not be more than 10% lower;
2. every report (funnel, impact, cost, virality, value, advocates, stories, fraud) for the
   last 365 days by day with compare=previous, BENCH_REPORT_REQUESTS (200) times each over
   HTTP, alternating all programs and the first program: p50/p99 per report, p99 < 50 ms;
3. correctness: every report answered 200; funnel clicks = human clicks in the year; impact
   orders = orders not cancelled; revenue per currency = total - refunded of those; funnel
   first orders = first orders of live referrals; no error in the server log;
4. `referral analytics rebuild` (a check unless --apply) must find the rollups identical.

Exit status: 0 when every check and target holds, 1 when one fails, 2 when the benchmark
cannot run. Environment: BENCH_SCALE (1; 0.01 for a quick run), BENCH_ORDER_RATE (200),
BENCH_ORDER_DURATION (20), BENCH_ORDER_STEPS ("200,250,300,350,400,500"),
BENCH_STEP_DURATION (10), BENCH_REPORT_REQUESTS (200), BENCH_CHECKOUT_RATE,
BENCH_DATABASE_URL, BENCH_SEED (a seed for the random draws).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import checkout
import numpy as np
from harness import (
    ROOT,
    BenchError,
    app_env,
    app_server,
    free_port,
    fresh_database,
    logged_errors,
    note_load_average,
    run_main,
    stop_server,
)

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")  # platformdirs, as root

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
CLICKS = int(10_000_000 * SCALE)
ORDERS = int(1_000_000 * SCALE)
REFERRED_ORDERS = int(200_000 * SCALE)
ADVOCATES = max(int(50_000 * SCALE), 1_000)
API_ADVOCATES = 500
SHARES = int(80_000 * SCALE)
SHARE_PAGE_VIEWS = int(120_000 * SCALE)
STORY_VIEWS = int(30_000 * SCALE)
MAX_STORIES = max(int(2_000 * SCALE), 20)
DAYS = 365
ZONE_NAME = "Europe/Stockholm"
ZIPF_S = 1.1
SHARING_SHARE = 0.3
CLICK_BATCH = 50_000
CATCH_UP_EVERY = 4  # click batches
ORDER_CHUNK = 25_000
ORDER_RATE = float(os.environ.get("BENCH_ORDER_RATE", "200"))
ORDER_DURATION = float(os.environ.get("BENCH_ORDER_DURATION", "20"))
ORDER_STEPS = [
    float(s) for s in os.environ.get("BENCH_ORDER_STEPS", "200,250,300,350,400,500").split(",")
]
STEP_DURATION = float(os.environ.get("BENCH_STEP_DURATION", "10"))
WARMUP = 2.0
REPORT_REQUESTS = int(os.environ.get("BENCH_REPORT_REQUESTS", "200"))
REPORT_WARMUP = 5
REPORTS = ("funnel", "impact", "cost", "virality", "value", "advocates", "stories", "fraud")
TARGET_REPORT_P99_MS = 50.0
CHECKOUT_TOLERANCE = 0.10
DEFAULT_CHECKOUT_RATE = 300.0  # bench/README.md: highest sustained order rate 200-300/s
SEED = os.environ.get("BENCH_SEED", "analytics")
LANDING_URL = "https://shop.example/welcome?utm_source=referral"
HOLD_DAYS = 30

# (value, weight) tables.
CLICK_CHANNELS = [("whatsapp", 30), ("link", 14), ("copy", 10), ("email", 10),
                  ("facebook", 10), ("sms", 6), ("x", 4), ("linkedin", 3), ("messenger", 3),
                  ("qr", 4), ("share_sheet", 4), ("other", 2)]  # fmt: skip
SHARE_CHANNELS = [("whatsapp", 35), ("email", 15), ("sms", 10), ("x", 5), ("facebook", 15),
                  ("linkedin", 5), ("copy", 12), ("share_sheet", 3)]  # fmt: skip
HOURS = [0.3, 0.2, 0.15, 0.1, 0.1, 0.2, 0.5, 1.0, 1.3, 1.4, 1.4, 1.5, 1.6, 1.5, 1.4, 1.4,
         1.5, 1.7, 2.0, 2.2, 2.2, 1.9, 1.3, 0.7]  # fmt: skip
REVIEW_RULES = [("advocate_velocity", 40), ("same_ip", 25), ("ip_velocity", 15),
                ("same_device", 10), ("disposable_email", 10)]  # fmt: skip
BLOCK_RULES = [("same_payment", 30), ("same_ip_and_user_agent", 30), ("blocklist", 20),
               ("disposable_email", 20)]  # fmt: skip
HUMAN_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
BOT_UA = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"
# Rewards per program (index 0: cash + coupon, index 1: store credit + coupon), per currency.
EUR_SEK_10 = {"EUR": 1000, "SEK": 10000}
EUR_SEK_5 = {"EUR": 500, "SEK": 5000}
REWARDS = [
    {"advocate": ("cash", EUR_SEK_10), "friend": ("coupon", EUR_SEK_10)},
    {"advocate": ("store_credit", EUR_SEK_5), "friend": ("coupon", EUR_SEK_5)},
]


def pick(rng: np.random.Generator, table: list[tuple[str, float]], n: int) -> list[str]:
    values = [v for v, _ in table]
    weights = np.array([w for _, w in table], dtype=float)
    return [values[i] for i in rng.choice(len(values), n, p=weights / weights.sum())]


# =========================================================================== calendar


class Calendar:
    """The merchant's last DAYS days (today included, up to now): local midnights as epoch
    seconds, each day's length (23/25 h at the clock changes, today's so far), and a weight
    per day: a growth trend, busier weekends, a November/December peak."""

    def __init__(self, zone: ZoneInfo, now: datetime) -> None:
        self.zone, self.now = zone, now
        self.today = now.astimezone(zone).date()
        self.first = self.today - timedelta(days=DAYS - 1)
        self.days = [self.first + timedelta(days=d) for d in range(DAYS)]
        midnights = [
            datetime(d.year, d.month, d.day, tzinfo=zone).timestamp()
            for d in [*self.days, self.today + timedelta(days=1)]
        ]
        self.midnight = np.array(midnights[:-1])
        self.length = np.diff(np.array(midnights))
        self.length[-1] = max(0.0, now.timestamp() - 600 - self.midnight[-1])
        weights = []
        for i, d in enumerate(self.days):
            w = 0.6 + 0.8 * i / (DAYS - 1)
            w *= 1.2 if d.weekday() >= 5 else 1.0
            if (d.month == 11 and d.day >= 20) or (d.month == 12 and d.day <= 24):
                w *= 1.7
            weights.append(w * self.length[i] / 86400)
        self.weights = np.array(weights) / sum(weights)
        hours = np.array(HOURS)
        self.hours = hours / hours.sum()
        self._ahead: list[float] = []

    def times(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n moments drawn over the year: (day index, epoch seconds)."""
        days = rng.choice(DAYS, n, p=self.weights)
        return days, self.times_on(rng, days)

    def one(self, rng: np.random.Generator) -> float:
        """One moment drawn over the year (drawn 100,000 at a time)."""
        if not self._ahead:
            self._ahead = self.times(rng, 100_000)[1].tolist()
        return self._ahead.pop()

    def times_on(self, rng: np.random.Generator, days: np.ndarray) -> np.ndarray:
        hours = rng.choice(24, len(days), p=self.hours)
        frac = (hours + rng.random(len(days))) / 24
        return self.midnight[days] + frac * self.length[days]

    def day_of(self, ts: float) -> int:
        return int(np.searchsorted(self.midnight, ts, side="right") - 1)


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# =========================================================================== the world


@dataclass
class World:
    merchant_id: int
    key: str
    programs: list[int]  # row ids
    program_public: list[str]
    codes: list[str]  # the API advocates' codes
    adv_ids: np.ndarray  # advocate index -> row id
    adv_program: np.ndarray  # advocate index -> program index (0 or 1)
    adv_customer: list[str]
    sharers: np.ndarray  # advocate indices by Zipf rank
    zipf_cum: np.ndarray
    start_day: np.ndarray  # per advocate index: the first day they can be clicked or refer
    stories: dict[int, tuple[int, float]] = field(default_factory=dict)  # adv -> (id, published)
    story_programs: dict[int, int] = field(default_factory=dict)

    def draw_advocates(self, rng: np.random.Generator, days: np.ndarray) -> np.ndarray:
        """A sharer per day given, by Zipf rank, among those started by that day."""
        n = len(days)
        out = self.sharers[np.searchsorted(self.zipf_cum, rng.random(n) * self.zipf_cum[-1])]
        for _ in range(40):
            bad = np.nonzero(self.start_day[out] > days)[0]
            if not len(bad):
                break
            redraw = rng.random(len(bad)) * self.zipf_cum[-1]
            out[bad] = self.sharers[np.searchsorted(self.zipf_cum, redraw)]
        return out


async def seed_services(url: str, env: dict[str, str]):
    """Merchant (Europe/Stockholm), key, two programs and the API advocates, through the
    services: (merchant id, key, program row ids, program public ids, [(row id, code)])."""
    from referral import settings as settings_module
    from referral.advocates import service as advocate_service
    from referral.advocates.schemas import AdvocateUpsert
    from referral.lib.db import create_pool, migrate
    from referral.lib.logging import configure_logging
    from referral.merchants import service as merchant_service
    from referral.merchants.schemas import MerchantUpdate
    from referral.merchants.service import Caller
    from referral.programs import service as program_service
    from referral.programs.schemas import ProgramCreate, RewardRule, RewardSettings
    from referral.runtime import Runtime

    configure_logging("console", "warning")
    settings = settings_module.from_env(env)
    await migrate(url)
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        runtime = Runtime.build(settings, pool)
        async with pool.acquire() as conn, conn.transaction():
            merchant = (await merchant_service.create_merchant(conn, name="Bench Shop"))["test"]
            key = await merchant_service.create_key(
                conn, merchant_id=merchant.id, kind="secret", label="bench"
            )
            caller = Caller(merchant_id=merchant.id, mode="test", kind="secret")
            await merchant_service.update_merchant(
                conn, ids=runtime.ids, caller=caller, data=MerchantUpdate(time_zone=ZONE_NAME)
            )
            programs = []
            for name, rules in (("Give 10, get 10", REWARDS[0]), ("Store credit", REWARDS[1])):
                programs.append(
                    await program_service.create(
                        conn,
                        runtime=runtime,
                        caller=caller,
                        data=ProgramCreate(
                            name=name,
                            landing_url=LANDING_URL,
                            hold_days=HOLD_DAYS,
                            rewards=RewardSettings(
                                advocate=RewardRule(
                                    kind=rules["advocate"][0], amounts=rules["advocate"][1]
                                ),
                                friend=RewardRule(
                                    kind=rules["friend"][0], amounts=rules["friend"][1]
                                ),
                            ),
                        ),
                    )
                )
            advocates = []
            for i in range(API_ADVOCATES):
                advocate, _ = await advocate_service.upsert(
                    conn,
                    runtime=runtime,
                    caller=caller,
                    data=AdvocateUpsert(
                        program_id=programs[0].id,
                        customer_id=f"adv-{i}",
                        email=f"advocate.{i}@example.com",
                    ),
                )
                advocates.append((runtime.ids.decode("advocate", advocate.id), advocate.code))
        program_rows = [runtime.ids.decode("program", p.id) for p in programs]
        return merchant.id, key, program_rows, [p.id for p in programs], advocates
    finally:
        await pool.close()


# =========================================================================== orders


@dataclass
class Friend:
    """A referred friend: when they first ordered, how the referral ended, their orders."""

    n: int
    first: float
    # allowed | review_pending | review_approved | review_rejected | blocked | ineligible
    outcome: str
    orders: list[float]


def _repeats(rng: np.random.Generator, first: float, p_first: float, p_more: float,
             gap_days: float, end: float) -> list[float]:  # fmt: skip
    times = [first]
    p, at = p_first, first
    while rng.random() < p:
        at += rng.exponential(gap_days * 86400)
        if at >= end:
            break
        times.append(at)
        p = p_more
    return times


def plan_friends(rng: np.random.Generator, cal: Calendar) -> list[Friend]:
    """Referred friends in the order of their first orders, until their attached orders make
    REFERRED_ORDERS."""
    end = cal.now.timestamp() - 600
    friends: list[Friend] = []
    attached = 0
    while attached < REFERRED_ORDERS:
        first = cal.one(rng)
        r = rng.random()
        outcome = (
            "blocked" if r < 0.02 else "ineligible" if r < 0.03 else "review" if r < 0.06
            else "allowed"
        )  # fmt: skip
        if outcome == "review":
            age = (end - first) / 86400
            outcome = (
                "review_pending" if age < 14
                else "review_approved" if rng.random() < 0.8 else "review_rejected"
            )  # fmt: skip
        orders = _repeats(rng, first, 0.42, 0.45, 50, end)
        live = outcome in ("allowed", "review_pending", "review_approved")
        attached += len(orders) if live else 1
        friends.append(Friend(0, first, outcome, orders))
    friends.sort(key=lambda f: f.first)
    for n, f in enumerate(friends):
        f.n = n
    return friends


def _amount(rng: np.random.Generator, currency: str) -> int:
    base = math.exp(rng.normal(math.log(6500), 0.5))
    return int(base * (10.5 if currency == "SEK" else 1))


def _order_state(rng: np.random.Generator, total: int) -> tuple[str, int]:
    r = rng.random()
    if r < 0.015:
        return "cancelled", 0
    if r < 0.035:
        return "refunded", total
    if r < 0.07:
        return "partially_refunded", int(total * rng.uniform(0.2, 0.7))
    return "placed", 0


def _decision(rng: np.random.Generator, outcome: str) -> dict:
    reasons = []
    if outcome == "blocked":
        action = "block"
        for rule in pick(rng, BLOCK_RULES, 1 + int(rng.random() < 0.2)):
            reasons.append({"rule": rule, "action": "block", "detail": "bench"})
    elif outcome.startswith("review"):
        action = "review"
        for rule in pick(rng, REVIEW_RULES, 1 + int(rng.random() < 0.15)):
            reasons.append({"rule": rule, "action": "review", "detail": "bench"})
    else:
        action = "allow"
        if rng.random() < 0.05:
            reasons.append({"rule": "deal_site_referrer", "action": "flag", "detail": "bench",
                            "weight": 20})  # fmt: skip
    checks = [{"name": "new_customer", "passed": outcome != "ineligible", "detail": "bench"}]
    uniq = {(r["rule"], r["action"]): r for r in reasons}
    fraud = {"action": action, "score": 0, "reasons": list(uniq.values()), "policy_version": 0}
    return {"checks": checks, "fraud": fraud}


STAGED = {
    "referrals": ("id", "merchant_id", "program_id", "advocate_id", "friend_key",
                  "friend_customer_id", "friend_email_normalised", "status", "source",
                  "attribution", "decision", "rejection_reason", "signed_up_at",
                  "converted_at", "first_order_pk", "created_at"),
    "orders": ("id", "merchant_id", "order_id", "customer_id", "email_normalised", "subtotal",
               "total", "currency", "refunded", "status", "occurred_at", "referral_id",
               "fingerprint", "created_at"),
    "rewards": ("id", "merchant_id", "program_id", "referral_id", "advocate_id", "side",
                "payee_key", "kind", "currency", "amount", "original_amount", "order_pk",
                "status", "reversed_from", "hold_until", "earned_at", "created_at",
                "approved_at", "paid_at", "reversed_at", "updated_at"),
    "stories": ("id", "merchant_id", "program_id", "advocate_id", "reward_id", "slug", "body",
                "display_name", "status", "created_at", "updated_at", "published_at"),
}  # fmt: skip


@dataclass
class Seeded:
    orders: int = 0
    referred_orders: int = 0
    referrals: int = 0
    rewards: int = 0
    stories: int = 0
    customers: int = 0
    clicks: int = 0
    shares: int = 0
    share_page_views: int = 0
    story_views: int = 0
    booked: int = 0
    steps: list[tuple[str, float]] = field(default_factory=list)
    worker_seconds: float = 0.0


class Loader:
    """Rows staged in memory, written in chunks: COPY into temporary tables, then INSERT ...
    OVERRIDING SYSTEM VALUE in foreign-key order (the triggers mark every row), then the
    rollup worker books the chunk."""

    def __init__(self, conn, pool, ids, seeded: Seeded) -> None:
        self.conn, self.pool, self.ids, self.seeded = conn, pool, ids, seeded
        self.rows: dict[str, list[tuple]] = {t: [] for t in STAGED}
        self.copy_seconds = 0.0
        self.flushes = 0

    async def prepare(self) -> None:
        for table in STAGED:
            await self.conn.execute(
                f"CREATE TEMP TABLE stage_{table} (LIKE {table} INCLUDING DEFAULTS)"
            )

    async def maybe_flush(self) -> None:
        if len(self.rows["orders"]) >= ORDER_CHUNK:
            await self.flush()

    async def flush(self) -> None:
        from referral.analytics import service as analytics

        started = time.perf_counter()
        async with self.conn.transaction():
            for table, columns in STAGED.items():
                rows = self.rows[table]
                if not rows:
                    continue
                await self.conn.copy_records_to_table(
                    f"stage_{table}", records=rows, columns=columns
                )
                names = ", ".join(columns)
                await self.conn.execute(
                    f"INSERT INTO {table} ({names}) OVERRIDING SYSTEM VALUE "
                    f"SELECT {names} FROM stage_{table}"
                )
                await self.conn.execute(f"TRUNCATE stage_{table}")
                rows.clear()
        self.flushes += 1
        if self.flushes & (self.flushes - 1) == 0:
            # Statistics as a running shop's tables have them (autoanalyze lags a bulk load,
            # and the worker's plans for empty-looking tables walk whole indexes): after the
            # 1st, 2nd, 4th, 8th ... chunk.
            await self.conn.execute(
                "ANALYZE orders, referrals, rewards, advocates, analytics_dirty, "
                "analytics_entity_facts"
            )
        mid = time.perf_counter()
        self.copy_seconds += mid - started
        self.seeded.booked += await analytics.catch_up(self.pool, ids=self.ids)
        self.seeded.worker_seconds += time.perf_counter() - mid


async def seed_orders(world: World, cal: Calendar, loader: Loader, rng: np.random.Generator,
                      friends: list[Friend]) -> None:  # fmt: skip
    """Referred friends (referral, orders, rewards, stories), the referrals that only signed
    up, then the other customers, until ORDERS orders."""
    m = world.merchant_id
    ids = loader.ids
    seeded = loader.seeded
    end = cal.now.timestamp() - 600
    rows = loader.rows
    fingerprint = bytes(32)
    next_id = {"order": 1, "referral": 1, "reward": 1, "story": 1}
    first_reward: dict[int, bool] = {}

    def new_id(kind: str) -> int:
        i = next_id[kind]
        next_id[kind] = i + 1
        return i

    def order_row(customer: str | None, email: str, currency: str, at: float,
                  referral: int | None) -> tuple[int, str, int, int]:  # fmt: skip
        oid = new_id("order")
        total = _amount(rng, currency)
        status, refunded = _order_state(rng, total)
        created = utc(at)
        rows["orders"].append((oid, m, f"o{oid}", customer, email, int(total * 0.88), total,
                               currency, refunded, status, created, referral, fingerprint,
                               created))  # fmt: skip
        seeded.orders += 1
        seeded.referred_orders += referral is not None
        return oid, status, refunded, total

    friend_days = np.array([cal.day_of(f.first) for f in friends], dtype=np.int64)
    advocates = world.draw_advocates(rng, friend_days)
    channels = pick(rng, CLICK_CHANNELS, len(friends))
    for f, a, channel in zip(friends, advocates, channels, strict=True):
        a = int(a)
        program = int(world.adv_program[a])
        program_id = world.programs[program]
        advocate_id = int(world.adv_ids[a])
        guest = rng.random() < 0.04
        customer = None if guest else f"fr-{f.n}"
        email = f"friend{f.n}@example.org"
        currency = "SEK" if rng.random() < 0.22 else "EUR"
        rid = new_id("referral")
        story = world.stories.get(a)
        if rng.random() < 0.35:
            attribution = {"path": "code", "code": f"B{advocate_id}"}
        else:
            attribution = {"path": "link", "channel": channel, "visitor_id": f"fv{f.n:x}",
                           "clicked_at": utc(f.first - 600).isoformat()}  # fmt: skip
            if story is not None and story[1] < f.first and rng.random() < 0.2:
                attribution["story_id"] = ids.encode("story", story[0])
                attribution["channel"] = "story"
        signed_up = None
        if rng.random() < 0.3:
            signed_up = max(f.first - rng.uniform(0.1, 5) * 86400, float(cal.midnight[0]))
        live = f.outcome in ("allowed", "review_pending", "review_approved")
        first_pk = None
        order_states = []
        for k, at in enumerate(f.orders if live else f.orders[:1]):
            attached = rid if (live or k == 0) else None
            oid, status, refunded, total = order_row(customer, email, currency, at, attached)
            order_states.append((oid, status, refunded, total))
            first_pk = first_pk or oid
        if not live:  # a rejected friend may still come back as an ordinary customer
            for at in f.orders[1:]:
                order_row(customer, email, currency, at, None)
        status, reason = {
            "allowed": ("converted", None),
            "review_approved": ("converted", None),
            "review_pending": ("in_review", None),
            "review_rejected": ("rejected", "review_rejected"),
            "blocked": ("rejected", "fraud_blocked"),
            "ineligible": ("rejected", "not_new_customer"),
        }[f.outcome]
        first_at = utc(f.first)
        rows["referrals"].append((
            rid, m, program_id, advocate_id, customer or email, customer, email, status,
            attribution["path"], attribution, _decision(rng, f.outcome), reason,
            utc(signed_up) if signed_up else None,
            first_at if status in ("converted", "in_review") else None, first_pk,
            utc(signed_up) if signed_up else first_at,
        ))  # fmt: skip
        seeded.referrals += 1
        if f.outcome in ("blocked", "ineligible"):
            continue
        # Both parties' rewards, earned at the first order.
        oid, o_status, refunded, total = order_states[0]
        age = (end - f.first) / 86400
        for side in ("advocate", "friend"):
            kind, amounts = REWARDS[program][side]
            amount = amounts[currency]
            wid = new_id("reward")
            approved = paid = reversed_at = None
            reversed_from = None
            hold = f.first + HOLD_DAYS * 86400
            if f.outcome == "review_pending":
                r_status = "in_review"
            elif age < HOLD_DAYS:
                r_status = "pending"
            elif kind != "coupon" and rng.random() < 0.55:
                r_status, approved, paid = "paid", hold, min(hold + 7 * 86400, end)
            else:
                r_status, approved = "approved", hold
            now_amount = amount
            if f.outcome == "review_rejected":
                reversed_from, r_status, now_amount = "in_review", "reversed", 0
                reversed_at, approved, paid = f.first + 3 * 86400, None, None
            elif o_status in ("cancelled", "refunded"):
                reversed_from, r_status, now_amount = r_status, "reversed", 0
                reversed_at = f.first + 2 * 86400
            payee = f"advocate:{advocate_id}" if side == "advocate" else (customer or email)
            rows["rewards"].append((
                wid, m, program_id, rid, advocate_id, side, payee, kind, currency, now_amount,
                amount, oid, r_status, reversed_from, utc(hold), first_at, first_at,
                utc(approved) if approved else None, utc(paid) if paid else None,
                utc(reversed_at) if reversed_at else None, first_at,
            ))  # fmt: skip
            seeded.rewards += 1
            # Some sharers tell their story once their first reward is approved.
            published = f.first + (HOLD_DAYS + 1) * 86400
            if (
                side == "advocate"
                and r_status in ("approved", "paid")
                and a not in first_reward
                and len(world.stories) < MAX_STORIES
                and published < end
            ):
                first_reward[a] = True
                if rng.random() < 0.35:
                    sid = new_id("story")
                    world.stories[a] = (sid, published)
                    world.story_programs[sid] = program_id
                    at = utc(published)
                    rows["stories"].append((
                        sid, m, program_id, advocate_id, wid, f"benchstory{sid:06d}",
                        "Ordered twice already, and my friends love it.", f"Advocate {a}",
                        "published", at, at, at,
                    ))  # fmt: skip
                    seeded.stories += 1
        await loader.maybe_flush()

    # Friends who signed up through a referral and never ordered (pending).
    pending = int(len(friends) * 0.15)
    days, ts = cal.times(rng, pending)
    advocates = world.draw_advocates(rng, days)
    for k, (a, at) in enumerate(zip(advocates.tolist(), ts.tolist(), strict=True)):
        program_id = world.programs[int(world.adv_program[a])]
        customer = f"fp-{k}"
        path = "signup_email" if rng.random() < 0.4 else "link"
        attribution = {"path": path} if path == "signup_email" else {
            "path": "link", "channel": "whatsapp", "visitor_id": f"pv{k:x}"}  # fmt: skip
        rows["referrals"].append((
            new_id("referral"), m, program_id, int(world.adv_ids[a]), customer, customer,
            f"pending{k}@example.org", "pending", path, attribution, {}, None,
            utc(at), None, None, utc(at),
        ))  # fmt: skip
        seeded.referrals += 1
        if len(rows["referrals"]) >= ORDER_CHUNK:
            await loader.flush()

    # Everyone else: customers who came without a referral.
    k = 0
    while seeded.orders < ORDERS:
        first = cal.one(rng)
        guest = rng.random() < 0.05
        customer = None if guest else f"c-{k}"
        currency = "SEK" if rng.random() < 0.22 else "EUR"
        for at in _repeats(rng, first, 0.30, 0.40, 70, end)[: ORDERS - seeded.orders]:
            order_row(customer, f"shopper{k}@example.com", currency, at, None)
        k += 1
        await loader.maybe_flush()
    await loader.flush()
    seeded.customers = k + len(friends)
    for table, kind in (("orders", "order"), ("referrals", "referral"), ("rewards", "reward"),
                        ("stories", "story")):  # fmt: skip
        await loader.conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), $1)", next_id[kind]
        )


# =========================================================================== advocates


async def seed_advocates(conn, cal: Calendar, rng: np.random.Generator, merchant_id: int,
                         programs: list[int], api: list[tuple[int, str]],
                         friends: list[Friend]) -> dict:  # fmt: skip
    """The bulk advocates by COPY (85% in the first program), who shares, from when, and a few
    hundred who were referred friends first (their customer id is the friend's)."""
    bulk = ADVOCATES - len(api)
    sharers = rng.permutation(ADVOCATES)[: int(ADVOCATES * SHARING_SHARE)]
    start = np.full(ADVOCATES, DAYS, dtype=np.int64)
    start[sharers] = (DAYS * rng.random(len(sharers)) ** 2).astype(np.int64)
    start[sharers[:20]] = rng.integers(0, 30, 20)  # the biggest sharers are there early on
    # Friends turned advocates: early friends who started sharing after their first order.
    turned = {}
    early = [f for f in friends[: len(friends) // 3] if f.outcome == "allowed"]
    candidates = [int(a) for a in sharers[20:] if a >= len(api)]
    for a, f in zip(candidates[: len(candidates) // 12], early[::5], strict=False):
        turned[a] = f
        start[a] = max(start[a], cal.day_of(f.first) + 1)
    customers = [f"adv-{i}" if i not in turned else f"fr-{turned[i].n}" for i in range(ADVOCATES)]
    program_index = np.where(rng.random(ADVOCATES) < 0.85, 0, 1)
    program_index[: len(api)] = 0
    created = utc(float(cal.midnight[0]) - 86400 * 30)
    records = [
        (merchant_id, programs[int(program_index[i])], customers[i], f"advocate.{i}@example.com",
         f"Advocate {i}", created)
        for i in range(len(api), ADVOCATES)
    ]  # fmt: skip
    await conn.copy_records_to_table(
        "advocates",
        records=records,
        columns=("merchant_id", "program_id", "customer_id", "email", "name", "created_at"),
    )
    rows = await conn.fetch(
        "SELECT id, customer_id FROM advocates WHERE merchant_id = $1", merchant_id
    )
    by_customer = {r["customer_id"]: r["id"] for r in rows}
    adv_ids = np.array([by_customer[c] for c in customers], dtype=np.int64)
    assert len(by_customer) == ADVOCATES, (len(by_customer), bulk)
    ranks = 1.0 / np.arange(1, len(sharers) + 1) ** ZIPF_S
    return {
        "adv_ids": adv_ids,
        "adv_program": program_index,
        "adv_customer": customers,
        "sharers": sharers,
        "zipf_cum": np.cumsum(ranks),
        "start_day": start,
        "turned": len(turned),
    }


# =========================================================================== clicks


def click_days(world: World, cal: Calendar, rng: np.random.Generator) -> Iterator[list[tuple]]:
    """Each day's clicks (click writer tuples), in time order."""
    per_day = rng.multinomial(CLICKS, cal.weights)
    channels = [c for c, _ in CLICK_CHANNELS]
    weights = np.array([w for _, w in CLICK_CHANNELS], dtype=float)
    weights /= weights.sum()
    story_of = {a: s for a, s in world.stories.items()}
    last_visitor: dict[int, str] = {}
    visitor_no = 0
    click_no = 0
    m = world.merchant_id
    programs = [world.programs[int(p)] for p in world.adv_program]
    codes = [f"B{int(i)}" for i in world.adv_ids]
    for i, code in enumerate(world.codes):
        codes[i] = code
    adv_ids = world.adv_ids.tolist()
    for d in range(DAYS):
        n = int(per_day[d])
        if n == 0:
            continue
        days = np.full(n, d, dtype=np.int64)
        ts = np.sort(cal.times_on(rng, days))
        advs = world.draw_advocates(rng, days).tolist()
        chans = rng.choice(len(channels), n, p=weights).tolist()
        bots = (rng.random(n) < 0.03).tolist()
        repeat = (rng.random(n) < 0.3).tolist()
        story_roll = (rng.random(n) < 0.2).tolist()
        out = []
        for at, a, ch, bot, rep, sroll in zip(ts.tolist(), advs, chans, bots, repeat, story_roll,
                                              strict=True):  # fmt: skip
            visitor = last_visitor.get(a) if rep else None
            if visitor is None:
                visitor_no += 1
                visitor = f"v{visitor_no:x}"
                last_visitor[a] = visitor
            channel = channels[ch]
            story_id = None
            story = story_of.get(a)
            if story is not None and sroll and story[1] < at:
                story_id = story[0]
                if ch % 2 == 0:
                    channel = "story"
            click_no += 1
            out.append((
                f"{click_no:032x}", utc(at), m, programs[a], adv_ids[a], codes[a], channel,
                visitor, None, None, BOT_UA if bot else HUMAN_UA, None, story_id, bot,
            ))  # fmt: skip
        yield out


async def seed_clicks(world: World, cal: Calendar, pool, ids, rng, seeded: Seeded) -> float:
    """Every click through the click writer, ~CLICK_BATCH per flush; the next batch is drawn
    while the last one is written. The rollup worker books them every CATCH_UP_EVERY batches.
    Returns the seconds spent in the writer's flushes (waited for)."""
    from referral.analytics import service as analytics
    from referral.links.clicks import ClickWriter

    writer = ClickWriter(pool)
    flushing: asyncio.Task | None = None
    batches = 0
    waited = 0.0

    async def settle() -> None:
        nonlocal flushing, waited, batches
        if flushing is not None:
            started = time.perf_counter()
            written = await flushing
            waited += time.perf_counter() - started
            if written == 0 and writer.pending:
                raise BenchError(f"the click writer failed: {writer.last_error}")
            seeded.clicks += written
            flushing = None
            batches += 1
            if batches % CATCH_UP_EVERY == 0:
                started = time.perf_counter()
                seeded.booked += await analytics.catch_up(pool, ids=ids)
                seeded.worker_seconds += time.perf_counter() - started

    drawn = 0
    days = click_days(world, cal, rng)
    # Drawn in a thread: the event loop meanwhile drives the last batch's COPY and statements.
    while (day := await asyncio.to_thread(next, days, None)) is not None:
        for click in day:
            writer.record(click)
        drawn += len(day)
        if writer.pending >= CLICK_BATCH:
            await settle()
            flushing = asyncio.create_task(writer.flush())
            await asyncio.sleep(0)  # it takes the buffer before the next day is recorded
    await settle()
    if writer.pending:
        flushing = asyncio.create_task(writer.flush())
        await settle()
    started = time.perf_counter()
    seeded.booked += await analytics.catch_up(pool, ids=ids)
    seeded.worker_seconds += time.perf_counter() - started
    if seeded.clicks != drawn:
        raise BenchError(f"the click writer wrote {seeded.clicks:,} of {drawn:,} clicks")
    return waited


# =========================================================================== shares & views

# The deltas of rows seeded by COPY, as the stream writers (analytics.service.record_share,
# record_share_page_view, record_story_view) book them one by one.
SHARE_DELTAS = """
WITH zone AS (SELECT click_time_zone(time_zone) AS z FROM merchants WHERE id = $1),
s AS (SELECT *, (shared_at AT TIME ZONE (SELECT z FROM zone))::date AS day
      FROM shares WHERE merchant_id = $1)
INSERT INTO analytics_deltas
    (merchant_id, program_id, day, metric, dim, story_id, advocate_id, value, member)
SELECT $1, program_id, day, 'shares', channel, coalesce(story_id, 0), advocate_id, 1, NULL
FROM s
UNION ALL
SELECT $1, program_id, day, 'sharing_advocates', channel, coalesce(story_id, 0), advocate_id, 0,
       hashtextextended(advocate_id::text, 0)
FROM s
"""
SHARE_PAGE_VIEW_DELTAS = """
INSERT INTO analytics_deltas
    (merchant_id, program_id, day, metric, dim, story_id, advocate_id, value, member)
SELECT $1, v.program_id, (v.viewed_at AT TIME ZONE click_time_zone(m.time_zone))::date,
       'share_page_views', '', 0, v.advocate_id, 1, NULL
FROM share_page_views v JOIN merchants m ON m.id = v.merchant_id
WHERE v.merchant_id = $1
"""
STORY_VIEW_DELTAS = """
INSERT INTO analytics_deltas
    (merchant_id, program_id, day, metric, dim, story_id, advocate_id, value, member)
SELECT $1, s.program_id, (v.viewed_at AT TIME ZONE click_time_zone(m.time_zone))::date,
       'story_views', '', s.id, s.advocate_id, 1, NULL
FROM story_views v JOIN stories s ON s.merchant_id = v.merchant_id AND s.id = v.story_id
JOIN merchants m ON m.id = v.merchant_id
WHERE v.merchant_id = $1
"""
# As analytics.repo.SET_FIRST_SHARED, for every seeded share at once.
FIRST_SHARES = """
UPDATE advocates a SET first_shared_at = t.at
FROM (SELECT advocate_id, min(shared_at) AS at FROM shares WHERE merchant_id = $1 GROUP BY 1) t
WHERE a.merchant_id = $1 AND a.id = t.advocate_id
  AND (a.first_shared_at IS NULL OR a.first_shared_at > t.at)
"""


async def seed_shares(world: World, cal: Calendar, conn, pool, ids, rng, seeded: Seeded) -> None:
    from referral.analytics import service as analytics

    m = world.merchant_id
    days, ts = cal.times(rng, SHARES)
    advs = world.draw_advocates(rng, days).tolist()
    chans = pick(rng, SHARE_CHANNELS, SHARES)
    rows = []
    for at, a, ch, roll in zip(ts.tolist(), advs, chans, rng.random(SHARES).tolist(),
                               strict=True):  # fmt: skip
        story = world.stories.get(a)
        story_id = story[0] if story is not None and story[1] < at and roll < 0.15 else None
        program = world.programs[int(world.adv_program[a])]
        rows.append((m, program, int(world.adv_ids[a]), story_id, ch, utc(at)))
    await conn.copy_records_to_table(
        "shares",
        records=rows,
        columns=("merchant_id", "program_id", "advocate_id", "story_id", "channel", "shared_at"),
    )
    seeded.shares = len(rows)
    days, ts = cal.times(rng, SHARE_PAGE_VIEWS)
    advs = world.draw_advocates(rng, days).tolist()
    rows = [
        (m, world.programs[int(world.adv_program[a])], int(world.adv_ids[a]), utc(at))
        for a, at in zip(advs, ts.tolist(), strict=True)
    ]
    await conn.copy_records_to_table(
        "share_page_views",
        records=rows,
        columns=("merchant_id", "program_id", "advocate_id", "viewed_at"),
    )
    seeded.share_page_views = len(rows)
    stories = sorted(world.stories.values())
    rows = []
    if stories:
        weights = 1.0 / np.arange(1, len(stories) + 1) ** ZIPF_S
        picks = rng.choice(len(stories), STORY_VIEWS, p=weights / weights.sum()).tolist()
        end = cal.now.timestamp() - 600
        for i, roll in zip(picks, rng.random(STORY_VIEWS).tolist(), strict=True):
            sid, published = stories[i]
            rows.append((m, sid, utc(published + roll * (end - published))))
        await conn.copy_records_to_table(
            "story_views", records=rows, columns=("merchant_id", "story_id", "viewed_at")
        )
    seeded.story_views = len(rows)
    async with conn.transaction():
        for statement in (SHARE_DELTAS, SHARE_PAGE_VIEW_DELTAS, STORY_VIEW_DELTAS, FIRST_SHARES):
            await conn.execute(statement, m)
    started = time.perf_counter()
    seeded.booked += await analytics.catch_up(pool, ids=ids)
    seeded.worker_seconds += time.perf_counter() - started


# =========================================================================== seeding


async def seed(url: str, env: dict[str, str], cal: Calendar) -> tuple[World, Seeded]:
    from referral import settings as settings_module
    from referral.lib.db import create_pool
    from referral.lib.ids import PublicIds

    seeded = Seeded()
    mark = time.perf_counter()

    def step(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        seeded.steps.append((name, now - mark))
        print(f"  {name}: {now - mark:.1f} s", flush=True)
        mark = now

    rng = np.random.default_rng(zlib.crc32(SEED.encode()))
    merchant_id, key, programs, program_public, api = await seed_services(url, env)
    step(f"merchant, 2 programs, {len(api)} advocates with codes (services)")
    ids = PublicIds(settings_module.from_env(env).hashids_salt)
    pool = await create_pool(url, min_size=2, max_size=4)
    conn = await pool.acquire()
    try:
        # Monthly click partitions for the whole year, as a shop running a year has them.
        await conn.execute(
            "SELECT ensure_click_partitions($1, 14)", utc(float(cal.midnight[0]) - 86400 * 31)
        )
        friends = plan_friends(rng, cal)
        step(f"{len(friends):,} referred friends planned")
        adv = await seed_advocates(conn, cal, rng, merchant_id, programs, api, friends)
        world = World(
            merchant_id=merchant_id,
            key=key,
            programs=programs,
            program_public=program_public,
            codes=[c for _, c in api],
            adv_ids=adv["adv_ids"],
            adv_program=adv["adv_program"],
            adv_customer=adv["adv_customer"],
            sharers=adv["sharers"],
            zipf_cum=adv["zipf_cum"],
            start_day=adv["start_day"],
        )
        step(
            f"{ADVOCATES - len(api):,} advocates (COPY; {len(world.sharers):,} share, "
            f"{adv['turned']} were referred friends)"
        )
        loader = Loader(conn, pool, ids, seeded)
        await loader.prepare()
        await seed_orders(world, cal, loader, rng, friends)
        step(
            f"{seeded.orders:,} orders ({seeded.referred_orders:,} referred), "
            f"{seeded.referrals:,} referrals, {seeded.rewards:,} rewards, {seeded.stories:,} "
            f"stories, ~{seeded.customers:,} customers (COPY + INSERT {loader.copy_seconds:.0f} s,"
            f" rollup worker {seeded.worker_seconds:.0f} s)"
        )
        worker_before = seeded.worker_seconds
        waited = await seed_clicks(world, cal, pool, ids, rng, seeded)
        step(
            f"{seeded.clicks:,} clicks through the click writer (waiting for flushes "
            f"{waited:.0f} s, rollup worker {seeded.worker_seconds - worker_before:.0f} s)"
        )
        await seed_shares(world, cal, conn, pool, ids, rng, seeded)
        step(
            f"{seeded.shares:,} shares, {seeded.share_page_views:,} share page views, "
            f"{seeded.story_views:,} story views (COPY + deltas)"
        )
        await conn.execute("VACUUM ANALYZE")
        step("VACUUM ANALYZE")
    finally:
        await pool.release(conn)
        await pool.close()
    return world, seeded


# =========================================================================== reports


def _pct(values: list[float]) -> dict[str, float]:
    return checkout._percentiles(values)


def value_of(answer: dict, metric: str, currency: str | None = None) -> float | None:
    for v in answer.get("totals") or []:
        if v.get("metric") == metric and (currency is None or v.get("currency") == currency):
            return v.get("value")
    return None


def time_reports(base: str, key: str, world: World, cal: Calendar) -> dict:
    """Each report REPORT_REQUESTS times (after REPORT_WARMUP), one request at a time over a
    keep-alive connection: latencies (ms), statuses, and the last all-programs answer."""
    import httpx

    params = {
        "from": cal.first.isoformat(),
        "to": cal.today.isoformat(),
        "interval": "day",
        "compare": "previous",
    }
    variants = [params, dict(params, program_id=world.program_public[0])]
    out = {}
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as client:
        for name in REPORTS:
            latencies, statuses, answer = [], {}, None
            for i in range(REPORT_WARMUP + REPORT_REQUESTS):
                query = variants[i % 2]
                started = time.perf_counter()
                response = client.get(f"/v1/analytics/{name}", params=query)
                elapsed = (time.perf_counter() - started) * 1000
                if i < REPORT_WARMUP:
                    if i == 0:
                        answer = response.json() if response.status_code == 200 else None
                        first_error = None if response.status_code == 200 else response.text
                    continue
                latencies.append(elapsed)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            out[name] = {
                "latency": _pct(latencies),
                "statuses": statuses,
                "answer": answer,
                "error": first_error,
                "bytes": len(json.dumps(answer)) if answer else 0,
            }
            lat = out[name]["latency"]
            print(
                f"  {name:<10} p50 {lat['p50']:6.1f}  p90 {lat['p90']:6.1f}  p99 {lat['p99']:6.1f}"
                f"  max {lat['max']:6.1f} ms  answers {statuses}"
                f"  ({out[name]['bytes'] / 1e3:.0f} kB)",
                flush=True,
            )
    return out


FACTS = {
    "human_clicks": """
        SELECT count(*) FROM clicks c JOIN merchants m ON m.id = c.merchant_id
        WHERE c.merchant_id = $1 AND NOT c.is_bot
          AND (c.clicked_at AT TIME ZONE m.time_zone)::date BETWEEN $2 AND $3""",
    "orders": """
        SELECT count(*) FROM orders o JOIN merchants m ON m.id = o.merchant_id
        WHERE o.merchant_id = $1 AND o.status <> 'cancelled'
          AND (o.occurred_at AT TIME ZONE m.time_zone)::date BETWEEN $2 AND $3""",
    "revenue": """
        SELECT o.currency, sum(o.total - o.refunded) FROM orders o
        JOIN merchants m ON m.id = o.merchant_id
        WHERE o.merchant_id = $1 AND o.status <> 'cancelled'
          AND (o.occurred_at AT TIME ZONE m.time_zone)::date BETWEEN $2 AND $3
        GROUP BY 1""",
    "first_orders": """
        SELECT count(*) FROM referrals r
        JOIN orders o ON o.merchant_id = r.merchant_id AND o.id = r.first_order_pk
        JOIN merchants m ON m.id = r.merchant_id
        WHERE r.merchant_id = $1 AND r.status <> 'rejected' AND o.status <> 'cancelled'
          AND (o.occurred_at AT TIME ZONE m.time_zone)::date BETWEEN $2 AND $3""",
    "all_orders": "SELECT count(*) FROM orders WHERE merchant_id = $1",
    "all_clicks": "SELECT count(*) FROM clicks WHERE merchant_id = $1",
    "pending": """
        SELECT (SELECT count(*) FROM analytics_dirty) + (SELECT count(*) FROM analytics_deltas)""",
}  # fmt: skip


async def database_facts(url: str, world: World, cal: Calendar) -> dict:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        out = {}
        for name, sql in FACTS.items():
            args = [world.merchant_id]
            if "$2" in sql:
                args += [cal.first, cal.today]
            if name == "revenue":
                out[name] = {r[0].strip(): r[1] for r in await conn.fetch(sql, *args)}
            elif name == "pending":
                out[name] = await conn.fetchval(sql)
            else:
                out[name] = await conn.fetchval(sql, *args)
        return out
    finally:
        await conn.close()


async def catch_up(url: str, env: dict[str, str]) -> tuple[int, float]:
    from referral import settings as settings_module
    from referral.analytics import service as analytics
    from referral.lib.db import create_pool
    from referral.lib.ids import PublicIds

    ids = PublicIds(settings_module.from_env(env).hashids_salt)
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        started = time.perf_counter()
        booked = await analytics.catch_up(pool, ids=ids)
        return booked, time.perf_counter() - started
    finally:
        await pool.close()


def rebuild_check(env: dict[str, str]) -> tuple[bool, str, float]:
    """`referral analytics rebuild` (without --apply it only checks) as a subprocess:
    (every merchant's rollups identical, its output, seconds)."""
    exe = Path(sys.executable).parent / "referral"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "referral"]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "analytics", "rebuild"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    seconds = time.perf_counter() - started
    output = (done.stdout + done.stderr).strip()
    verdicts = [line for line in done.stdout.splitlines() if not line.startswith(" ")]
    identical = (
        done.returncode == 0
        and bool(verdicts)
        and all(line.endswith("identical") for line in verdicts)
    )
    return identical, output, seconds


# Per metric, the analytics_daily rows a recomputation disagrees with (printed when the rebuild
# finds differences, to say where they are).
DAILY_DIFFERENCES = """
WITH want AS (
    SELECT program_id, day, metric, dim, currency, sum(value) AS value
    FROM rebuilt_facts WHERE member IS NULL GROUP BY 1, 2, 3, 4, 5
), kept AS (
    SELECT program_id, day, metric, dim, currency, value FROM analytics_daily
    WHERE merchant_id = $1
)
SELECT metric, count(*) AS rows, sum(coalesce(k.value, 0) - coalesce(w.value, 0)) AS delta,
       min(day) AS first_day, max(day) AS last_day
FROM want w FULL JOIN kept k USING (program_id, day, metric, dim, currency)
WHERE coalesce(w.value, 0) <> coalesce(k.value, 0)
GROUP BY 1 ORDER BY 2 DESC
"""


def story_resolver(ids):
    """A story's public id to its row id, 0 for none (as the worker resolves attributions)."""
    from referral.lib.errors import NotFound

    def resolve(public_id: str | None) -> int:
        try:
            return ids.decode("story", public_id) if public_id else 0
        except NotFound:
            return 0

    return resolve


async def rebuild_differences(url: str, env: dict[str, str], merchant_id: int) -> list[tuple]:
    """Where the kept analytics_daily differs from a recomputation, per metric (the rebuild's
    own recomputation, in a transaction rolled back)."""
    from referral import settings as settings_module
    from referral.analytics import repo, rules, service
    from referral.lib.db import create_pool
    from referral.lib.ids import PublicIds

    ids = PublicIds(settings_module.from_env(env).hashids_salt)
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                zone = await conn.fetchval(
                    "SELECT time_zone FROM merchants WHERE id = $1", merchant_id
                )
                await repo.create_rebuilt(conn, merchant_id)
                await service._recompute_entities(
                    conn, merchant_id, rules.zone_of(zone), story_resolver(ids)
                )
                return [tuple(r) for r in await conn.fetch(DAILY_DIFFERENCES, merchant_id)]
            finally:
                await transaction.rollback()
    finally:
        await pool.close()


# =========================================================================== main


def checkout_rate() -> tuple[float, str]:
    args = sys.argv[1:]
    if "--checkout-rate" in args:
        return float(args[args.index("--checkout-rate") + 1]), "--checkout-rate"
    if os.environ.get("BENCH_CHECKOUT_RATE"):
        return float(os.environ["BENCH_CHECKOUT_RATE"]), "BENCH_CHECKOUT_RATE"
    return DEFAULT_CHECKOUT_RATE, "bench/README.md (200-300/s; the upper end)"


def main() -> int:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (ROOT / ".referral").mkdir(exist_ok=True)
    note_load_average()
    reference, reference_from = checkout_rate()
    zone = ZoneInfo(ZONE_NAME)
    cal = Calendar(zone, datetime.now(UTC))
    print(
        f"BENCH_SCALE={SCALE:g}: {CLICKS:,} clicks, {ORDERS:,} orders ({REFERRED_ORDERS:,} "
        f"referred), {ADVOCATES:,} advocates over {cal.first} .. {cal.today} ({ZONE_NAME})"
    )
    started_all = time.monotonic()
    with (
        fresh_database("bench-analytics") as db,
        tempfile.TemporaryDirectory(prefix="bench-analytics-", dir=ROOT / ".referral") as tmp,
    ):
        env = app_env(db.url, base, "warning")
        print("seeding:")
        started = time.monotonic()
        world, seeded = asyncio.run(seed(db.url, env, cal))
        seed_seconds = time.monotonic() - started
        print(f"seeded in {seed_seconds:.0f} s (the rollup worker: {seeded.worker_seconds:.0f} s, "
              f"{seeded.booked:,} entities booked)")  # fmt: skip

        log_path = Path(tmp) / "server.log"
        gen = checkout.LoadGen(base, world.key, world.codes)
        runs = []
        with app_server(env, port, log_path) as proc:
            cpu = checkout.CpuMeter(proc.pid, db.postmaster_pid)
            print(
                f"\ngranian (1 worker, uvloop, rollup worker every second) on {base}\n"
                f"-- POST /v1/orders through the API (open loop, latency from the due time; "
                f"{WARMUP:g} s warm-up each)"
            )
            fixed = gen.run(
                "POST /v1/orders", "order", ORDER_RATE, ORDER_DURATION, WARMUP, "fixed", cpu
            )
            runs.append(fixed)
            print(checkout.describe(fixed), flush=True)
            sustained = 0.0
            for rate in ORDER_STEPS:
                time.sleep(1)
                run = gen.run(
                    "POST /v1/orders", "order", rate, STEP_DURATION, WARMUP, f"step{rate:g}", cpu
                )
                runs.append(run)
                ok, why = checkout.held(run)
                print(checkout.describe(run) + ("" if ok else f"  <- not sustained: {why}"),
                      flush=True)  # fmt: skip
                if not ok:
                    break
                sustained = rate
            booked, seconds = asyncio.run(catch_up(db.url, env))
            print(f"rollup worker caught up after the API orders: {booked:,} entities in "
                  f"{seconds:.1f} s (beside the app's own worker)")  # fmt: skip

            print(
                f"\n-- reports: {cal.first} .. {cal.today} by day, compare=previous, "
                f"{REPORT_REQUESTS} requests each (all programs / the first, alternating)"
            )
            reports = time_reports(base, world.key, world, cal)
            stop_server(proc)
        errors_logged = logged_errors(log_path)
        facts = asyncio.run(database_facts(db.url, world, cal))
        print("\n-- referral analytics rebuild (check)")
        identical, output, rebuild_seconds = rebuild_check(env)
        for line in output.splitlines()[-12:]:
            print(f"  {line}")
        print(f"  ({rebuild_seconds:.0f} s)")
        if not identical:
            print("  analytics_daily rows that differ, by metric (kept - recomputed):")
            for metric, rows, delta, first, last in asyncio.run(
                rebuild_differences(db.url, env, world.merchant_id)
            )[:15]:
                print(f"    {metric:<24} {rows:6,} rows  {delta:+,}  {first} .. {last}")

    total_seconds = time.monotonic() - started_all
    print(f"\nload average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"total run time {total_seconds / 60:.1f} min; seeding steps:")
    for name, seconds in seeded.steps:
        print(f"  {seconds:7.1f} s  {name}")

    created = sum(len(r.created) for r in runs)
    funnel = reports["funnel"]["answer"] or {}
    impact = reports["impact"]["answer"] or {}
    checks = []
    bad = {n: r["statuses"] for n, r in reports.items() if set(r["statuses"]) != {200}}
    checks.append((
        not bad,
        f"every report answered 200 ({len(REPORTS)} x {REPORT_REQUESTS})"
        + (f"; not: {bad}" if bad else ""),
    ))  # fmt: skip
    for name, r in reports.items():
        if r["error"]:
            checks.append((False, f"{name}: {r['error'][:300]}"))
    checks += [
        (
            value_of(funnel, "clicks") == facts["human_clicks"],
            f"funnel clicks {value_of(funnel, 'clicks')} = human clicks in the year "
            f"{facts['human_clicks']:,}",
        ),
        (
            value_of(impact, "orders") == facts["orders"],
            f"impact orders {value_of(impact, 'orders')} = orders not cancelled "
            f"{facts['orders']:,}",
        ),
        (
            all(value_of(impact, "revenue", c) == v for c, v in facts["revenue"].items()),
            "impact revenue per currency = total - refunded of orders not cancelled ("
            + ", ".join(
                f"{c}: {value_of(impact, 'revenue', c)} / {v:,}"
                for c, v in sorted(facts["revenue"].items())
            )
            + ")",
        ),
        (
            value_of(funnel, "first_orders") == facts["first_orders"],
            f"funnel first orders {value_of(funnel, 'first_orders')} = first orders of live "
            f"referrals {facts['first_orders']:,}",
        ),
        (
            facts["all_orders"] == seeded.orders + created,
            f"orders rows {facts['all_orders']:,} = seeded {seeded.orders:,} + 201 answers "
            f"{created:,}",
        ),
        (facts["all_clicks"] == CLICKS, f"click rows {facts['all_clicks']:,} = {CLICKS:,}"),
        (facts["pending"] == 0, f"nothing left marked or unfolded ({facts['pending']})"),
        (identical, f"referral analytics rebuild: rollups identical ({rebuild_seconds:.0f} s)"),
        (not errors_logged, f"no errors in the server log ({len(errors_logged)} lines)"),
    ]
    targets = [
        (
            r["latency"]["p99"] < TARGET_REPORT_P99_MS,
            f"{name} p99 {r['latency']['p99']:.1f} ms < {TARGET_REPORT_P99_MS:g} ms",
        )
        for name, r in reports.items()
    ]
    floor = reference * (1 - CHECKOUT_TOLERANCE)
    targets.append(
        (
            sustained >= floor,
            f"highest sustained API order rate while seeding {sustained:g}/s >= {floor:g}/s "
            f"(bench-checkout {reference:g}/s from {reference_from}, -10%)",
        )
    )
    print(f"\norders through the API at {ORDER_RATE:g}/s: p50 {fixed.latency['p50']:.1f} ms, "
          f"p99 {fixed.latency['p99']:.1f} ms; highest sustained rate {sustained:g}/s "
          f"(bench-checkout: {reference:g}/s)")  # fmt: skip
    print("correctness: " + ("PASS" if all(ok for ok, _ in checks) else "FAIL"))
    for ok, text in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {text}")
    for line in errors_logged[:3]:
        print(f"  server log: {checkout._log_summary(line)}")
    print("targets: " + ("PASS" if all(ok for ok, _ in targets) else "FAIL"))
    for ok, text in targets:
        print(f"  {'met ' if ok else 'MISS'} {text}")
    return 0 if all(ok for ok, _ in checks + targets) else 1


if __name__ == "__main__":
    run_main("bench-analytics", main)
