"""Benchmark of the fraud engine: the decision's latency on the order call, and a backtest
over 1,000,000 past referrals, in one run.

    make bench-fraud        (or: .venv/bin/python bench/fraud.py)

Setup as bench/checkout.py, whose seeding, load generator pieces and CPU meter it reuses: a
PostgreSQL (embedded, in `.referral/bench-fraud-pg-*`, removed afterwards; or a fresh
database on the server named by BENCH_DATABASE_URL, dropped afterwards), migrations, a
merchant with a secret key, a program (default fraud policy) and BENCH_ADVOCATES (2,000)
advocates through the services, and `referral.app:asgi` under granian (1 worker, uvloop,
LOG_FORMAT=json, LOG_LEVEL=warning) as `referral serve` runs it.

Every order is a new customer with an IP, user agent, visitor id, payment fingerprint,
shipping address and email; half carry a random advocate's code, and of those some share
the advocate's IP (4%), IP and browser (2%), device (1.5%), payment method (0.5%) or
address (1.5%), or use a disposable email (2%); 3% of all orders come from ten shared
office addresses.

1. History: one order per advocate with the advocate's own IP, browser, device, payment
   method and address (their signals, for friends to match), then BENCH_HISTORY (5,000)
   orders at 300/s, then `ANALYZE`, so the counts run against indexes with statistics.
2. Decision latency added to the order call: `POST /v1/orders` OPEN-LOOP at BENCH_RATE
   (200/s: request i is due at start + i/rate whatever happened before, its latency counted
   from that due time, so queueing shows) in segments of BENCH_SEGMENT (5 s, each after a
   BENCH_WARMUP of 1 s) under two policies, PUT before each segment: every rule disabled
   (`{"<rule>": {"enabled": false}}` for each of RULE_NAMES) and the default policy (`{}`),
   in the order off, on, on, off, off, on, ... for BENCH_ROUNDS (4) segments each, so other
   work on the machine and the growing tables hit both alike. The difference of the two
   p99s (and of CPU per order) is the decision's cost on the order call, except for the
   features statement: with every rule disabled `decide()` still runs it, so
3. `decide()` is also timed in process: on its own connection to the same database,
   BENCH_DECIDE (2,000) calls per policy (default, every rule off; alternating call by
   call, after 100 not counted), each in a transaction rolled back, with contexts built as
   `_settle` builds them for existing advocates and new friends drawn as above.
4. Backtest: a second program, BENCH_BACKTEST_ADVOCATES (one per 33 referrals) advocates (SQL) and
   BENCH_BACKTEST_REFERRALS (1,000,000) decided referrals over 90 days, loaded by COPY. Their
   `decision` has the shape `_settle` stores: a real one from step 2 is the template (its
   checks as they are; the keys of its fraud decision and features must match). Features
   are drawn per referral: a few advocates bring most referrals, in bursts, and the hour
   and day counts are counted from that timeline; shared signals, disposable and blocklisted
   email domains, near-identical emails, referring sites (deal sites among them), seconds
   from click, IP counts, reciprocal referrals, earlier rejections. Each decision is
   `referral.fraud.rules.evaluate` under the default policy, as the engine would have
   decided; an advocate whose codes the rejected_referrals rule suspends brings no more.
   Statuses follow (reviews older than two weeks approved, or rejected by a person); 3% are
   rejected by eligibility; the oldest 3 days have no features (decided before the engine
   stored them). Then `POST /v1/programs/{id}/fraud-policy/backtest` over HTTP with a
   candidate policy (same_ip blocks, advocate_velocity at most 2 an hour, a blocklist of
   an email domain and a referring domain), twice, and with the program's current policy:
   wall time at the client, the `elapsed_ms` it reports, the server worker's peak RSS
   (VmHWM, reset before each). Then the rows alone: the backtest's query through a cursor
   as it reads them. Last, the candidate once more while orders come in at BENCH_RATE (from
   1 s before the backtest until about 2 s after it): their latency shows what a backtest
   does to the checkout calls of the deployment (the replay runs in the worker's backtest
   process, `BACKTEST_PROCESSES`).

Checks (after SIGTERM to the server): `orders` rows = 201 answers (same order ids); every
referral decided with all rules off allowed with no reasons; every decided referral stored
its features; referral status follows eligibility and the decision (allow -> converted,
review -> in_review, block -> rejected fraud_blocked); one reward per side for converted and
in-review referrals (held in review for the latter), none for rejected ones; `decide()`
with all rules off allows everything; the template's shape matches; the backtest counts
`replayed + without_features + ineligible == referrals` as seeded; its changes
equal a local replay of the seeded features, direction by direction; the candidate's runs
answer alike; the current policy changes nothing; no error in the server log.

Environment: BENCH_RATE, BENCH_SEGMENT, BENCH_WARMUP, BENCH_ROUNDS, BENCH_ADVOCATES,
BENCH_HISTORY, BENCH_DECIDE, BENCH_BACKTEST_REFERRALS, BENCH_BACKTEST_ADVOCATES,
BENCH_MAX_CONNECTIONS (256), BENCH_DATABASE_URL. Exit status: 0 when the correctness checks
pass, 1 when one fails, 2 when the benchmark cannot run.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import ipaddress
import itertools
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import checkout
from harness import (
    ROOT,
    BenchError,
    app_env,
    app_server,
    execute_sql,
    free_port,
    fresh_database,
    logged_errors,
    note_load_average,
    run_main,
    stop_server,
)
from payouts import PeakRss, worker_pid

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")  # platformdirs, as root

RATE = float(os.environ.get("BENCH_RATE", "200"))
SEGMENT = float(os.environ.get("BENCH_SEGMENT", "5"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "1"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "4"))
ADVOCATES = int(os.environ.get("BENCH_ADVOCATES", "2000"))
HISTORY = int(os.environ.get("BENCH_HISTORY", "5000"))
HISTORY_RATE = 300.0
DECIDE_CALLS = int(os.environ.get("BENCH_DECIDE", "2000"))
DECIDE_WARMUP = 100
BACKTEST_REFERRALS = int(os.environ.get("BENCH_BACKTEST_REFERRALS", "1000000"))
BACKTEST_ADVOCATES = int(
    os.environ.get("BENCH_BACKTEST_ADVOCATES", str(max(3000, BACKTEST_REFERRALS // 33)))
)
BACKTEST_DAYS = 90
MAX_CONNECTIONS = int(os.environ.get("BENCH_MAX_CONNECTIONS", "256"))
TARGET_P99_MS = 25.0  # checkout calls (order with fraud checks and rewards) at 200/s
TARGET_BACKTEST_S = 10.0  # a backtest of 1,000,000 past referrals
OFF, DEFAULT = "rules off", "default policy"

# --------------------------------------------------------------------------- shoppers
# Who places the orders: deterministic for an advocate (their own order is the history that
# gives them signals), drawn for a friend, who sometimes shares one of the advocate's.

USER_AGENTS = [
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
]
STREETS = ["Main Street", "Station Road", "Kungsgatan", "Hauptstrasse", "Elm Avenue", "Mill Lane"]
CITIES = [
    ("Berlin", "10115", "DE"),
    ("Stockholm", "111 22", "SE"),
    ("Paris", "75002", "FR"),
    ("London", "SW1A 1AA", "GB"),
    ("Madrid", "28013", "ES"),
]
EMAIL_DOMAINS = ["gmail.com", "outlook.com", "example.com", "example.org", "mail.example"]
DISPOSABLE = "mailinator.com"  # on the maintained disposable-domain list
OFFICE_IPS = [f"10.255.0.{k}" for k in range(1, 11)]  # shared by many shoppers


def _address(n: int) -> dict:
    city, postal, country = CITIES[n % len(CITIES)]
    street = STREETS[(n // 7) % len(STREETS)]
    return {
        "line1": f"{n % 180 + 1} {street}",
        "line2": "",
        "city": city,
        "postal_code": postal,
        "country": country,
    }


def advocate_fields(j: int) -> dict:
    """What advocate j (customer adv-0000j, as checkout.seed makes them) orders with."""
    return {
        "customer_id": f"adv-{j:05d}",
        "email": f"advocate.{j}@example.com",
        "ip": f"172.{16 + j // 62500}.{j // 250 % 250}.{j % 250 + 1}",
        "user_agent": USER_AGENTS[j % len(USER_AGENTS)],
        "visitor_id": f"vadv{j}",
        "payment_fingerprint": f"pm_adv_{j:06d}",
        "shipping_address": _address(j * 7919),
    }


def friend_fields(rng: random.Random, name: str, advocate: int | None) -> dict:
    """A new customer; referred by `advocate`, they sometimes share one of its signals."""
    fields = {
        "customer_id": f"cus-{name}",
        "email": f"friend.{name}@{rng.choice(EMAIL_DOMAINS)}",
        "ip": f"10.{rng.randrange(255)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        "user_agent": rng.choice(USER_AGENTS),
        "visitor_id": f"v{rng.getrandbits(64):016x}",
        "payment_fingerprint": f"pm_{rng.getrandbits(48):012x}",
        "shipping_address": _address(rng.getrandbits(30)),
    }
    if rng.random() < 0.03:
        fields["ip"] = rng.choice(OFFICE_IPS)
    if advocate is not None:
        adv = advocate_fields(advocate)
        r = rng.random()
        if r < 0.04:  # a household: same address, another browser
            fields["ip"] = adv["ip"]
            fields["user_agent"] = USER_AGENTS[(advocate + 1) % len(USER_AGENTS)]
        elif r < 0.06:
            fields["ip"], fields["user_agent"] = adv["ip"], adv["user_agent"]
        elif r < 0.075:
            fields["visitor_id"] = adv["visitor_id"]
        elif r < 0.08:
            fields["payment_fingerprint"] = adv["payment_fingerprint"]
        elif r < 0.095:
            fields["shipping_address"] = adv["shipping_address"]
        elif r < 0.115:
            fields["email"] = f"friend.{name}@{DISPOSABLE}"
    return fields


# =========================================================================== load generator
# `fraud.py --loadgen`: a plan as JSON on stdin, the raw result as JSON on stdout. It sends
# with checkout.py's keep-alive pool and open-loop `fire`; only the request bodies differ.


def build_requests(plan: dict, count: int, tag: str) -> tuple[list[bytes], list[str]]:
    rng = random.Random(tag)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    codes = plan["codes"]
    raws, order_ids = [], []
    for i in range(count):
        if plan["kind"] == "advocates":
            body, order_id = advocate_fields(i), f"ord-adv-{i}"
        else:
            advocate = rng.randrange(len(codes)) if rng.random() < 0.5 else None
            body, order_id = friend_fields(rng, f"{tag}-{i}", advocate), f"ord-{tag}-{i}"
            if advocate is not None:
                body["codes"] = [codes[advocate]]
        body.update(
            order_id=order_id,
            subtotal=5000,
            total=5900,
            currency="EUR",
            occurred_at=now,
            line_items=[{"sku": "SKU-1", "quantity": 2, "amount": 2500}],
        )
        payload = json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"POST /v1/orders HTTP/1.1\r\nHost: {plan['host']}\r\n"
            f"Authorization: Bearer {plan['key']}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        raws.append(head.encode() + payload)
        order_ids.append(order_id)
    return raws, order_ids


async def loadgen(plan: dict) -> dict:
    host, port = plan["host"].split(":")
    pool = checkout.Pool(host, int(port), MAX_CONNECTIONS)
    out: dict = {"created": [], "statuses": [], "latencies": [], "elapsed": 0.0, "cpu": 0.0}
    try:
        for part, count in (("w", plan["warmup"]), ("m", plan["count"])):
            if count <= 0:
                continue
            raws, order_ids = build_requests(plan, count, f"{plan['tag']}-{part}")
            got = await checkout.fire(pool, raws, plan["rate"])
            statuses = got["statuses"]
            out["created"] += [o for o, s in zip(order_ids, statuses, strict=True) if s == 201]
            if part == "m":
                out.update(
                    statuses=[str(s) for s in got["statuses"]],
                    latencies=[round(x, 3) for x in got["latencies"]],
                    elapsed=got["elapsed"],
                    cpu=got["cpu"],
                )
        out["connections"] = pool.peak
    finally:
        pool.close()
    return out


def loadgen_main() -> None:
    import uvloop  # granian's event loop here: installed with the app

    plan = json.loads(sys.stdin.read())
    result = uvloop.run(loadgen(plan))
    # As checkout.py's: the loop may leave stdout non-blocking, and a result larger than
    # the pipe was cut short at 128 KiB while the busy parent read (the bench then failed).
    os.set_blocking(sys.stdout.fileno(), True)
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()


@dataclass
class Load:
    """Orders sent under one policy, over one or more segments."""

    label: str
    statuses: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    cpu_gen: float = 0.0
    cpu_app: float = 0.0
    cpu_db: float = 0.0
    other: float = 0.0
    connections: int = 0
    versions: list[int] = field(default_factory=list)

    def add(self, got: dict, cpu: tuple[float, float, float]) -> None:
        self.statuses += got["statuses"]
        self.latencies += got["latencies"]
        self.elapsed += got["elapsed"]
        self.cpu_gen += got["cpu"]
        self.cpu_app += cpu[0]
        self.cpu_db += cpu[1]
        self.other += cpu[2]
        self.connections = max(self.connections, got.get("connections", 0))

    def run(self) -> checkout.Run:
        """As checkout.py's Run, to be printed the same way."""
        return checkout.Run(
            label=self.label,
            kind="order",
            rate=RATE,
            count=len(self.statuses),
            status=dict(Counter(self.statuses)),
            latency=checkout._percentiles(self.latencies),
            elapsed=self.elapsed,
            lag={},
            cpu_loadgen=self.cpu_gen,
            connections=self.connections,
            created=[],
            warmup_status={},
            cpu_app=self.cpu_app,
            cpu_db=self.cpu_db,
            other_cores=self.other / self.elapsed if self.elapsed else 0.0,
        )


