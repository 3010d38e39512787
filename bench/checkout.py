"""Benchmark of the checkout calls at a fixed arrival rate: quote and order, in one run.

    make bench-checkout        (or: .venv/bin/python bench/checkout.py)

Starts a PostgreSQL (embedded, in `.referral/bench-checkout-pg-*`, removed afterwards; or a
fresh database on the server named by BENCH_DATABASE_URL, dropped afterwards), migrates,
seeds a merchant with a secret key, a program (advocate: 1000 EUR cash, friend: 1000 EUR
coupon, 30-day hold) and 500 advocates through the services, and serves `referral.app:asgi`
with granian (1 worker, uvloop, LOG_FORMAT=json, LOG_LEVEL=warning) as `referral serve` does.

A load generator in a separate process (a small HTTP/1.1 keep-alive client on uvloop, so
that it costs the shared 2 cores as little as possible) sends requests OPEN-LOOP: request i
is due at start + i/rate whatever happened to the ones before, and its latency is measured
from that due time, so queueing shows (no coordinated omission). Connections are opened as
needed (up to BENCH_MAX_CONNECTIONS) and reused.

1. `POST /v1/checkout/quote` at BENCH_RATE (200/s) for BENCH_DURATION (20 s);
2. `POST /v1/orders` at the same rate: every order a new order id and a new customer, half
   of them with the code of a random advocate (a referred friend's first order: both
   rewards), half unreferred;
3. orders stepped up through BENCH_STEPS until p99 exceeds BENCH_MAX_P99_MS (100 ms), a
   request fails or the answered rate falls behind the offered one: the last step that held
   is the highest sustained rate;
4. 50 concurrent copies of one referred order (same order id and body).

Before these, BENCH_HISTORY (5,000) orders go through the API at 250/s (half referred),
then `ANALYZE`: a running shop has history and table statistics. (Autoanalyze would get
there within a minute or so; until then, on a fresh database, PostgreSQL plans some of the
order path's reads for empty tables and walks whole indexes: BENCH_ANALYZE=0 shows that.)
Each measured run follows a warm-up of BENCH_WARMUP seconds at its rate (not counted).
Then the server is stopped with SIGTERM and the database checked: one `orders` row per 201
answered (and the same order ids), every referral by code converted with exactly one
advocate and one friend reward (the friend's with one coupon), no other rewards, and the
duplicates made one order and one reward per side.

The program runs the default fraud policy with the advocate-velocity rule off (this load
gives each advocate tens of referrals an hour, which that rule holds for review), so every
referral by code must convert; BENCH_VELOCITY=on keeps the rule on, and then every referral
must convert except exactly those whose stored decision counted more than the rule's
limits, which must be in review with it among their reasons.

Environment: BENCH_RATE, BENCH_DURATION, BENCH_WARMUP (2), BENCH_STEPS
("200,300,400,600,800,1000,1200,1600,2000"), BENCH_STEP_DURATION (10), BENCH_MAX_P99_MS,
BENCH_ADVOCATES (500), BENCH_HISTORY, BENCH_ANALYZE, BENCH_MAX_CONNECTIONS (256),
BENCH_DATABASE_URL, BENCH_VELOCITY (off), BENCH_WORKERS (1: granian's --workers),
BENCH_POINTS (off; on: the program has points rules and every order earns points),
BENCH_PROFILE=1 (afterwards, one more order run
at BENCH_RATE under py-spy, if installed, into bench/results/BENCH_PROFILE_FILE, default
checkout-orders.svg; a .txt name gives collapsed stacks). Exit status: 0 when the
correctness checks pass, 1 when one fails, 2 when the benchmark cannot run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

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
    proc_files,
    run_main,
    stop_server,
)

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")  # platformdirs, as root

RATE = float(os.environ.get("BENCH_RATE", "200"))
# Server worker processes (granian --workers): more than one shares the listening socket,
# as `WORKERS=2 referral serve` runs it.
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
DURATION = float(os.environ.get("BENCH_DURATION", "20"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "2"))
STEPS = [
    float(s)
    for s in os.environ.get("BENCH_STEPS", "200,300,400,600,800,1000,1200,1600,2000").split(",")
]
STEP_DURATION = float(os.environ.get("BENCH_STEP_DURATION", "10"))
MAX_P99_MS = float(os.environ.get("BENCH_MAX_P99_MS", "100"))
ADVOCATES = int(os.environ.get("BENCH_ADVOCATES", "500"))
HISTORY = int(os.environ.get("BENCH_HISTORY", "5000"))
ANALYZE = os.environ.get("BENCH_ANALYZE", "1") != "0"
MAX_CONNECTIONS = int(os.environ.get("BENCH_MAX_CONNECTIONS", "256"))
# The default fraud policy, with its advocate-velocity rule off unless BENCH_VELOCITY=on:
# this load gives each advocate tens of referrals an hour (every run's orders share the
# BENCH_ADVOCATES), which that rule rightly holds for review (5 an hour, 20 a day).
VELOCITY = os.environ.get("BENCH_VELOCITY", "off")
# BENCH_POINTS=on: the program has points rules, so every order earns points (one per
# euro) in its own transaction, and a referred friend's first order earns both parties some.
POINTS = os.environ.get("BENCH_POINTS", "off")
REQUEST_TIMEOUT = 30.0
DUPLICATES = 50
REFERRED_SHARE = 0.5
TARGET_P99_MS = 25.0  # the product target: checkout calls p99 < 25 ms at 200 requests/s
LANDING_URL = "https://shop.example/welcome?utm_source=referral"
USER_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)


# =========================================================================== load generator
# Runs in its own process (`checkout.py --loadgen`): a plan as JSON on stdin, the result as
# JSON on stdout. Requests are built before the clock starts.


def _order_body(tag: str, i: int, code: str | None, occurred_at: str) -> dict:
    friend = f"{tag}-{i}"
    body = {
        "order_id": f"ord-{tag}-{i}",
        "customer_id": f"cus-{friend}",
        "email": f"friend.{friend}@example.com",
        "subtotal": 5000,
        "total": 5900,
        "currency": "EUR",
        "occurred_at": occurred_at,
        "ip": f"10.{i % 250}.{(i // 250) % 250}.{i % 200 + 1}",
        "user_agent": USER_AGENT,
        "visitor_id": f"v{friend}",
        "line_items": [{"sku": "SKU-1", "quantity": 2, "amount": 2500}],
    }
    if code is not None:
        body["codes"] = [code]
    return body


def _quote_body(tag: str, i: int, code: str | None) -> dict:
    body = {
        "customer_id": f"cus-q-{tag}-{i}",
        "email": f"shopper.{tag}-{i}@example.com",
        "subtotal": 5000,
        "currency": "EUR",
        "ip": f"10.{i % 250}.{(i // 250) % 250}.{i % 200 + 1}",
        "user_agent": USER_AGENT,
    }
    if code is not None:
        body["codes"] = [code]
    return body


def build_requests(plan: dict, count: int, tag: str) -> tuple[list[bytes], list[str | None]]:
    """(raw HTTP requests, the order id each creates or None)."""
    rng = random.Random(f"{plan['seed']}-{tag}")
    host = plan["host"]
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    raws, order_ids = [], []
    for i in range(count):
        if plan["kind"] == "duplicate":
            body, path = _order_body(tag, 0, plan["codes"][0], now), "/v1/orders"
        else:
            code = rng.choice(plan["codes"]) if rng.random() < REFERRED_SHARE else None
            if plan["kind"] == "quote":
                body, path = _quote_body(tag, i, code), "/v1/checkout/quote"
            else:
                body, path = _order_body(tag, i, code, now), "/v1/orders"
        payload = json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {plan['key']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        raws.append(head.encode() + payload)
        order_ids.append(body.get("order_id"))
    return raws, order_ids


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.reusable = True

    async def roundtrip(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                self.reusable = False
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.reusable = False
        self.writer.close()


class Pool:
    """Keep-alive connections, opened on demand up to `limit`; a request waits for one when
    all are busy (its latency still counts from its due time)."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: list[Connection] = []
        self.opened = 0
        self.peak = 0
        self.waiters: list[asyncio.Future] = []

    async def get(self) -> Connection:
        if self.idle:
            return self.idle.pop()
        if self.opened < self.limit:
            self.opened += 1
            self.peak = max(self.peak, self.opened)
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except BaseException:
                self.opened -= 1
                raise
            writer.transport.set_write_buffer_limits(0)
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return Connection(reader, writer)
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return await waiter

    def put(self, conn: Connection) -> None:
        if not conn.reusable:
            conn.close()
            self.opened -= 1
            if self.waiters:  # a slot is free: let a waiter open a new connection
                waiter = self.waiters.pop(0)
                task = asyncio.ensure_future(self.get())
                task.add_done_callback(lambda t: _settle(waiter, t))
            return
        while self.waiters:
            waiter = self.waiters.pop(0)
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


