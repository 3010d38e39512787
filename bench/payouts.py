"""Benchmark of a payout batch of 1,000,000 rewards: creation, and its CSV exports.

    make bench-payouts        (or: .venv/bin/python bench/payouts.py)

Starts a PostgreSQL (embedded, in `.referral/bench-payouts-pg-*`, removed afterwards; or a
fresh database on the server named by BENCH_DATABASE_URL, dropped afterwards), migrates, and
seeds one merchant (with a secret key, through the services) and one program (advocate: 10%
of the subtotal in EUR cash), then in bulk (server-side SQL and COPY, not timed as part of
any figure): BENCH_ADVOCATES (100,000) advocates with emails, each with
BENCH_REWARDS_PER_ADVOCATE (10) converted referrals, the friend's order and an APPROVED cash
EUR reward with its two transitions and three ledger entries (created: pending +X; approved:
pending -X, payable +X), public ids frozen on the reward as the service freezes them. Plus
BENCH_CLAWBACKS (1,000) milestone bonuses of as many advocates, paid and then reversed (a
-500 receivable entry each), which the batch nets off, as real data has them. Foreign-key
triggers are skipped (where allowed) and secondary indexes built afterwards, as in a bulk
load; VACUUM ANALYZE at the end, as autovacuum would have by then.

Measured, in one run:
1. batch creation: `referral.payouts.service.create` in one transaction;
2. payouts.csv and rewards.csv: a bare `COPY (the export's SELECT) TO STDOUT` through
   asyncpg into a file (first read after creation, then again warm), the same files over HTTP
   from `granian --interface asgi --factory --workers 1 --loop uvloop referral.app:asgi`
   (LOG_FORMAT=json) downloaded by a streaming httpx client into a file, and through the CLI
   (`referral payouts export` as a subprocess). Time to last byte, and the peak RSS of the
   process doing the export: the granian worker (VmHWM, reset before each download through
   /proc/<pid>/clear_refs), or the CLI process (/usr/bin/time, else VmHWM polled). The
   planner's view of payout_items (analyzed yet?) and its plan for rewards.csv are printed:
   both change once autovacuum analyzes the new batch.

Checks: payouts.csv rows = line_count = payees, rewards.csv rows = rewards + clawbacks, sum
of amount_minor (and of net_minor) = batch total = sum of the seeded approved rewards minus
the clawbacks, the ledger consistent, and the bare COPY, HTTP and CLI files byte-identical.
Targets: each export under 10 s and 150 MB peak RSS, HTTP within 3x of the faster bare COPY.

Environment: BENCH_ADVOCATES (100000), BENCH_REWARDS_PER_ADVOCATE (10), BENCH_CLAWBACKS
(1000), BENCH_PAYEES (20000: payees with bank details, frozen on their lines),
BENCH_DATABASE_URL, BENCH_KEEP_FILES=1 (keep the CSVs in .referral/). Exit status: 0 when the
checks pass, 1 when one fails, 2 when the benchmark cannot run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import csv
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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

ADVOCATES = int(os.environ.get("BENCH_ADVOCATES", "100000"))
PER_ADVOCATE = int(os.environ.get("BENCH_REWARDS_PER_ADVOCATE", "10"))
REWARDS = ADVOCATES * PER_ADVOCATE
# At most one per advocate: a clawback is the advocate's (first) milestone bonus.
CLAWBACKS = min(int(os.environ.get("BENCH_CLAWBACKS", "1000")), ADVOCATES)
# Payees who asked for a bank transfer (every n-th advocate): the batch freezes their IBAN
# and name from the payees table, a join in its one statement.
PAYEES = min(int(os.environ.get("BENCH_PAYEES", "20000")), ADVOCATES)
CLAWBACK_AMOUNT = 500  # minor units; every payee's gross is at least 10 x 200
TARGET_SECONDS = 10.0
TARGET_MB = 150.0
TARGET_RATIO = 3.0
LANDING_URL = "https://shop.example/welcome?utm_source=referral"


# --------------------------------------------------------------------------- seed
# One row per reward in a temporary plan table, with id ranges taken from each table's identity
# sequence up front, so that referrals, orders, rewards, transitions and ledger entries are
# each one INSERT ... SELECT (OVERRIDING SYSTEM VALUE), and the public ids can be computed in
# Python (hashids, ~12 us each) in other processes while PostgreSQL writes the rest.

SEED_ADVOCATES = """
INSERT INTO advocates (merchant_id, program_id, customer_id, email, name, created_at)
SELECT $1, $2, 'cus_' || substr(md5('advocate-' || g), 1, 16),
       'advocate.' || g || '@example.com', 'Advocate ' || g,
       $3::timestamptz - make_interval(days => 30) + make_interval(secs => g)