def send(plan: dict, cpu: checkout.CpuMeter | None) -> tuple[dict, tuple[float, float, float]]:
    """One load generator run: (its result, CPU seconds of app, PostgreSQL and other work
    during the measured part, scaled from the whole run)."""
    before = cpu.sample() if cpu else None
    try:
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--loadgen"],
            input=json.dumps(plan).encode(),
            capture_output=True,
            timeout=(plan["warmup"] + plan["count"]) / plan["rate"] + 120,
            start_new_session=True,  # a Ctrl-C reaches only the benchmark
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError("the load generator did not finish in time") from exc
    after = cpu.sample() if cpu else None
    if done.returncode != 0:
        raise BenchError(f"the load generator failed: {done.stderr.decode()[-2000:]}")
    got = json.loads(done.stdout)
    used = (0.0, 0.0, 0.0)
    if before and after:
        share = plan["count"] / (plan["count"] + plan["warmup"])
        app = checkout.CpuMeter.delta(before[0], after[0]) * share
        db = checkout.CpuMeter.delta(before[1], after[1]) * share
        other = (after[2] - before[2]) * share - app - db - got["cpu"]
        used = (app, db, max(0.0, other))
    return got, used


# =========================================================================== HTTP


class Api:
    def __init__(self, base: str, key: str) -> None:
        import httpx

        # A backtest of a million referrals on a machine other jobs keep busy can take
        # minutes: its process runs at a lower priority than theirs (lib/apart.py).
        self.client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=900.0
        )

    def call(self, method: str, path: str, body: object = None, expect: int = 200) -> dict:
        response = self.client.request(method, path, json=body)
        if response.status_code != expect:
            raise BenchError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def close(self) -> None:
        self.client.close()