def _settle(waiter: asyncio.Future, task: asyncio.Task) -> None:
    if waiter.done():
        return
    if task.exception() is not None:
        waiter.set_exception(task.exception())
    else:
        waiter.set_result(task.result())


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
    ordered = sorted(values)

    def rank(p: float) -> float:  # nearest rank
        return ordered[max(0, min(len(ordered) - 1, int(-(-p * len(ordered) // 1)) - 1))]

    return {
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "p999": rank(0.999),
        "max": ordered[-1],
    }


async def fire(pool: Pool, raws: list[bytes], rate: float) -> dict:
    """Send raws[i] at start + i/rate; latency in ms from that due time. (uvloop's
    `loop.time()` has millisecond resolution: the clock here is `perf_counter`.)"""
    loop = asyncio.get_running_loop()
    clock = time.perf_counter
    n = len(raws)
    statuses: list[int | str] = [0] * n
    latencies = [0.0] * n
    lags = [0.0] * n

    async def one(i: int, due: float) -> None:
        lags[i] = (clock() - due) * 1000
        conn = None
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                conn = await pool.get()
                statuses[i] = await conn.roundtrip(raws[i])
        except TimeoutError:
            statuses[i] = "timeout"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            statuses[i] = "connection"
        latencies[i] = (clock() - due) * 1000
        if conn is not None:
            if not isinstance(statuses[i], int):
                conn.close()
            pool.put(conn)

    cpu0 = time.process_time()
    start = clock() + 0.01
    tasks = []
    i = 0
    while i < n:
        now = clock()
        while i < n and start + i / rate <= now:
            tasks.append(loop.create_task(one(i, start + i / rate)))
            i += 1
        if i < n:
            await asyncio.sleep(max(0.0, start + i / rate - clock()))
    await asyncio.gather(*tasks)
    elapsed = clock() - start
    return {
        "statuses": statuses,
        "latencies": latencies,
        "elapsed": elapsed,
        "lag": _percentiles(lags),
        "cpu": time.process_time() - cpu0,
    }


async def loadgen(plan: dict) -> dict:
    pool = Pool(plan["host"].split(":")[0], int(plan["host"].split(":")[1]), plan["max_conns"])
    out: dict = {"created": [], "status": {}, "answered": 0}
    try:
        for part, seconds in (("warmup", plan["warmup"]), ("measured", plan["duration"])):
            count = int(round(plan["rate"] * seconds)) if plan["kind"] != "duplicate" else seconds
            if count <= 0:
                continue
            raws, order_ids = build_requests(plan, int(count), f"{plan['tag']}-{part[0]}")
            got = await fire(pool, raws, plan["rate"])
            out["created"] += [
                o for o, s in zip(order_ids, got["statuses"], strict=True) if s == 201
            ]
            counts = Counter(str(s) for s in got["statuses"])
            if part == "measured":
                ok = [
                    lat
                    for lat, s in zip(got["latencies"], got["statuses"], strict=True)
                    if isinstance(s, int)
                ]
                out.update(
                    status=dict(counts),
                    latency=_percentiles(got["latencies"]),
                    latency_answered=_percentiles(ok),
                    count=len(raws),
                    answered=len(ok),
                    elapsed=got["elapsed"],
                    lag=got["lag"],
                    cpu=got["cpu"],
                )
            else:
                out["warmup_status"] = dict(counts)
        out["connections"] = pool.peak
    finally:
        pool.close()
    return out


def loadgen_main() -> None:
    plan = json.loads(sys.stdin.read())
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(loadgen(plan))
    # The event loop may leave stdout non-blocking: a result larger than the pipe (64 KiB,
    # thousands of order ids) would then be cut short while the busy parent reads.
    os.set_blocking(sys.stdout.fileno(), True)
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()


# =========================================================================== orchestration


@dataclass
class Run:
    label: str
    kind: str
    rate: float
    count: int
    status: dict[str, int]
    latency: dict[str, float]
    elapsed: float
    lag: dict[str, float]
    cpu_loadgen: float
    connections: int
    created: list[str]
    warmup_status: dict[str, int]
    cpu_app: float = 0.0
    cpu_db: float = 0.0
    other_cores: float = 0.0

    @property
    def expected(self) -> str:
        return "200" if self.kind == "quote" else "201"

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.status.items() if s != self.expected)

    @property
    def answered_rate(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0


class LoadGen:
    def __init__(self, base: str, key: str, codes: list[str]) -> None:
        self.host = urlsplit(base).netloc
        self.key, self.codes = key, codes
        self.current: subprocess.Popen | None = None

    def run(
        self,
        label: str,
        kind: str,
        rate: float,
        duration: float,
        warmup: float,
        tag: str,
        cpu: CpuMeter | None = None,
    ) -> Run:
        plan = {
            "host": self.host,
            "key": self.key,
            "codes": self.codes if kind != "duplicate" else [random.choice(self.codes)],
            "kind": kind,
            "rate": rate,
            "duration": duration,
            "warmup": warmup,
            "tag": tag,
            "seed": tag,
            "max_conns": MAX_CONNECTIONS,
        }
        cmd = [sys.executable, str(Path(__file__).resolve()), "--loadgen"]
        self.current = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            cwd=ROOT,
        )
        try:
            # The app and database CPU are sampled over the whole call (warm-up included)
            # and scaled to the measured share of requests.
            before = cpu.sample() if cpu else None
            out, err = self.current.communicate(
                json.dumps(plan).encode(), timeout=warmup + duration + 120
            )
            after = cpu.sample() if cpu else None
        finally:
            if self.current.poll() is None:
                self.current.kill()
                self.current.wait()
        if self.current.returncode != 0:
            raise BenchError(f"the load generator failed: {err.decode()[-2000:]}")
        got = json.loads(out)
        run = Run(
            label=label,
            kind=kind,
            rate=rate,
            count=got["count"],
            status=got["status"],
            latency=got["latency"],
            elapsed=got["elapsed"],
            lag=got["lag"],
            cpu_loadgen=got["cpu"],
            connections=got["connections"],
            created=got["created"],
            warmup_status=got.get("warmup_status", {}),
        )
        if before and after:
            share = duration / (duration + warmup) if kind != "duplicate" else 1.0
            run.cpu_app = CpuMeter.delta(before[0], after[0]) * share
            run.cpu_db = CpuMeter.delta(before[1], after[1]) * share
            other = (after[2] - before[2]) * share - run.cpu_app - run.cpu_db - run.cpu_loadgen
            run.other_cores = max(0.0, other) / run.elapsed if run.elapsed else 0.0
        return run


class CpuMeter:
    """CPU seconds (user + system) of the server's process tree, of PostgreSQL's, and of
    the whole machine (from /proc/stat): the rest is other work sharing the cores."""

    def __init__(self, app_pid: int, db_pid: int | None) -> None:
        self.app_pid, self.db_pid = app_pid, db_pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def sample(self) -> tuple[dict[int, float], dict[int, float], float]:
        stats: dict[int, tuple[int, float]] = {}
        for pid, raw in proc_files("stat"):
            fields = raw[raw.rfind(")") + 2 :].split()
            stats[pid] = (
                int(fields[1]),
                (int(fields[11]) + int(fields[12])) / self.tick,
            )

        def tree(root: int | None) -> dict[int, float]:
            if root is None or root not in stats:
                return {}
            members, frontier = {root}, [root]
            while frontier:
                parent = frontier.pop()
                for pid, (ppid, _) in stats.items():
                    if ppid == parent and pid not in members:
                        members.add(pid)
                        frontier.append(pid)
            return {p: stats[p][1] for p in members}

        with open("/proc/stat") as f:
            jiffies = [int(x) for x in f.readline().split()[1:]]
        busy = (sum(jiffies[:8]) - jiffies[3] - jiffies[4]) / self.tick  # all but idle, iowait
        return tree(self.app_pid), tree(self.db_pid), busy

    @staticmethod
    def delta(before: dict[int, float], after: dict[int, float]) -> float:
        """CPU used in between by the processes alive at the end (short-lived PostgreSQL
        workers that exited in between are missed)."""
        return sum(used - before.get(pid, 0.0) for pid, used in after.items())


# --------------------------------------------------------------------------- database


async def seed(url: str, env: dict[str, str], advocates: int) -> tuple[str, list[str]]:
    """A merchant with a secret key, a program and `advocates` advocates: (key, codes)."""
    from referral import settings as settings_module
    from referral.advocates import service as advocate_service
    from referral.advocates.schemas import AdvocateUpsert
    from referral.fraud import service as fraud_service
    from referral.fraud.policy import AdvocateVelocity, FraudPolicy
    from referral.lib.db import create_pool, migrate
    from referral.lib.logging import configure_logging
    from referral.merchants import service as merchant_service
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
            program = await program_service.create(
                conn,
                runtime=runtime,
                caller=caller,
                data=ProgramCreate(
                    name="Bench: give 10, get 10",
                    landing_url=LANDING_URL,
                    hold_days=30,
                    rewards=RewardSettings(
                        advocate=RewardRule(kind="cash", amounts={"EUR": 1000}),
                        friend=RewardRule(kind="coupon", amounts={"EUR": 1000}),
                    ),
                ),
            )
            await fraud_service.put_policy(
                conn,
                ids=runtime.ids,
                caller=caller,
                program_id=program.id,
                policy=FraudPolicy(advocate_velocity=AdvocateVelocity(enabled=VELOCITY == "on")),
            )
            if POINTS == "on":
                from referral.points import service as points_service
                from referral.points.schemas import Earning, FixedRule, OrderRule, PointsRules

                await points_service.set_rules(
                    conn,
                    runtime=runtime,
                    caller=caller,
                    program_id=program.id,
                    data=PointsRules(
                        earning=Earning(
                            order=OrderRule(points=1, per={"EUR": 100}),
                            advocate_referral=FixedRule(points=100),
                            friend_first_order=FixedRule(points=50),
                        )
                    ),
                )
            codes = []
            for i in range(advocates):
                advocate, _ = await advocate_service.upsert(
                    conn,
                    runtime=runtime,
                    caller=caller,
                    data=AdvocateUpsert(
                        program_id=program.id,
                        customer_id=f"adv-{i:05d}",
                        email=f"advocate.{i}@example.com",
                    ),
                )
                codes.append(advocate.code)
        return key, codes
    finally:
        await pool.close()


CHECKS = {
    "orders": "SELECT count(*) FROM orders",
    "order_ids": "SELECT order_id FROM orders",
    "referred_orders": "SELECT count(*) FROM orders WHERE referral_id IS NOT NULL",
    "code_referrals": "SELECT count(*) FROM referrals WHERE source = 'code'",
    "not_converted": "SELECT count(*) FROM referrals WHERE status <> 'converted'",
    # By the stored features and the rule's default limits ($1 an hour, $2 a day): those
    # the advocate-velocity rule fires on when it is on, and how the others were decided.
    "over_velocity": """
        SELECT count(*) FILTER (WHERE over) AS over,
               count(*) FILTER (WHERE over AND status = 'in_review' AND velocity) AS over_held,
               count(*) FILTER (WHERE NOT over AND status = 'converted' AND NOT velocity)
                 AS under_converted,
               count(*) FILTER (WHERE velocity) AS velocity_fired
        FROM (SELECT r.status,
                     (r.decision #>> '{fraud,features,advocate_referrals_hour}')::int > $1
                     OR (r.decision #>> '{fraud,features,advocate_referrals_day}')::int > $2
                       AS over,
                     EXISTS (SELECT FROM jsonb_array_elements(r.decision #> '{fraud,reasons}') x
                             WHERE x ->> 'rule' = 'advocate_velocity') AS velocity
              FROM referrals r WHERE r.source = 'code') d
    """,
    # Referrals by code without exactly one advocate and one friend reward.
    "bad_rewards": """
        SELECT count(*) FROM referrals r
        WHERE r.source = 'code' AND (
          (SELECT count(*) FROM rewards w WHERE w.referral_id = r.id AND w.side = 'advocate') <> 1
          OR (SELECT count(*) FROM rewards w WHERE w.referral_id = r.id AND w.side = 'friend') <> 1)
    """,
    # What held the others: status, rejection reason and the fraud rules that fired.
    "not_converted_why": """
        SELECT r.status, coalesce(r.rejection_reason, '') AS reason,
               coalesce(r.decision #>> '{fraud,action}', '') AS action,
               coalesce((SELECT string_agg(x ->> 'rule', '+' ORDER BY x ->> 'rule')
                         FROM jsonb_array_elements(r.decision #> '{fraud,reasons}') x), '')
                 AS rules,
               count(*) AS n
        FROM referrals r WHERE r.status <> 'converted'
        GROUP BY 1, 2, 3, 4 ORDER BY n DESC
    """,
    "stray_rewards": "SELECT count(*) FROM rewards WHERE referral_id IS NULL",
    "rewards": "SELECT count(*) FROM rewards",
    "bad_coupons": """
        SELECT count(*) FROM rewards w
        WHERE w.kind = 'coupon'
          AND (SELECT count(*) FROM coupons c WHERE c.reward_id = w.id) <> 1
    """,
    "bad_ledger": """
        SELECT count(*) FROM rewards w
        WHERE w.kind = 'cash' AND w.amount <> 1000 OR w.kind = 'cash' AND w.amount
          <> (SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e WHERE e.reward_id = w.id)
    """,
    "duplicate_orders": "SELECT count(*) FROM orders WHERE order_id LIKE 'ord-dup-%'",
    # BENCH_POINTS=on: one order lot per order, each with its earning entry.
    "order_lots": "SELECT count(*) FROM points_lots WHERE source = 'order'",
    "order_lots_unexplained": """
        SELECT count(*) FROM points_lots l WHERE l.source = 'order' AND l.remaining <>
          (SELECT coalesce(sum(e.delta), 0) FROM points_entries e WHERE e.lot_id = l.id)
    """,
    "duplicate_rewards": """
        SELECT count(*) FROM rewards w JOIN orders o ON o.id = w.order_pk
        WHERE o.order_id LIKE 'ord-dup-%'
    """,
}


async def check_database(url: str) -> dict:
    import asyncpg

    from referral.fraud.policy import AdvocateVelocity

    conn = await asyncpg.connect(url)
    try:
        out = {}
        for name, sql in CHECKS.items():
            if name == "order_ids":
                out[name] = {r[0] for r in await conn.fetch(sql)}
            elif name == "over_velocity":
                limits = AdvocateVelocity()
                out[name] = dict(await conn.fetchrow(sql, limits.max_per_hour, limits.max_per_day))
            elif name == "not_converted_why":
                out[name] = [tuple(r) for r in await conn.fetch(sql)]
            else:
                out[name] = await conn.fetchval(sql)
        return out
    finally:
        await conn.close()


# --------------------------------------------------------------------------- profiler


@contextlib.contextmanager
def profiler(pid: int, out: Path, seconds: float) -> Iterator[bool]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("BENCH_PROFILE=1 but py-spy is not installed (.venv/bin/pip install py-spy)")
        yield False
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [py_spy, "record", "-p", str(pid), "--subprocesses", "-d", str(int(seconds))]
    cmd += ["-o", str(out), "-r", "200", "--nonblocking"]
    if out.suffix == ".txt":
        cmd += ["--format", "raw"]
    spy = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        time.sleep(0.5)  # let it attach
        yield True
    finally:
        try:
            spy.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
        print(f"profile: {out.relative_to(ROOT)}")


# --------------------------------------------------------------------------- main


def describe(run: Run) -> str:
    lat = run.latency
    errors = ", ".join(f"{n} x {s}" for s, n in sorted(run.status.items()) if s != run.expected)
    cpu = ""
    if run.cpu_app:
        per = 1e6 / max(run.count, 1)
        cpu = (
            f"  cpu/req app {run.cpu_app * per:4.0f} µs db {run.cpu_db * per:4.0f} µs "
            f"gen {run.cpu_loadgen * per:3.0f} µs; other jobs {run.other_cores:.0%} of a core"
        )
    return (
        f"{run.label:<22} {run.rate:6.0f}/s {run.answered_rate:7.1f}/s  p50 {lat['p50']:6.2f}"
        f"  p90 {lat['p90']:6.2f}  p99 {lat['p99']:7.2f}  max {lat['max']:7.2f} ms"
        f"  errors {run.errors}{' (' + errors + ')' if errors else ''}"
        f"  conns {run.connections}{cpu}"
    )


def _log_summary(line: str) -> str:
    """The event and the exception's last line of a JSON log line."""
    try:
        entry = json.loads(line)
    except ValueError:
        return line[:300]
    exception = (entry.get("exception") or "").strip().splitlines()
    tail = " | ".join(x.strip() for x in exception[-4:] if x.strip())
    return f"{entry.get('event')} {entry.get('path', '')}: {tail[:600]}"


def held(run: Run) -> tuple[bool, str]:
    if run.errors:
        return False, f"{run.errors} errors"
    if run.latency["p99"] > MAX_P99_MS:
        return False, f"p99 {run.latency['p99']:.0f} ms > {MAX_P99_MS:.0f} ms"
    if run.answered_rate < 0.95 * run.rate:
        return False, f"answered {run.answered_rate:.0f}/s of {run.rate:.0f}/s"
    return True, ""


def converted_check(facts: dict) -> tuple[bool, str]:
    """Every referral by code converted (velocity off), or (velocity on) converted except
    exactly those over the rule's limits by their stored features, held in review by it."""
    code, velocity = facts["code_referrals"], facts["over_velocity"]
    same = facts["code_referrals"] == facts["referred_orders"]
    head = f"referrals by code {code:,} = referred orders {facts['referred_orders']:,}"
    if VELOCITY != "on":
        ok = same and facts["not_converted"] == 0 and velocity["velocity_fired"] == 0
        return ok, f"{head}, all converted (advocate velocity off: fired on none)"
    over = velocity["over"]
    ok = (
        same
        and velocity["over_held"] == over
        and velocity["under_converted"] == code - over
        and facts["not_converted"] == over
    )
    return ok, (
        f"{head}: {code - over:,} under the velocity limits all converted "
        f"({velocity['under_converted']:,}), {over:,} over them all in review by the rule "
        f"({velocity['over_held']:,})"
    )


def main() -> int:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (ROOT / ".referral").mkdir(exist_ok=True)
    note_load_average()
    runs: list[Run] = []
    created: list[str] = []
    with (
        fresh_database("bench-checkout") as db,
        tempfile.TemporaryDirectory(prefix="bench-checkout-", dir=ROOT / ".referral") as tmp,
    ):
        env = app_env(db.url, base, "warning")
        started = time.monotonic()
        key, codes = asyncio.run(seed(db.url, env, ADVOCATES))
        print(
            f"seeded 1 merchant, 1 program, {len(codes):,} advocates "
            f"in {time.monotonic() - started:.1f} s; fraud policy: the default, advocate "
            f"velocity {'ON (BENCH_VELOCITY=on)' if VELOCITY == 'on' else 'OFF'}"
        )
        log_path = Path(tmp) / "server.log"
        gen = LoadGen(base, key, codes)
        with app_server(env, port, log_path, workers=WORKERS) as proc:
            cpu = CpuMeter(proc.pid, db.postmaster_pid)
            print(
                f"granian ({WORKERS} worker{'s' if WORKERS > 1 else ''}, uvloop) on {base}; "
                f"open-loop load generator in its own "
                f"process, latency from each request's due time (ms), {WARMUP:g} s warm-up "
                f"before each run"
            )
            if HISTORY > 0:
                # A shop's database has history, and PostgreSQL has statistics about it.
                started = time.monotonic()
                hist = gen.run("history", "order", 250, HISTORY / 250, 0, "hist", None)
                created += hist.created
                if ANALYZE:
                    asyncio.run(execute_sql(db.url, "ANALYZE"))
                print(
                    f"history: {len(hist.created):,} orders through the API in "
                    f"{time.monotonic() - started:.0f} s"
                    + (", then ANALYZE" if ANALYZE else " (no ANALYZE: BENCH_ANALYZE=0)")
                    + (f"; {hist.errors} failed" if hist.errors else "")
                )
            print(f"\n-- fixed rate: {RATE:g} requests/s for {DURATION:g} s each")
            for label, kind in (("POST /v1/checkout/quote", "quote"), ("POST /v1/orders", "order")):
                run = gen.run(label, kind, RATE, DURATION, WARMUP, f"{kind}{RATE:g}", cpu)
                runs.append(run)
                created += run.created
                print(describe(run), flush=True)

            print(
                f"\n-- orders stepped up ({STEP_DURATION:g} s per step) until p99 > "
                f"{MAX_P99_MS:g} ms, errors, or falling behind"
            )
            sustained = 0.0
            for rate in STEPS:
                time.sleep(1)
                run = gen.run(
                    "POST /v1/orders", "order", rate, STEP_DURATION, WARMUP, f"step{rate:g}", cpu
                )
                runs.append(run)
                created += run.created
                ok, why = held(run)
                print(describe(run) + ("" if ok else f"  <- not sustained: {why}"), flush=True)
                if run.lag["p99"] > 5:
                    print(
                        f"   (load generator late by {run.lag['p99']:.1f} ms at p99: "
                        "it shares the cores with the server)"
                    )
                if not ok:
                    break
                sustained = rate
            time.sleep(1)

            dup = gen.run(
                f"{DUPLICATES} concurrent dups", "duplicate", 1e6, DUPLICATES, 0, "dup", None
            )
            created += dup.created
            print(
                f"\n-- {DUPLICATES} concurrent copies of one referred order: "
                + ", ".join(f"{n} x {s}" for s, n in sorted(dup.status.items()))
            )

            if os.environ.get("BENCH_PROFILE") == "1":
                out = (
                    ROOT
                    / "bench"
                    / "results"
                    / os.environ.get("BENCH_PROFILE_FILE", "checkout-orders.svg")
                )
                with profiler(proc.pid, out, DURATION) as on:
                    if on:
                        run = gen.run(
                            "orders (py-spy on)", "order", RATE, DURATION, 0, "profile", cpu
                        )
                        created += run.created
                        print(describe(run) + "  (profiled: not a measurement)")
            stop_server(proc)
        errors_logged = logged_errors(log_path)
        facts = asyncio.run(check_database(db.url))

    quote, order = runs[0], runs[1]
    print(f"\nload average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        f"\nhighest sustained order rate: {sustained:g}/s"
        + ("" if sustained else " (not even the first step held)")
    )
    created_set = set(created)
    dup_ok = dup.status.get("201") == 1 and dup.status.get("200") == DUPLICATES - 1
    checks = [
        (
            facts["orders"] == len(created) and facts["order_ids"] == created_set,
            f"orders rows {facts['orders']:,} = 201 answers {len(created):,} (same order ids)",
        ),
        converted_check(facts),
        (
            facts["bad_rewards"] == 0
            and facts["stray_rewards"] == 0
            and facts["rewards"] == 2 * facts["code_referrals"],
            f"exactly one reward per side per referral ({facts['rewards']:,} rewards, "
            f"{facts['bad_rewards']} referrals off)",
        ),
        (
            facts["bad_coupons"] == 0 and facts["bad_ledger"] == 0,
            "one coupon per friend reward, ledger sums = 1000 per cash reward",
        ),
        (
            dup_ok and facts["duplicate_orders"] == 1 and facts["duplicate_rewards"] == 2,
            f"{DUPLICATES} concurrent duplicates: 1 x 201, {DUPLICATES - 1} x 200, one order, "
            f"one reward per side ({facts['duplicate_rewards']} rewards)",
        ),
        (not errors_logged, f"no errors in the server log ({len(errors_logged)} lines)"),
    ]
    if POINTS == "on":
        checks.append(
            (
                facts["order_lots"] == facts["orders"] and facts["order_lots_unexplained"] == 0,
                f"points on: one order lot per order ({facts['order_lots']:,} lots), "
                "each explained by its journal",
            )
        )
    print("correctness: " + ("PASS" if all(ok for ok, _ in checks) else "FAIL"))
    for ok, text in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {text}")
    for status, reason, action, rules, n in facts["not_converted_why"][:5]:
        print(
            f"  not converted: {n:,} x {status}{' ' + reason if reason else ''}"
            f" (fraud decision {action or 'none'}: {rules or 'no rule fired'})"
        )
    for line in errors_logged[:3]:
        print(f"  server log: {_log_summary(line)}")
    targets = [
        (
            r.latency["p99"] < TARGET_P99_MS and not r.errors,
            f"{r.label} p99 {r.latency['p99']:.1f} ms < {TARGET_P99_MS:g} ms at {RATE:g}/s",
        )
        for r in (quote, order)
    ]
    print("targets: " + "; ".join(f"{t} {'met' if ok else 'MISSED'}" for ok, t in targets))
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    if sys.argv[1:] == ["--loadgen"]:
        loadgen_main()
        sys.exit(0)
    run_main("bench-checkout", main)