FROM generate_series(0, $4::int - 1) g
"""

SEED_PAYEES = """
INSERT INTO payees (merchant_id, customer_id, method, iban, account_holder, updated_by)
SELECT $1, a.customer_id, 'bank_transfer', 'SE3550000000054910000003', a.name, 'key'
FROM advocates a
WHERE a.merchant_id = $1
ORDER BY a.id
LIMIT $2
"""

# $1 merchant, $2 advocates, $3 per advocate, $4 first earned_at, $5 seconds spread.
# Reward g belongs to advocate g % advocates, so one payee's rewards are spread over time.
SEED_PLAN = """
CREATE TEMP TABLE plan AS
SELECT s.g, a.id AS advocate_id, a.customer_id AS payee_key,
       10 * (200 + (s.g * 7919) % 4801) AS subtotal, (200 + (s.g * 7919) % 4801) AS amount,
       $4::timestamptz + make_interval(secs => s.g * $5::float8 / ($2::int * $3::int))
           AS earned_at,
       $6::bigint + s.g AS referral_id, $7::bigint + s.g AS order_pk,
       $8::bigint + s.g AS reward_id, $9::bigint + 2 * s.g AS created_tid,
       $9::bigint + 2 * s.g + 1 AS approved_tid
FROM generate_series(0, $2::bigint * $3::int - 1) s (g)
JOIN (SELECT row_number() OVER (ORDER BY id) - 1 AS n, id, customer_id FROM advocates
      WHERE merchant_id = $1) a ON a.n = s.g % $2::int
ORDER BY s.g
"""

SEED_REFERRALS = """
INSERT INTO referrals (id, merchant_id, program_id, advocate_id, friend_key, friend_customer_id,
                       friend_email_normalised, status, source, attribution, converted_at,
                       first_order_pk, created_at)
OVERRIDING SYSTEM VALUE
SELECT referral_id, $1, $2, advocate_id, 'cus_friend_' || g, 'cus_friend_' || g,
       'friend.' || g || '@example.com', 'converted', 'code',
       jsonb_build_object('code', 'BENCH' || (g % 997), 'channel', 'link'), earned_at,
       order_pk, earned_at - interval '2 hours'
FROM plan
"""

SEED_ORDERS = """
INSERT INTO orders (id, merchant_id, order_id, customer_id, email_normalised, subtotal, total,
                    currency, occurred_at, referral_id, fingerprint, created_at)
OVERRIDING SYSTEM VALUE
SELECT order_pk, $1, 'ord_' || g, 'cus_friend_' || g, 'friend.' || g || '@example.com',
       subtotal, subtotal + 590, 'EUR', earned_at, referral_id,
       sha256(convert_to(g || '|' || subtotal || '|EUR', 'UTF8')), earned_at
FROM plan
"""

SEED_REWARDS = """
INSERT INTO rewards (id, merchant_id, program_id, referral_id, advocate_id, side, payee_key,
                     kind, currency, amount, original_amount, basis_points, order_pk, status,
                     hold_until, earned_at, rule, created_at, approved_at, updated_at,
                     public_id, referral_public_id)
OVERRIDING SYSTEM VALUE
SELECT p.reward_id, $1, $2, p.referral_id, p.advocate_id, 'advocate', p.payee_key, 'cash',
       'EUR', p.amount, p.amount, 1000, p.order_pk, 'approved', p.earned_at + interval '30 days',
       p.earned_at, '{"kind": "cash", "basis_points": 1000}', p.earned_at,
       p.earned_at + interval '30 days', p.earned_at + interval '30 days', i.public_id,
       i.referral_public_id
FROM plan p JOIN plan_ids i USING (reward_id)
"""

SEED_TRANSITIONS = """
INSERT INTO reward_transitions (id, merchant_id, reward_id, from_status, to_status, amount,
                                delta, reason, actor, created_at)
OVERRIDING SYSTEM VALUE
SELECT created_tid, $1::bigint, reward_id, NULL, 'pending', amount, amount, 'referral_code',
       'system', earned_at FROM plan
UNION ALL
SELECT approved_tid, $1::bigint, reward_id, 'pending', 'approved', amount, 0, 'hold_passed',
       'system', earned_at + interval '30 days' FROM plan
"""

SEED_LEDGER = """
INSERT INTO ledger_entries (merchant_id, reward_id, transition_id, payee_key, currency, account,
                            amount, created_at)
SELECT $1::bigint, reward_id, created_tid, payee_key, 'EUR', 'pending', amount, earned_at
FROM plan
UNION ALL
SELECT $1::bigint, reward_id, approved_tid, payee_key, 'EUR', e.account, e.sign * amount,
       earned_at + interval '30 days'