def off_policy() -> dict:
    from referral.fraud.policy import RULE_NAMES

    return {name: {"enabled": False} for name in RULE_NAMES}


def candidate_policy() -> dict:
    """The default policy with stricter settings: the same IP blocks, two referrals an hour
    make a review, and a blocklist of an email domain and a referring domain."""
    from referral.fraud.policy import FraudPolicy, dump

    policy = dump(FraudPolicy())
    policy["same_ip"]["action"] = "block"
    policy["advocate_velocity"]["max_per_hour"] = 2
    policy["blocklist"]["email_domains"] = ["spam-mail.example"]
    policy["blocklist"]["referring_domains"] = ["coupons-4u.example"]
    return policy


# =========================================================================== decide() in process


async def time_decide(
    url: str, env: dict[str, str], program_pk: int, policies: dict[str, dict]
) -> tuple[dict[str, list[float]], dict[str, Counter]]:
    """decide() per policy: (milliseconds per call, outcomes)."""
    import msgspec

    from referral import settings as settings_module
    from referral.fraud import service as fraud
    from referral.fraud.policy import FraudPolicy
    from referral.fraud.rules import Identity
    from referral.fraud.signals import SignalHasher, normalise_address
    from referral.lib.db import create_pool
    from referral.lib.emails import normalise_email
    from referral.lib.logging import configure_logging
    from referral.links.visitors import IpHasher

    configure_logging("console", "warning")
    settings = settings_module.from_env(env)
    ip_hasher = IpHasher(settings.ip_hash_key)
    hasher = SignalHasher(settings.ip_hash_key)
    texts = {
        label: msgspec.json.encode(msgspec.convert(raw, FraudPolicy)).decode()
        for label, raw in policies.items()
    }
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            program = await conn.fetchrow(
                "SELECT id, merchant_id FROM programs WHERE id = $1", program_pk
            )
            advocates = await conn.fetch(
                "SELECT id, customer_id, email FROM advocates WHERE program_id = $1 ORDER BY id",
                program_pk,
            )
            rng = random.Random("decide")
            contexts = []
            for i in range(DECIDE_WARMUP + DECIDE_CALLS):
                advocate = rng.choice(advocates)
                f = friend_fields(rng, f"decide-{i}", int(advocate["customer_id"][4:]))
                ip = ipaddress.ip_address(f["ip"])
                ip_hash = ip_hasher.hashes(ip)[0]
                a = f["shipping_address"]
                contexts.append(
                    fraud.Context(
                        merchant_id=program["merchant_id"],
                        program_id=program_pk,
                        advocate_id=advocate["id"],
                        identity=Identity(
                            friend_customer_id=f["customer_id"],
                            friend_email=normalise_email(f["email"]),
                            advocate_customer_id=advocate["customer_id"],
                            advocate_email=normalise_email(advocate["email"]),
                        ),
                        event="order",
                        occurred_at=datetime.now(UTC),
                        new_customer=True,
                        livemode=False,
                        ip=ip,
                        ip_hash=ip_hash,
                        signals=hasher.signals(
                            ip_hash=ip_hash,
                            user_agent=f["user_agent"],
                            visitor_ids=[f["visitor_id"]],
                            payment_fingerprint=f["payment_fingerprint"],
                            address=normalise_address(
                                a["line1"], a["line2"], a["city"], a["postal_code"], a["country"]
                            ),
                        ),
                        referer_host=None,
                        clicked_at=None,
                    )
                )
            timings: dict[str, list[float]] = {label: [] for label in texts}
            outcomes: dict[str, Counter] = {label: Counter() for label in texts}
            labels = list(texts)
            for i, context in enumerate(contexts):
                for label in labels if i % 2 == 0 else labels[::-1]:
                    transaction = conn.transaction()
                    await transaction.start()
                    try:
                        started = time.perf_counter()
                        decision = await fraud.decide(
                            conn, context=context, policy_text=texts[label], policy_version=0
                        )
                        elapsed = time.perf_counter() - started
                    finally:
                        await transaction.rollback()
                    if i >= DECIDE_WARMUP:
                        timings[label].append(elapsed * 1000)
                        outcomes[label][decision.action] += 1
        return timings, outcomes
    finally:
        await pool.close()