FROM plan CROSS JOIN (VALUES ('pending', -1), ('payable', 1)) e (account, sign)
"""

# Clawbacks: a reward of the first BENCH_CLAWBACKS advocates, paid earlier and reversed after
# payment (its order refunded): 4 transitions; pending, payable and paid moves; -X receivable.
SEED_CLAWBACK_PLAN = """
CREATE TEMP TABLE clawback_plan AS
SELECT p.g, p.advocate_id, p.payee_key, $2::bigint AS amount, p.earned_at - interval '60 days'
           AS earned_at,
       $3::bigint + p.g AS reward_id, $4::bigint + 4 * p.g AS t1, $4::bigint + 4 * p.g + 1 AS t2,
       $4::bigint + 4 * p.g + 2 AS t3, $4::bigint + 4 * p.g + 3 AS t4
FROM plan p WHERE p.g < $1 ORDER BY p.g
"""

SEED_CLAWBACKS = [
    """
INSERT INTO rewards (id, merchant_id, program_id, advocate_id, side, payee_key, kind, currency,
                     amount, original_amount, milestone, status, reversed_from, hold_until,
                     earned_at, rule, created_at, approved_at, paid_at, reversed_at, updated_at,
                     public_id)
OVERRIDING SYSTEM VALUE
SELECT c.reward_id, $1, $2, c.advocate_id, 'advocate', c.payee_key, 'cash', 'EUR', 0, c.amount,
       1, 'reversed', 'paid', c.earned_at, c.earned_at, '{"kind": "cash"}', c.earned_at,
       c.earned_at, c.earned_at + interval '1 day', c.earned_at + interval '2 days',
       c.earned_at + interval '2 days', i.public_id
FROM clawback_plan c JOIN plan_ids i USING (reward_id)
""",
    """
INSERT INTO reward_transitions (id, merchant_id, reward_id, from_status, to_status, amount,
                                delta, reason, actor, created_at)
OVERRIDING SYSTEM VALUE
SELECT t.id, $1, c.reward_id, t.from_status, t.to_status, t.amount, t.delta, t.reason,
       'system', c.earned_at + t.after
FROM clawback_plan c CROSS JOIN LATERAL (VALUES
    (c.t1, NULL, 'approved', c.amount, c.amount, 'milestone_1', interval '0'),
    (c.t2, 'approved', 'approved', c.amount, 0, 'hold_passed', interval '0'),
    (c.t3, 'approved', 'paid', c.amount, 0, 'payout_paid', interval '1 day'),
    (c.t4, 'paid', 'reversed', 0, -c.amount, 'manual', interval '2 days')
) t (id, from_status, to_status, amount, delta, reason, after)
""",
    """
INSERT INTO ledger_entries (merchant_id, reward_id, transition_id, payee_key, currency, account,
                            amount, created_at)
SELECT $1, c.reward_id, e.tid, c.payee_key, 'EUR', e.account, e.amount, c.earned_at + e.after
FROM clawback_plan c CROSS JOIN LATERAL (VALUES
    (c.t1, 'pending', c.amount, interval '0'),
    (c.t2, 'pending', -c.amount, interval '0'),
    (c.t2, 'payable', c.amount, interval '0'),
    (c.t3, 'payable', -c.amount, interval '1 day'),
    (c.t3, 'paid', c.amount, interval '1 day'),
    (c.t4, 'receivable', -c.amount, interval '2 days')
) e (tid, account, amount, after)
""",
]

BULK_TABLES = ("referrals", "orders", "rewards", "reward_transitions", "ledger_entries")
# Indexes that back no constraint (unique ones included: rebuilding them checks them again).
SECONDARY_INDEXES = """
SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS ddl
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = ANY($1::text[]::regclass[])
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
"""

# Every reward's ledger entries sum to its amount; balances per account.
LEDGER_CHECK = """
SELECT
  (SELECT count(*) FROM rewards r
     LEFT JOIN (SELECT reward_id, sum(amount) AS total FROM ledger_entries GROUP BY reward_id) e
       ON e.reward_id = r.id
   WHERE r.merchant_id = $1 AND r.amount IS DISTINCT FROM coalesce(e.total, 0)) AS off,
  (SELECT count(*) FROM rewards WHERE merchant_id = $1 AND status = 'approved') AS approved,
  (SELECT coalesce(sum(amount), 0) FROM rewards WHERE merchant_id = $1 AND status = 'approved')
      AS approved_sum,
  (SELECT coalesce(sum(amount), 0) FROM ledger_entries
    WHERE merchant_id = $1 AND account = 'payable') AS payable,
  (SELECT coalesce(sum(amount), 0) FROM ledger_entries
    WHERE merchant_id = $1 AND account = 'pending') AS pending,
  (SELECT coalesce(sum(amount), 0) FROM ledger_entries
    WHERE merchant_id = $1 AND account = 'receivable') AS receivable