# =========================================================================== backtest data


@dataclass
class History:
    """The seeded referrals (COPY records) and what a replay of them must answer."""

    records: list[tuple] = field(default_factory=list)
    referrals: int = 0
    replayed: int = 0
    without_features: int = 0
    ineligible: int = 0
    stored: Counter = field(default_factory=Counter)  # stored action of the replayable ones
    changes: Counter = field(default_factory=Counter)  # (was, would be) under the candidate
    evaluate_seconds: float = 0.0
    evaluations: int = 0
    decision_bytes: int = 0


COLUMNS = ("merchant_id", "program_id", "advocate_id", "friend_key", "friend_customer_id",
           "friend_email_normalised", "status", "source", "attribution", "decision",
           "rejection_reason", "signed_up_at", "converted_at", "created_at")  # fmt: skip
# (value, weight) tables the referrals are drawn from.
FRIEND_DOMAINS = [("gmail.com", 35), ("outlook.com", 15), ("example.com", 20),
                  ("example.org", 20), ("mail.example", 6), (DISPOSABLE, 2),
                  ("spam-mail.example", 2)]  # fmt: skip
REFERERS = [(None, 25), ("www.facebook.com", 28), ("l.instagram.com", 18), ("t.co", 8),
            ("mail.google.com", 10), ("forum.example", 5), ("www.retailmenot.com", 2),
            ("slickdeals.net", 1.5), ("coupons-4u.example", 2.5)]  # fmt: skip
MATCHED = [([], 880), (["ip"], 45), (["ip", "ip_ua"], 20), (["visitor"], 15),
           (["address"], 15), (["payment"], 5), (["ip", "ip_ua", "visitor"], 12),
           (["address", "ip", "payment"], 8)]  # fmt: skip


def _picker(rng: random.Random, table: list[tuple]):
    values = [v for v, _ in table]
    cum = list(itertools.accumulate(w for _, w in table))
    return lambda: rng.choices(values, cum_weights=cum)[0]


def _timeline(rng: random.Random, advocates: int, count: int, start: float, span: float):
    """(time, advocate index) of `count` referrals, sorted by time, and a function drawing
    an advocate: a few bring most referrals, and they come in bursts (a post shared,
    minutes apart)."""
    weights = list(itertools.accumulate(1 / (k + 1) ** 0.5 for k in range(advocates)))

    def draw() -> int:
        return rng.choices(range(advocates), cum_weights=weights)[0]

    events: list[tuple[float, int]] = []
    while len(events) < count:
        advocate, at = draw(), start + rng.random() * span
        for _ in range(1 if rng.random() < 0.9 else rng.randint(2, 8)):
            events.append((min(at, start + span), advocate))
            at += rng.expovariate(1 / 420)
    events = events[:count]
    events.sort()
    return events, draw


def _friend_email(rng: random.Random, n: int, domain: str, advocate: str, raw: str) -> str:
    r = rng.random()
    if r < 0.004:  # one edit from the advocate's (normalised) address
        i = len(advocate) // 3
        return advocate[:i] + ("y" if advocate[i] == "x" else "x") + advocate[i + 1 :]
    if r < 0.007:
        return raw  # the advocate themselves: eligibility says self_referral
    return f"shopper{n}.{rng.randrange(1000)}@{domain}"


def _ip_events(rng: random.Random) -> int | None:
    r = rng.random()
    if r < 0.02:
        return None  # no IP sent
    if r < 0.05:
        return rng.randint(4, 40)  # a shared or abused address
    return 2 if r > 0.85 else 1


def _settled(action: str, failure: str | None, age_days: float, rng: random.Random):
    """(status, rejection reason) as `_settle` and, later, a reviewer left the referral."""
    if failure:
        return "rejected", failure
    if action == "block":
        return "rejected", "fraud_blocked"
    if action == "review" and age_days > 14:
        return ("converted", None) if rng.random() < 0.85 else ("rejected", "review_rejected")
    return ("in_review" if action == "review" else "converted"), None


def plan_history(advocates: list[tuple], merchant_id: int, program_id: int, template: dict,
                 now: datetime) -> History:  # fmt: skip
    """BACKTEST_REFERRALS decided referrals of `advocates` ((id, customer_id, email)) over
    the last BACKTEST_DAYS, each decided under the default policy, in time order."""
    import msgspec

    from referral.fraud.policy import FraudPolicy, RejectedReferrals
    from referral.fraud.repo import FRAUD_REJECTIONS
    from referral.fraud.rules import Compiled, Decision, Features, Identity, evaluate
    from referral.lib.emails import normalise_email
    from referral.referrals.schemas import Attribution

    rng = random.Random("backtest")
    current = Compiled(FraudPolicy())
    candidate = Compiled(msgspec.convert(candidate_policy(), FraudPolicy))
    window = RejectedReferrals().window_days * 86400
    domain, referer, matched = (_picker(rng, t) for t in (FRIEND_DOMAINS, REFERERS, MATCHED))
    checks = {None: template["checks"]}
    for failing in ("not_new_customer", "self_referral"):
        checks[failing] = [
            dict(c, passed=False, detail="failed") if c["name"] == failing else c
            for c in template["checks"]
        ]
    encode = msgspec.json.encode
    start = (now - timedelta(days=BACKTEST_DAYS)).timestamp()
    events, draw = _timeline(
        rng, len(advocates), BACKTEST_REFERRALS, start, BACKTEST_DAYS * 86400 - 60
    )
    who_of = [(pk, customer, normalise_email(email), email) for pk, customer, email in advocates]
    # Per advocate, the times of their referrals so far (the velocity counts include the one
    # being decided, as the engine's do) and of their rejections that count against them.
    seen_at: dict[int, list[float]] = defaultdict(list)
    rejected_at: dict[int, list[float]] = defaultdict(list)
    suspended: set[int] = set()
    out = History()
    for n, (at, a) in enumerate(events):
        while a in suspended:  # their codes are disabled: the friend came through another
            a = draw()
        advocate_pk, advocate_customer, advocate_email, raw_email = who_of[a]
        times, prior = seen_at[a], rejected_at[a]
        times.append(at)
        kind = rng.random()
        source = "link" if kind < 0.6 else "code" if kind < 0.92 else "signup_email"
        email = _friend_email(rng, n, domain(), advocate_email, raw_email)
        friend_email = normalise_email(email)
        # A guest (no customer id) is keyed by email: only the drawn addresses are unique.
        guest = rng.random() < 0.1 and email.startswith("shopper")
        customer = None if guest else f"bt-cus-{n}"
        who = Identity(
            friend_customer_id=customer,
            friend_email=friend_email,
            advocate_customer_id=advocate_customer,
            advocate_email=advocate_email,
        )
        seconds = int(math.exp(rng.gauss(math.log(900), 2.2))) if source == "link" else None
        features = Features(
            event="signup" if source == "signup_email" else "order",
            matched=matched(),
            new_customer=rng.random() >= 0.03,
            disposable_domain=email.endswith("@" + DISPOSABLE),
            advocate_referrals_hour=len(times) - bisect.bisect_right(times, at - 3600),
            advocate_referrals_day=len(times) - bisect.bisect_right(times, at - 86400),
            ip_events_day=_ip_events(rng),
            referer_host=referer() if source == "link" else None,
            reciprocal=rng.random() < 0.003,
            seconds_since_click=seconds,
            advocate_rejected=len(prior) - bisect.bisect_right(prior, at - window),
            ip_blocklisted="203.0.113.0/24" if rng.random() < 0.001 else None,
        )
        failure = None
        if friend_email == advocate_email:
            failure = "self_referral"
        elif not features.new_customer:
            failure = "not_new_customer"
        started = time.perf_counter()
        made = evaluate(features, who, current, version=1)
        would = evaluate(features, who, candidate).action
        out.evaluate_seconds += time.perf_counter() - started
        out.evaluations += 2
        fraud: Decision | None = made
        if at < start + 3 * 86400:  # decided before the engine stored features
            made = Decision("allow", 0, [], 0, None)
            fraud = None if rng.random() < 0.5 else made
        status, reason = _settled(made.action, failure, (now.timestamp() - at) / 86400, rng)
        if reason in FRAUD_REJECTIONS:
            prior.append(at)
        if any(r.rule == "rejected_referrals" and r.action != "flag" for r in made.reasons):
            suspended.add(a)
        out.referrals += 1
        if failure:
            out.ineligible += 1
        elif fraud is None or fraud.features is None:
            out.without_features += 1
        else:
            out.replayed += 1
            out.stored[made.action] += 1
            if would != made.action:
                out.changes[made.action, would] += 1
        decision = encode({"checks": checks[failure], "fraud": fraud} if fraud is not None else
                          {"checks": checks[failure]}).decode()  # fmt: skip
        out.decision_bytes += len(decision)
        created = datetime.fromtimestamp(at, UTC)
        attribution = Attribution(
            path=source,
            code=f"BT{a:05d}" if source == "code" else None,
            visitor_id=f"v{n:x}" if source == "link" else None,
            clicked_at=created - timedelta(seconds=seconds) if seconds is not None else None,
            referer_host=features.referer_host,
        )
        out.records.append((
            merchant_id, program_id, advocate_pk, customer or friend_email, customer,
            friend_email, status, source, encode(attribution).decode(), decision, reason,
            created if source == "signup_email" else None,
            created if status in ("converted", "in_review") else None, created,
        ))  # fmt: skip
    return out


SEED_ADVOCATES = """
INSERT INTO advocates (merchant_id, program_id, customer_id, email, name, created_at)
SELECT $1, $2, 'bt-adv-' || g,
       CASE g % 4 WHEN 0 THEN 'bt.advocate.' || g || '@gmail.com'
                  WHEN 1 THEN 'BT.Advocate' || g || '+shop@outlook.com'
                  ELSE 'advocate' || g || '@example.net' END,
       'Advocate ' || g, $3::timestamptz
FROM generate_series(0, $4::int - 1) g
"""


async def seed_history(url: str, program_pk: int, template: dict) -> tuple[History, list]:
    """The backtest program's advocates and referrals: (the plan, [(step, seconds)])."""
    import asyncpg

    steps = []
    mark = time.perf_counter()

    def step(name: str) -> None:
        nonlocal mark
        steps.append((name, time.perf_counter() - mark))
        mark = time.perf_counter()

    conn = await asyncpg.connect(url)
    try:
        merchant_id = await conn.fetchval(
            "SELECT merchant_id FROM programs WHERE id = $1", program_pk
        )
        now = datetime.now(UTC)
        created = now - timedelta(days=BACKTEST_DAYS + 30)
        await conn.execute(SEED_ADVOCATES, merchant_id, program_pk, created, BACKTEST_ADVOCATES)
        rows = await conn.fetch(
            "SELECT id, customer_id, email FROM advocates WHERE program_id = $1 ORDER BY id",
            program_pk,
        )
        step(f"{len(rows):,} advocates (INSERT ... SELECT)")
        history = plan_history([tuple(r) for r in rows], merchant_id, program_pk, template, now)
        step(f"{history.referrals:,} referrals drawn and decided (Python)")
        await conn.copy_records_to_table("referrals", records=history.records, columns=COLUMNS)
        step(f"COPY into referrals ({history.decision_bytes / 1e6:.0f} MB of decisions)")
        await conn.execute("ANALYZE advocates, referrals")
        step("ANALYZE")
        history.records = []
        return history, steps
    finally:
        await conn.close()


async def read_replay_rows(url: str, program_pk: int, start: datetime, end: datetime):
    """The backtest's own query through a cursor, as it reads it: (seconds, rows)."""
    import asyncpg

    from referral.fraud import repo

    conn = await asyncpg.connect(url)
    try:
        merchant_id = await conn.fetchval(
            "SELECT merchant_id FROM programs WHERE id = $1", program_pk
        )
        rows = 0
        async with conn.transaction():
            started = time.perf_counter()
            async for _ in repo.replay(conn, merchant_id, program_pk, start, end):
                rows += 1
            return time.perf_counter() - started, rows
    finally:
        await conn.close()


# =========================================================================== database checks