"""


def _encode(args: tuple[str, str, int, int]) -> list[str]:
    from referral.lib.ids import PublicIds

    salt, kind, start, stop = args
    ids = PublicIds(salt)
    return [ids.encode(kind, n) for n in range(start, stop)]


async def _encode_all(salt: str, kind: str, first: int, count: int) -> list[str]:
    """Public ids of `first` .. `first + count - 1`, in other processes (one per core):
    hashids take ~12 us per id."""
    workers = max(1, min(4, os.cpu_count() or 1))
    size = max(1, -(-count // (workers * 4)))
    chunks = [(salt, kind, first + i, first + min(i + size, count)) for i in range(0, count, size)]
    loop = asyncio.get_running_loop()
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        parts = await asyncio.gather(*(loop.run_in_executor(pool, _encode, c) for c in chunks))
    return [x for part in parts for x in part]


async def reserve(conn, table: str, count: int) -> int:
    """Take `count` consecutive ids from the table's identity sequence: the first of them.
    (Nothing else writes to this fresh database meanwhile.)"""
    seq = await conn.fetchval("SELECT pg_get_serial_sequence($1, 'id')", table)
    first = await conn.fetchval("SELECT nextval($1::regclass)", seq)
    await conn.execute(f"SELECT setval('{seq}', {first + count - 1})")
    return first


@dataclass
class Seeded:
    merchant_id: int
    merchant_public_id: str
    key: str
    ledger: dict
    steps: list[tuple[str, float]] = field(default_factory=list)


async def seed(url: str, env: dict[str, str]) -> Seeded:
    import asyncpg

    from referral import settings as settings_module
    from referral.lib.db import create_pool, migrate
    from referral.lib.ids import PublicIds
    from referral.lib.logging import configure_logging
    from referral.merchants import service as merchant_service
    from referral.merchants.service import Caller
    from referral.programs import service as program_service
    from referral.programs.schemas import ProgramCreate, RewardRule, RewardSettings
    from referral.runtime import Runtime

    configure_logging("console", "warning")
    salt = env["REFERRAL_HASHIDS_SALT"]
    ids = PublicIds(salt)
    steps: list[tuple[str, float]] = []
    mark = time.perf_counter()

    def step(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        steps.append((name, now - mark))
        mark = now

    await migrate(url)
    step("migrate")
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        runtime = Runtime.build(settings_module.from_env(env), pool)
        async with pool.acquire() as conn:
            async with conn.transaction():
                merchant = (await merchant_service.create_merchant(conn, name="Bench Payouts"))[
                    "live"
                ]
                key = await merchant_service.create_key(
                    conn, merchant_id=merchant.id, kind="secret", label="bench"
                )
                caller = Caller(merchant_id=merchant.id, mode="live", kind="secret")
                program = await program_service.create(
                    conn,
                    runtime=runtime,
                    caller=caller,
                    data=ProgramCreate(
                        name="Bench: 10% cash for every friend",
                        landing_url=LANDING_URL,
                        hold_days=30,
                        rewards=RewardSettings(
                            advocate=RewardRule(kind="cash", basis_points=1000),
                            friend=RewardRule(kind="coupon", amounts={"EUR": 1000}),
                        ),
                    ),
                )
            program_id = ids.decode("program", program.id)
            m = merchant.id
            now = datetime.now(UTC)
            first = now - timedelta(days=400)
            spread = timedelta(days=400 - 31).total_seconds()
            await conn.execute(SEED_ADVOCATES, m, program_id, first, ADVOCATES)
            step(f"{ADVOCATES:,} advocates")
            await conn.execute(SEED_PAYEES, m, PAYEES)
            step(f"{PAYEES:,} payees paid by bank transfer")
            base = {
                table: await reserve(conn, table, count)
                for table, count in (
                    ("referrals", REWARDS),
                    ("orders", REWARDS),
                    ("rewards", REWARDS + CLAWBACKS),
                    ("reward_transitions", 2 * REWARDS + 4 * CLAWBACKS),
                )
            }
            rewards_base, transitions_base = base["rewards"], base["reward_transitions"]
            # Public ids in other processes while PostgreSQL writes the rest.
            encoding = asyncio.ensure_future(
                asyncio.gather(
                    _encode_all(salt, "reward", rewards_base, REWARDS + CLAWBACKS),
                    _encode_all(salt, "referral", base["referrals"], REWARDS),
                )
            )
            await conn.execute(
                SEED_PLAN, m, ADVOCATES, PER_ADVOCATE, first, spread, base["referrals"],
                base["orders"], rewards_base, transitions_base,
            )  # fmt: skip
            await conn.execute(
                SEED_CLAWBACK_PLAN, CLAWBACKS, CLAWBACK_AMOUNT, rewards_base + REWARDS,
                transitions_base + 2 * REWARDS,
            )  # fmt: skip
            step("plan (id ranges taken from the sequences)")
            # The rows are consistent by construction: skip the foreign-key triggers where
            # allowed (a superuser; the embedded server), as a bulk load would.
            with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
                await conn.execute("SET session_replication_role = replica")
            # Secondary indexes are built afterwards (sorting once beats 1M inserts each).
            indexes = await conn.fetch(SECONDARY_INDEXES, list(BULK_TABLES))
            for index in indexes:
                await conn.execute(f'DROP INDEX "{index["name"]}"')
            await conn.execute(SEED_REFERRALS, m, program_id)
            await conn.execute(SEED_ORDERS, m)
            step(f"{REWARDS:,} referrals and orders (public ids encoded meanwhile)")
            reward_ids, referral_ids = await encoding
            step("rest of the public ids")
            await conn.execute(
                "CREATE TEMP TABLE plan_ids (reward_id bigint PRIMARY KEY, public_id text, "
                "referral_public_id text)"
            )
            records = [
                (rewards_base + i, reward_ids[i], referral_ids[i] if i < REWARDS else None)
                for i in range(REWARDS + CLAWBACKS)
            ]
            await conn.copy_records_to_table("plan_ids", records=records)
            del records, reward_ids, referral_ids
            await conn.execute(SEED_REWARDS, m, program_id)
            step(f"{REWARDS:,} rewards (COPY of the public ids, INSERT)")
            await conn.execute(SEED_TRANSITIONS, m)
            await conn.execute(SEED_LEDGER, m)
            step(f"{2 * REWARDS:,} transitions, {3 * REWARDS:,} ledger entries")
            for sql in SEED_CLAWBACKS:
                await conn.execute(sql, *((m, program_id) if "$2" in sql else (m,)))
            await conn.execute("RESET session_replication_role")
            step(f"{CLAWBACKS:,} paid-then-reversed rewards (receivables)")
            await conn.execute("SET maintenance_work_mem = '256MB'")
            for index in indexes:
                await conn.execute(index["ddl"])
            step(f"{len(indexes)} secondary indexes rebuilt")
            await conn.execute(
                "VACUUM ANALYZE advocates, payees, referrals, orders, rewards, "
                "reward_transitions, ledger_entries"
            )
            step("VACUUM ANALYZE")
            ledger = {k: int(v) for k, v in (await conn.fetchrow(LEDGER_CHECK, m)).items()}
            step("ledger check")
        return Seeded(m, ids.encode("merchant", m), key, ledger, steps)
    finally:
        await pool.close()


# --------------------------------------------------------------------------- batch, COPY


async def create_batch(url: str, env: dict[str, str], merchant_id: int) -> tuple[Any, float, str]:
    """The batch's row (what the exports read), the seconds `service.create` took, its id."""
    from referral import settings as settings_module
    from referral.lib.db import create_pool
    from referral.merchants.service import Caller
    from referral.payouts import repo, service
    from referral.payouts.schemas import BatchCreate
    from referral.runtime import Runtime

    caller = Caller(merchant_id=merchant_id, mode="live", kind="secret")
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        runtime = Runtime.build(settings_module.from_env(env), pool)
        async with pool.acquire() as conn:
            started = time.perf_counter()
            async with conn.transaction():
                batch = await service.create(
                    conn, runtime=runtime, caller=caller, data=BatchCreate(currency="EUR")
                )
            elapsed = time.perf_counter() - started
            row = await repo.get(conn, merchant_id, runtime.ids.decode("payout", batch.id))
        return row, elapsed, batch.id
    finally:
        await pool.close()