MIX = """
SELECT (decision #>> '{fraud,policy_version}')::int AS version,
       decision #>> '{fraud,action}' AS action, count(*) AS n
FROM referrals WHERE program_id = $1 AND status <> 'pending' GROUP BY 1, 2
"""
FIRED = """
SELECT (r.decision #>> '{fraud,policy_version}')::int AS version, x ->> 'rule' AS rule,
       count(*) AS n
FROM referrals r, jsonb_array_elements(r.decision #> '{fraud,reasons}') x
WHERE r.program_id = $1 GROUP BY 1, 2
"""
TEMPLATE = """
SELECT decision::text FROM referrals WHERE program_id = $1
  AND jsonb_typeof(decision #> '{fraud,features}') = 'object'
ORDER BY jsonb_array_length(decision #> '{fraud,reasons}') DESC, id LIMIT 1
"""
LATENCY_CHECKS = {
    "orders": "SELECT count(*) FROM orders",
    "decided": "SELECT count(*) FROM referrals WHERE program_id = $1 AND status <> 'pending'",
    "without_features": """
        SELECT count(*) FROM referrals WHERE program_id = $1 AND status <> 'pending'
          AND jsonb_typeof(decision #> '{fraud,features}') IS DISTINCT FROM 'object'""",
    "off_not_allowed": """
        SELECT count(*) FROM referrals WHERE program_id = $1
          AND (decision #>> '{fraud,policy_version}')::int = ANY($2::int[])
          AND (decision #>> '{fraud,action}' <> 'allow'
               OR jsonb_array_length(decision #> '{fraud,reasons}') <> 0)""",
    # Status from eligibility (any other rejection reason) and the decision.
    "bad_status": """
        SELECT count(*) FROM referrals WHERE program_id = $1 AND status <> 'pending' AND NOT (
          status = 'rejected' AND rejection_reason NOT IN ('fraud_blocked', 'review_rejected')
          OR decision #>> '{fraud,action}' = 'allow' AND status = 'converted'
          OR decision #>> '{fraud,action}' = 'review' AND status = 'in_review'
          OR decision #>> '{fraud,action}' = 'block' AND status = 'rejected'
             AND rejection_reason = 'fraud_blocked')""",
    "bad_rewards": """
        SELECT count(*) FROM referrals r WHERE r.program_id = $1 AND r.status <> 'pending' AND (
          (SELECT count(*) FROM rewards w WHERE w.referral_id = r.id
             AND (w.status = 'in_review') = (r.status = 'in_review'))
          <> CASE WHEN r.status IN ('converted', 'in_review') THEN 2 ELSE 0 END
          OR (SELECT count(DISTINCT side) FROM rewards w WHERE w.referral_id = r.id)
          <> CASE WHEN r.status IN ('converted', 'in_review') THEN 2 ELSE 0 END)""",
}


async def query(url: str, sql: str, *args: object) -> list:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def check_latency_program(url: str, program_pk: int, off_versions: list[int]) -> dict:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        out: dict = {"order_ids": {r[0] for r in await conn.fetch("SELECT order_id FROM orders")}}
        for name, sql in LATENCY_CHECKS.items():
            args = (
                [program_pk, off_versions] if "$2" in sql else [program_pk] if "$1" in sql else []
            )
            out[name] = await conn.fetchval(sql, *args)
        out["mix"] = [tuple(r) for r in await conn.fetch(MIX, program_pk)]
        out["fired"] = [tuple(r) for r in await conn.fetch(FIRED, program_pk)]
        return out
    finally:
        await conn.close()


def same_shape(template: dict) -> bool:
    """A decision built here has the keys of one `_settle` stored."""
    import msgspec

    from referral.fraud.rules import Decision, Features

    built = msgspec.to_builtins(Decision("allow", 0, [], 1, Features()))
    fraud = template.get("fraud") or {}
    return (
        set(template) == {"checks", "fraud"}
        and set(fraud) == set(built)
        and set(fraud.get("features") or {}) == set(built["features"])
    )


# =========================================================================== phases


def pct(values: list[float]) -> dict[str, float]:
    return checkout._percentiles(values)


def history(plan: dict) -> list[str]:
    """The advocates' own orders (their signals), then friends' orders; ANALYZE."""
    created = []
    for kind, count in (("advocates", len(plan["codes"])), ("orders", HISTORY)):
        got, _ = send(dict(plan, kind=kind, rate=HISTORY_RATE, count=count, tag=kind), None)
        created += got["created"]
    return created


def order_latency(api: Api, program_id: str, plan: dict, cpu: checkout.CpuMeter):
    """Orders under each policy in alternating segments: ({label: Load}, order ids)."""
    loads = {OFF: Load(OFF), DEFAULT: Load(DEFAULT)}
    created = []
    for r in range(ROUNDS):
        for label in (OFF, DEFAULT) if r % 2 == 0 else (DEFAULT, OFF):
            body = off_policy() if label == OFF else {}
            put = api.call("PUT", f"/v1/programs/{program_id}/fraud-policy", body)
            loads[label].versions.append(put["version"])
            segment = dict(plan, kind="orders", rate=RATE, count=int(RATE * SEGMENT),
                           warmup=int(RATE * WARMUP), tag=f"s{r}-{label[:3]}")  # fmt: skip
            got, used = send(segment, cpu)
            created += got["created"]
            loads[label].add(got, used)
            p = pct(got["latencies"])
            print(
                f"   segment {r + 1} {label:<15} p50 {p['p50']:6.2f}  p99 {p['p99']:7.2f}  max "
                f"{p['max']:7.2f} ms  errors {sum(s != '201' for s in got['statuses'])}",
                flush=True,
            )
    return loads, created


def backtest(api: Api, program_id: str, pid: int, policy: dict, start: datetime,
             end: datetime) -> tuple[dict, float, PeakRss]:  # fmt: skip
    """One backtest over HTTP: (its answer, wall seconds, the worker's peak RSS)."""
    body = {"policy": policy, "created_from": start.isoformat(),
            "created_before": end.isoformat(), "samples": 10}  # fmt: skip
    with PeakRss(pid) as rss:
        started = time.perf_counter()
        result = api.call("POST", f"/v1/programs/{program_id}/fraud-policy/backtest", body)
        wall = time.perf_counter() - started
    return result, wall, rss


def backtests(api: Api, program_id: str, pid: int, plan: dict, start: datetime,
              end: datetime) -> tuple[dict, Load, list[str]]:  # fmt: skip
    """The candidate twice, the current policy, and the candidate with orders coming in:
    ({what: (answer, wall, rss)}, those orders, their ids)."""
    current = api.call("GET", f"/v1/programs/{program_id}/fraud-policy")["policy"]
    runs = {
        what: backtest(api, program_id, pid, policy, start, end)
        for what, policy in (
            ("candidate", candidate_policy()),
            ("candidate again", candidate_policy()),
            ("current policy", current),
        )
    }
    # Orders from 1 s before the backtest starts until about 2 s after it ends (as long as
    # the quiet runs took): the checkout calls a deployment serves meanwhile.
    seconds = max(wall for _, wall, _ in runs.values()) + 3.0
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        orders = pool.submit(
            send,
            dict(plan, kind="orders", rate=RATE, count=int(RATE * seconds), tag="during"),
            None,
        )
        time.sleep(1.0)
        runs["with orders"] = backtest(api, program_id, pid, candidate_policy(), start, end)
        got, _ = orders.result()
    during = Load("orders meanwhile")
    during.add(got, (0.0, 0.0, 0.0))
    return runs, during, got["created"]