async def bare_copy(url: str, batch: Any, batch_id: str, rewards: bool, out) -> float:
    """The export's own SELECT through `COPY ... TO STDOUT`, straight into a file."""
    from referral.lib.db import create_pool
    from referral.payouts import export

    query = (
        export.rewards_query(batch, batch_id)
        if rewards
        else export.payouts_query(batch, batch_id, "standard", 1)
    )
    write = out.write

    async def sink(chunk: bytes) -> None:
        write(chunk)

    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            started = time.perf_counter()
            await conn.copy_from_query(
                query.sql, *query.args, output=sink, format="csv", header=query.header
            )
            return time.perf_counter() - started
    finally:
        await pool.close()


async def planner_view(url: str, batch: Any, batch_id: str) -> str:
    """What the planner believes about payout_items, and its plan for rewards.csv: plans
    differ before and after payout_items is first analyzed."""
    import asyncpg

    from referral.payouts import export

    query = export.rewards_query(batch, batch_id)
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT c.reltuples, coalesce(s.last_autoanalyze, s.last_analyze) AS analyzed "
            "FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid "
            "WHERE c.oid = 'payout_items'::regclass"
        )
        plan = [r[0] for r in await conn.fetch("EXPLAIN " + query.sql, *query.args)]
    finally:
        await conn.close()
    nodes = [line.split("(cost")[0].replace("->", "").strip() for line in plan if "(cost" in line]
    stats = (
        f"analyzed {row['analyzed']:%H:%M:%S}, reltuples {row['reltuples']:,.0f}"
        if row["analyzed"]
        else "not analyzed yet"
    )
    return f"payout_items {stats}; rewards.csv plan: {' > '.join(nodes[:6])}"