# =========================================================================== main


def main() -> int:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (ROOT / ".referral").mkdir(exist_ok=True)
    note_load_average()
    began = time.monotonic()
    with (
        fresh_database("bench-fraud") as db,
        tempfile.TemporaryDirectory(prefix="bench-fraud-", dir=ROOT / ".referral") as tmp,
    ):
        env = app_env(db.url, base, "warning")
        started = time.monotonic()
        key, codes = asyncio.run(checkout.seed(db.url, env, ADVOCATES))
        print(
            f"seeded 1 merchant, 1 program, {len(codes):,} advocates "
            f"in {time.monotonic() - started:.1f} s"
        )
        log_path = Path(tmp) / "server.log"
        plan = {"host": urlsplit(base).netloc, "key": key, "codes": codes, "warmup": 0}
        with app_server(env, port, log_path) as proc:
            api = Api(base, key)
            program = api.call("GET", "/v1/programs")["data"][0]
            program_pk = asyncio.run(query(db.url, "SELECT id FROM programs"))[0][0]

            started = time.monotonic()
            created = history(plan)
            asyncio.run(execute_sql(db.url, "ANALYZE"))
            print(
                f"history: {len(codes):,} advocates' own orders, then {HISTORY:,} orders (half "
                f"referred) through the API at {HISTORY_RATE:g}/s, in "
                f"{time.monotonic() - started:.0f} s; then ANALYZE"
            )

            print(
                f"\n-- POST /v1/orders at {RATE:g}/s, open-loop, latency (ms) from each "
                f"request's due time: {ROUNDS} segments of {SEGMENT:g} s per policy (off, on, "
                f"on, off, ...), each after a {WARMUP:g} s warm-up"
            )
            cpu = checkout.CpuMeter(proc.pid, db.postmaster_pid)
            loads, more = order_latency(api, program["id"], plan, cpu)
            created += more
            runs = {label: load.run() for label, load in loads.items()}
            for run in runs.values():
                print(checkout.describe(run))

            started = time.monotonic()
            timings, outcomes = asyncio.run(
                time_decide(db.url, env, program_pk, {DEFAULT: {}, OFF: off_policy()})
            )
            print(
                f"\n-- decide() in process: {DECIDE_CALLS:,} calls per policy (alternating), "
                f"each in a rolled-back transaction ({time.monotonic() - started:.1f} s)"
            )
            for label, values in timings.items():
                p = pct(values)
                print(
                    f"   {label:<15} p50 {p['p50']:.3f}  p90 {p['p90']:.3f}  p99 {p['p99']:.3f}"
                    f"  max {p['max']:.2f} ms   outcomes "
                    + ", ".join(f"{n} {a}" for a, n in sorted(outcomes[label].items()))
                )

            print(f"\n-- backtest over {BACKTEST_REFERRALS:,} seeded referrals")
            template = json.loads(asyncio.run(query(db.url, TEMPLATE, program_pk))[0][0])
            rewards = {"advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
                       "friend": {"kind": "coupon", "amounts": {"EUR": 1000}}}  # fmt: skip
            bt_program = api.call(
                "POST",
                "/v1/programs",
                {
                    "name": "Bench: backtest",
                    "landing_url": checkout.LANDING_URL,
                    "rewards": rewards,
                },
                expect=201,
            )
            bt_pk = asyncio.run(query(db.url, "SELECT max(id) FROM programs"))[0][0]
            seeded, steps = asyncio.run(seed_history(db.url, bt_pk, template))
            for name, seconds in steps:
                print(f"   seed: {name:<58} {seconds:5.1f} s")
            end = datetime.now(UTC) + timedelta(hours=1)
            start = end - timedelta(days=BACKTEST_DAYS + 2)
            results, during, more = backtests(
                api, bt_program["id"], worker_pid(proc), plan, start, end
            )
            created += more
            read = asyncio.run(read_replay_rows(db.url, bt_pk, start, end))
            for what, (result, wall, rss) in results.items():
                print(
                    f"   {what:<16} wall {wall:5.2f} s  elapsed_ms {result['elapsed_ms']:6,}"
                    f"  referrals {result['referrals']:,}  replayed {result['replayed']:,}"
                    f"  changed {result['changed']:,}  worker RSS {rss.before_kb / 1024:.0f}"
                    f" -> peak {rss.peak_kb / 1024:.0f} MB"
                )
            print(
                f"   its query alone, through a cursor: {read[0]:.2f} s for {read[1]:,} rows; "
                f"evaluate() here: {seeded.evaluate_seconds / seeded.evaluations * 1e6:.1f} µs "
                "a decision"
            )
            api.close()
            stop_server(proc)
        errors_logged = logged_errors(log_path)
        facts = asyncio.run(check_latency_program(db.url, program_pk, loads[OFF].versions))
    print(f"\nwhole run: {time.monotonic() - began:.0f} s")
    facts.update(template=template, created=created, versions=versions_of(program, loads))
    return report(runs, during, timings, outcomes, facts, seeded, results, errors_logged)


def versions_of(program: dict, loads: dict[str, Load]) -> dict[int, str]:
    """Policy version -> the phase that ran under it."""
    versions = {program["fraud_policy_version"]: "history"}
    for label, load in loads.items():
        versions.update(dict.fromkeys(load.versions, label))
    return versions