def run_bare_copy(url: str, batch: Any, batch_id: str, rewards: bool, path: Path) -> float:
    with path.open("wb") as out:
        return asyncio.run(bare_copy(url, batch, batch_id, rewards, out))


# --------------------------------------------------------------------------- server


def _status_kb(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def worker_pid(proc: subprocess.Popen) -> int:
    """The granian worker (the process running the app); the main process if none."""
    import psutil

    children = psutil.Process(proc.pid).children(recursive=True)
    if not children:
        return proc.pid
    return max(children, key=lambda c: c.memory_info().rss).pid


class PeakRss:
    """Peak RSS of one process during a block: VmHWM after resetting it through clear_refs,
    with RSS polling every 10 ms as the fallback where the reset is not allowed."""

    def __init__(self, pid: int) -> None:
        self.pid, self.polled, self.peak_kb = pid, 0, 0
        self.before_kb = _status_kb(pid, "VmRSS")
        self._stop = threading.Event()
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            self.exact = True
        except OSError:
            self.exact = False

    def _poll(self) -> None:
        while not self._stop.wait(0.01):
            with contextlib.suppress(OSError, ValueError):
                self.polled = max(self.polled, _status_kb(self.pid, "VmRSS"))

    def __enter__(self) -> PeakRss:
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        hwm = _status_kb(self.pid, "VmHWM") if self.exact else 0
        self.peak_kb = max(hwm, self.polled)


@dataclass
class Export:
    label: str
    seconds: float
    nbytes: int
    peak_mb: float | None = None
    before_mb: float | None = None
    first_byte: float | None = None
    note: str = ""


def http_download(base: str, key: str, path_part: str, pid: int, out: Path) -> Export:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    written = 0
    first = None
    with (
        httpx.Client(base_url=base, timeout=httpx.Timeout(120.0)) as client,
        out.open("wb") as sink,
        PeakRss(pid) as rss,
    ):
        started = time.perf_counter()
        with client.stream("GET", path_part, headers=headers) as response:
            if response.status_code != 200:
                response.read()
                raise BenchError(f"GET {path_part}: {response.status_code} {response.text[:300]}")
            for chunk in response.iter_raw(65536):
                if first is None:
                    first = time.perf_counter() - started
                sink.write(chunk)
                written += len(chunk)
        elapsed = time.perf_counter() - started
    return Export(
        "HTTP",
        elapsed,
        written,
        rss.peak_kb / 1024,
        rss.before_kb / 1024,
        first,
        "" if rss.exact else "polled",
    )


def cli_export(env: dict[str, str], batch_id: str, rewards: bool, out: Path) -> Export:
    """`referral payouts export` as a subprocess: wall time and peak RSS. The RSS comes from
    /usr/bin/time (its child's ru_maxrss), else from polling VmHWM: a child forked straight
    from this big process would report this process's size as its ru_maxrss."""
    exe = Path(sys.executable).parent / "referral"
    command = [str(exe), "payouts", "export", batch_id, "-o", str(out)]
    if rewards:
        command.append("--rewards")
    timer = Path("/usr/bin/time")
    rss_file = out.with_suffix(".rss")
    if timer.exists():
        command = [str(timer), "-f", "%M", "-o", str(rss_file)] + command
    polled = 0
    err_file = out.with_suffix(".err")
    with err_file.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        while proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                polled = max(polled, _status_kb(proc.pid, "VmHWM"))
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchError(
            f"{' '.join(command)}: exit {proc.returncode}: {err_file.read_text()[-500:]}"
        )
    if timer.exists():
        peak_kb, note = int(rss_file.read_text().split()[-1]), "/usr/bin/time"
    else:
        peak_kb, note = polled, "VmHWM polled"
    return Export("CLI", elapsed, out.stat().st_size, peak_kb / 1024, note=note)


def python_startup_seconds(env: dict[str, str]) -> float:
    """What the CLI pays before it exports: the interpreter and the imports it needs."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import referral.cli, referral.payouts.cli"],
        env=env,
        cwd=ROOT,
        check=True,
    )
    return time.perf_counter() - started


# --------------------------------------------------------------------------- checks


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_payouts(path: Path) -> dict:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {
        "rows": len(rows),
        "sum": sum(int(r["amount_minor"]) for r in rows),
        "payees": len({r["payee_customer_id"] for r in rows}),
        "reward_count": sum(int(r["reward_count"]) for r in rows),
        "emails": sum(1 for r in rows if r["payee_email"]),
    }


def read_rewards(path: Path) -> dict:
    rows = clawbacks = total = 0
    reward_ids = set()
    with path.open(newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows += 1
            total += int(r["net_minor"])
            if r["line_type"] == "clawback":
                clawbacks += 1
            else:
                reward_ids.add(r["reward_id"])
    return {"rows": rows, "sum": total, "clawbacks": clawbacks, "distinct": len(reward_ids)}


# --------------------------------------------------------------------------- main


def fmt_export(name: str, e: Export) -> str:
    mb = f"{e.peak_mb:7.1f}" if e.peak_mb is not None else "      -"
    before = f"{e.before_mb:6.1f}" if e.before_mb is not None else "     -"
    ttfb = f"{e.first_byte * 1000:6.0f}" if e.first_byte is not None else "     -"
    rate = e.nbytes / e.seconds / 1e6 if e.seconds else 0
    return (
        f"  {name:<12} {e.label:<22} {e.seconds:7.2f} {ttfb} {e.nbytes / 1e6:8.1f} "
        f"{rate:7.0f} {before} {mb}  {e.note}"
    )


def main() -> int:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (ROOT / ".referral").mkdir(exist_ok=True)
    note_load_average()
    keep = os.environ.get("BENCH_KEEP_FILES") == "1"
    tmp = Path(tempfile.mkdtemp(prefix="bench-payouts-", dir=ROOT / ".referral"))
    try:
        with fresh_database("bench-payouts") as db:
            url = db.url
            env = app_env(url, base, "warning")
            started = time.perf_counter()
            seeded = asyncio.run(seed(url, env))
            seed_seconds = time.perf_counter() - started
            print(
                f"seeded {ADVOCATES:,} advocates, {REWARDS:,} approved EUR cash rewards "
                f"(+ referrals, orders, {2 * REWARDS:,} transitions, {3 * REWARDS:,} ledger "
                f"entries) and {CLAWBACKS:,} clawbacks in {seed_seconds:.1f} s"
            )
            print("  " + ", ".join(f"{name} {s:.1f} s" for name, s in seeded.steps))

            batch, create_seconds, batch_id = asyncio.run(
                create_batch(url, env, seeded.merchant_id)
            )
            print(
                f"\nbatch {batch_id}: {batch.line_count:,} lines, {batch.reward_count:,} "
                f"rewards, total {batch.total:,} EUR minor units; created by "
                f"payouts.service.create in {create_seconds:.2f} s"
            )

            print(asyncio.run(planner_view(url, batch, batch_id)))
            files = {}
            results: dict[str, list[Export]] = {}
            with app_server(env, port, tmp / "server.log") as proc:
                pid = worker_pid(proc)
                for name, rewards in (("payouts.csv", False), ("rewards.csv", True)):
                    stem = name.removesuffix(".csv")
                    paths = {k: tmp / f"{stem}-{k}.csv" for k in ("copy", "http", "cli")}
                    runs = []
                    cold = run_bare_copy(url, batch, batch_id, rewards, paths["copy"])
                    size = paths["copy"].stat().st_size
                    runs.append(Export("bare COPY, first read", cold, size))
                    warm = run_bare_copy(url, batch, batch_id, rewards, paths["copy"])
                    runs.append(Export("bare COPY, warm", warm, size))
                    runs.append(
                        http_download(
                            base,
                            seeded.key,
                            f"/v1/payout-batches/{batch_id}/{name}",
                            pid,
                            paths["http"],
                        )  # fmt: skip
                    )
                    runs.append(cli_export(env, batch_id, rewards, paths["cli"]))
                    results[name] = runs
                    files[name] = paths
                server_rss_end = _status_kb(pid, "VmRSS") / 1024
                plan_after = asyncio.run(planner_view(url, batch, batch_id))
                stop_server(proc)
            errors_logged = logged_errors(tmp / "server.log")
            startup = python_startup_seconds(env)

        print(
            f"\n{'':2} {'file':<12} {'path':<22} {'seconds':>7} {'ttfb':>6} {'MB':>8} "
            f"{'MB/s':>7} {'rss0':>6} {'peakRSS':>7}  (ttfb ms; RSS in MB: before, peak)"
        )
        for name, runs in results.items():
            for e in runs:
                print(fmt_export(name, e))
        print(
            f"  (the CLI figures include starting Python and importing the app: "
            f"{startup:.2f} s; the server worker's RSS at the end {server_rss_end:.1f} MB)"
        )
        print(f"after the exports: {plan_after}")

        # ----------------------------------------------------------------- checks
        p_facts = read_payouts(files["payouts.csv"]["http"])
        r_facts = read_rewards(files["rewards.csv"]["http"])
        ledger = seeded.ledger
        expected_total = ledger["approved_sum"] - CLAWBACKS * CLAWBACK_AMOUNT
        identical = {
            name: len({sha256(p) for p in paths.values()}) == 1 for name, paths in files.items()
        }
        checks = [
            (
                ledger["off"] == 0
                and ledger["approved"] == REWARDS
                and ledger["payable"] == ledger["approved_sum"]
                and ledger["pending"] == 0
                and ledger["receivable"] == -CLAWBACKS * CLAWBACK_AMOUNT,
                f"seeded ledger consistent: {ledger['approved']:,} approved rewards, every "
                f"reward's entries sum to its amount ({ledger['off']} off), payable "
                f"{ledger['payable']:,} = approved sum, receivable {ledger['receivable']:,}",
            ),
            (
                batch.line_count == ADVOCATES
                and p_facts["rows"] == batch.line_count
                and p_facts["payees"] == ADVOCATES
                and p_facts["emails"] == ADVOCATES,
                f"payouts.csv rows {p_facts['rows']:,} = line_count {batch.line_count:,} "
                f"= payees {ADVOCATES:,} (all with an email)",
            ),
            (
                batch.reward_count == REWARDS
                and p_facts["reward_count"] == REWARDS
                and r_facts["rows"] == REWARDS + CLAWBACKS
                and r_facts["distinct"] == REWARDS
                and r_facts["clawbacks"] == CLAWBACKS,
                f"rewards.csv rows {r_facts['rows']:,} = {r_facts['distinct']:,} distinct "
                f"rewards + {r_facts['clawbacks']:,} clawbacks; reward_count "
                f"{batch.reward_count:,}",
            ),
            (
                p_facts["sum"] == batch.total == r_facts["sum"] == expected_total,
                f"sum amount_minor {p_facts['sum']:,} = batch total {batch.total:,} = sum "
                f"net_minor {r_facts['sum']:,} = seeded approved {ledger['approved_sum']:,} "
                f"- clawbacks {CLAWBACKS * CLAWBACK_AMOUNT:,}",
            ),
            (
                all(identical.values()),
                "bare COPY, HTTP and CLI files byte-identical: "
                + ", ".join(f"{n} {'yes' if ok else 'NO'}" for n, ok in identical.items()),
            ),
            (not errors_logged, f"no errors in the server log ({len(errors_logged)} lines)"),
        ]
    finally:
        if keep:
            print(f"files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print("correctness: " + ("PASS" if all(ok for ok, _ in checks) else "FAIL"))
    for ok, text in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {text}")
    for line in errors_logged[:3]:
        print(f"  server log: {line[:300]}")

    targets = []
    for name, runs in results.items():
        bare = min(runs[0].seconds, runs[1].seconds)  # the faster of the two bare COPYs
        for e in runs[2:]:
            ok = e.seconds < TARGET_SECONDS and (e.peak_mb or 0) < TARGET_MB
            targets.append((ok, f"{name} {e.label} {e.seconds:.1f} s, {e.peak_mb:.0f} MB"))
        http = runs[2]
        targets.append(
            (
                http.seconds <= TARGET_RATIO * bare,
                f"{name} HTTP/bare COPY {http.seconds / bare:.1f}x",
            )
        )
    print(
        f"targets (< {TARGET_SECONDS:g} s, < {TARGET_MB:g} MB peak RSS, HTTP within "
        f"{TARGET_RATIO:g}x of a bare COPY): "
        + "; ".join(f"{t} {'met' if ok else 'MISSED'}" for ok, t in targets)
    )
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    run_main("bench-payouts", main)