def report(runs, during, timings, outcomes, facts, seeded, results, errors_logged) -> int:
    off, on = runs[OFF], runs[DEFAULT]
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    mix: dict[str, Counter] = defaultdict(Counter)
    fired: dict[str, Counter] = defaultdict(Counter)
    for version, action, n in facts["mix"]:
        mix[facts["versions"].get(version, "?")][action] += n
    for version, rule, n in facts["fired"]:
        fired[facts["versions"].get(version, "?")][rule] += n
    print("decisions the order calls stored, by the policy in force:")
    for label in ("history", OFF, DEFAULT):
        total = sum(mix[label].values())
        shares = (f"{a} {mix[label][a]:,} ({mix[label][a] / max(total, 1):.0%})"
                  for a in ("allow", "review", "block"))  # fmt: skip
        rules = ", ".join(f"{r} {n}" for r, n in fired[label].most_common())
        print(
            f"   {label:<15} {total:6,}: " + ", ".join(shares) + (f"; fired: {rules}" * bool(rules))
        )

    candidate, again, current, loaded = (r[0] for r in results.values())
    quiet = [results[k][1] for k in ("candidate", "candidate again", "current policy")]
    d_on, d_off = pct(timings[DEFAULT]), pct(timings[OFF])
    app = on.cpu_app / on.count - off.cpu_app / off.count
    db = on.cpu_db / on.count - off.cpu_db / off.count
    meanwhile = during.run().latency
    lo, ln = off.latency, on.latency
    print(
        "\nsummary\n"
        f"   order p50 / p99, rules off      {lo['p50']:6.2f} / {lo['p99']:6.2f} ms\n"
        f"   order p50 / p99, default policy {ln['p50']:6.2f} / {ln['p99']:6.2f} ms\n"
        f"   added by the default policy     p99 {ln['p99'] - lo['p99']:+.2f} ms, "
        f"p50 {ln['p50'] - lo['p50']:+.2f} ms; CPU per order {app * 1e6:+.0f} µs "
        f"app, {db * 1e6:+.0f} µs PostgreSQL\n"
        f"   decide() in process p50 / p99   {d_on['p50']:.3f} / {d_on['p99']:.3f} ms "
        f"(rules off {d_off['p50']:.3f} / {d_off['p99']:.3f} ms)\n"
        f"   backtest, {candidate['referrals']:,} referrals   wall "
        + " / ".join(f"{w:.2f}" for w in quiet)
        + " s, elapsed_ms "
        + " / ".join(str(r[0]["elapsed_ms"]) for k, r in results.items() if k != "with orders")
        + f"; peak worker RSS {max(r[2].peak_kb for r in results.values()) / 1024:.0f} MB\n"
        f"   backtest with orders at {RATE:g}/s  wall {results['with orders'][1]:.2f} s; those "
        f"orders p50 {meanwhile['p50']:.2f} / p99 {meanwhile['p99']:.2f} / max "
        f"{meanwhile['max']:.0f} ms\n"
        f"   candidate changes               {candidate['changed']:,} of "
        f"{candidate['replayed']:,}: "
        + ", ".join(f"{c['was']}->{c['would_be']} {c['count']:,}" for c in candidate["changes"])
        + "\n   seeded stored decisions         "
        + ", ".join(f"{a} {seeded.stored[a]:,}" for a in ("allow", "review", "block"))
        + f"; without features {seeded.without_features:,}, ineligible {seeded.ineligible:,}"
    )

    def counts(r: dict) -> tuple[int, int, int]:
        return r["replayed"], r["without_features"], r["ineligible"]

    def answer(r: dict) -> dict:
        return {k: v for k, v in r.items() if k != "elapsed_ms"}

    created = facts["created"]
    checks = [
        (
            facts["orders"] == len(created) and facts["order_ids"] == set(created),
            f"orders rows {facts['orders']:,} = 201 answers {len(created):,} (same order ids)",
        ),
        (
            facts["off_not_allowed"] == 0 and mix[OFF]["allow"] > 0,
            "every referral decided with all rules off allowed, no reasons "
            f"({facts['off_not_allowed']} not)",
        ),
        (
            facts["without_features"] == 0 and facts["decided"] > 0,
            f"every decided referral stored its features ({facts['decided']:,} decided, "
            f"{facts['without_features']} without)",
        ),
        (
            facts["bad_status"] == 0,
            f"status follows eligibility and the decision ({facts['bad_status']} off)",
        ),
        (
            facts["bad_rewards"] == 0,
            "one reward per side for converted and in-review referrals (held in review), none "
            f"for rejected ({facts['bad_rewards']} off)",
        ),
        (
            set(outcomes[OFF]) == {"allow"},
            "decide() with every rule off allows all; default policy: "
            + ", ".join(f"{n} {a}" for a, n in sorted(outcomes[DEFAULT].items())),
        ),
        (
            same_shape(facts["template"]),
            "seeded decisions have the keys of a stored one (checks, fraud, features)",
        ),
        (
            candidate["referrals"] == BACKTEST_REFERRALS == seeded.referrals
            and sum(counts(candidate)) == candidate["referrals"]
            and counts(candidate) == (seeded.replayed, seeded.without_features, seeded.ineligible),
            f"backtest: replayed {candidate['replayed']:,} + without features "
            f"{candidate['without_features']:,} + ineligible {candidate['ineligible']:,} = "
            f"referrals {candidate['referrals']:,}, as seeded",
        ),
        (
            changes_of(candidate) == seeded.changes and candidate["changed"] > 0,
            f"candidate changes {candidate['changed']:,} = local replay "
            f"{sum(seeded.changes.values()):,}, direction by direction",
        ),
        (
            answer(again) == answer(candidate) == answer(loaded),
            "the candidate's three runs answer alike",
        ),
        (
            current["changed"] == 0 and counts(current) == counts(candidate),
            f"the current policy changes {current['changed']} of {current['replayed']:,}",
        ),
        (not errors_logged, f"no errors in the server log ({len(errors_logged)} lines)"),
    ]
    print("correctness: " + ("PASS" if all(ok for ok, _ in checks) else "FAIL"))
    for ok, text in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {text}")
    for line in errors_logged[:3]:
        print(f"  server log: {checkout._log_summary(line)}")
    targets = [
        (
            on.latency["p99"] < TARGET_P99_MS and not on.errors,
            f"order p99 with the default policy {on.latency['p99']:.1f} ms < "
            f"{TARGET_P99_MS:g} ms at {RATE:g}/s",
        ),
        (
            max(quiet) < TARGET_BACKTEST_S,
            f"backtest of {candidate['referrals']:,} referrals in {max(quiet):.1f} s < "
            f"{TARGET_BACKTEST_S:g} s",
        ),
        (
            meanwhile["p99"] < TARGET_P99_MS and not during.run().errors,
            f"orders during that backtest p99 {meanwhile['p99']:.1f} ms < {TARGET_P99_MS:g} ms",
        ),
    ]
    print("targets: " + "; ".join(f"{t} {'met' if ok else 'MISSED'}" for ok, t in targets))
    return 0 if all(ok for ok, _ in checks) else 1


def changes_of(result: dict) -> Counter:
    return Counter({(c["was"], c["would_be"]): c["count"] for c in result["changes"]})


if __name__ == "__main__":
    if sys.argv[1:] == ["--loadgen"]:
        loadgen_main()
        sys.exit(0)
    run_main("bench-fraud", main)
