"""Benchmark of webhook delivery: deliveries per second to a local receiver and the delay
from the committing transaction to the receiver, with the checkout's order load beside it.

    make bench-webhooks        (or: .venv/bin/python bench/webhooks.py)

Starts a PostgreSQL (embedded or BENCH_DATABASE_URL, as bench/checkout.py does), seeds the
checkout benchmark's merchant, program and advocates, serves `referral.app:asgi` with
granian (1 worker, uvloop) and its webhook sender (WEBHOOK_INTERVAL_SECONDS 0.05), and runs
a Standard Webhooks receiver on 127.0.0.1 in this process (tests/webhooks/receiver.py).

1. orders at BENCH_RATE (200/s) for BENCH_DURATION (15 s) with no webhook endpoint: the
   checkout's own p50/p99;
2. an endpoint for every event type is added; (a) BENCH_EVENTS events are committed in
   batches of 1,000 with no other load: deliveries per second and delay, alone; (b) the
   same order load as in 1 runs again: each
   referred order's events (referral.converted, reward.created x 2) are delivered while
   orders come in; the checkout p99 beside delivery, and the delay from each event's
   transaction to its arrival (p50/p99);
3. throughput: BENCH_EVENTS (20,000) events committed in batches of 1,000 through the
   outbox's service while the orders run again: deliveries per second from the first
   commit to the last arrival, and their delay.

The delay is arrival time minus the event's `created_at` (its transaction's start, a few
milliseconds before its commit). Afterwards every event written after the endpoint was
made must have arrived (by webhook-id), every request must verify with the
`standardwebhooks` library, and every attempt row must be a success. Exit status: 0 when
those checks pass, 1 when one fails, 2 when the benchmark cannot run. Targets: >= 1,000
deliveries/s, p99 delay < 1 s. Environment: BENCH_RATE, BENCH_DURATION, BENCH_EVENTS,
BENCH_ADVOCATES (200), BENCH_DATABASE_URL, BENCH_SENDER (`app`: the web worker sends, as
a single instance does; `process`: the web worker runs no sender and `referral webhooks
send` does, in a process of its own), and the app's WEBHOOK_* settings (passed on).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import checkout
from harness import (
    ROOT,
    app_env,
    app_server,
    background,
    execute_sql,
    free_port,
    fresh_database,
    logged_errors,
    note_load_average,
    run_main,
)

RATE = float(os.environ.get("BENCH_RATE", "200"))
DURATION = float(os.environ.get("BENCH_DURATION", "15"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "20000"))
ADVOCATES = int(os.environ.get("BENCH_ADVOCATES", "200"))


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def _merchant_of(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT id FROM merchants WHERE mode = 'test' LIMIT 1")
    finally:
        await conn.close()


async def _events_since(url: str, merchant_id: int, after_id: int) -> list[tuple[int, float]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT id, extract(epoch FROM created_at)::float8 AS t FROM events "
            "WHERE merchant_id = $1 AND id > $2",
            merchant_id,
            after_id,
        )
        return [(r["id"], r["t"]) for r in rows]
    finally:
        await conn.close()


async def _scalar(url: str, sql: str, *args: object) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def _emit_bulk(url: str, merchant_id: int, count: int) -> float:
    """`count` events through the outbox's service, 1,000 per transaction; the time of the
    first commit."""
    from referral.events import service as events
    from referral.lib.db import create_pool

    pool = await create_pool(url, min_size=1, max_size=2)
    first = 0.0
    try:
        for start in range(0, count, 1000):
            async with pool.acquire() as conn, conn.transaction():
                await events.emit_many(
                    conn,
                    merchant_id=merchant_id,
                    type="order.cancelled",
                    payloads=[{"order_id": f"bulk-{n}"} for n in range(start, start + 1000)],
                )
            first = first or time.time()
    finally:
        await pool.close()
    return first


def _wait_for_all(url, merchant_id, after_id, ids, receiver, timeout: float) -> set[str]:
    want = {
        ids.encode("event", i) for i, _ in asyncio.run(_events_since(url, merchant_id, after_id))
    }
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if want <= {g.headers["webhook-id"] for g in receiver.received()}:
            break
        time.sleep(0.5)
    return want


def _burst(url, merchant_id, after_id, ids, receiver) -> tuple[float, list[float]]:
    """Commit EVENTS events and wait for them: (deliveries/s, delays in seconds)."""
    mark = asyncio.run(_scalar(url, "SELECT coalesce(max(id), 0) FROM events"))
    first_commit = asyncio.run(_emit_bulk(url, merchant_id, EVENTS))
    events = asyncio.run(_events_since(url, merchant_id, mark))
    _wait_for_all(url, merchant_id, mark, ids, receiver, 180)
    arrived = {g.headers["webhook-id"]: g.at for g in receiver.received()}
    delays = [arrived[k] - t for i, t in events if (k := ids.encode("event", i)) in arrived]
    last = max(
        (arrived[k] for i, _ in events if (k := ids.encode("event", i)) in arrived), default=0
    )
    span = last - first_commit
    return (len(delays) / span if span > 0 else 0.0), delays


SENDER = os.environ.get("BENCH_SENDER", "app")


@contextlib.contextmanager
def _sender_process(env: dict[str, str], log_path: Path):
    """`referral webhooks send` beside the server (BENCH_SENDER=process), else nothing."""
    if SENDER != "process":
        yield None
        return
    command = [sys.executable, "-m", "referral", "webhooks", "send", "--interval", "0.05"]
    with background(command, env, log_path) as proc:
        yield proc


def main() -> int:
    import httpx
    from standardwebhooks import Webhook
    from standardwebhooks.webhooks import WebhookVerificationError

    from referral.lib.ids import PublicIds
    from tests.webhooks.receiver import Receiver

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (ROOT / ".referral").mkdir(exist_ok=True)
    note_load_average()
    failures: list[str] = []
    with (
        fresh_database("bench-webhooks") as db,
        tempfile.TemporaryDirectory(prefix="bench-webhooks-", dir=ROOT / ".referral") as tmp,
        Receiver() as receiver,
    ):
        if SENDER not in ("app", "process"):
            print(f"BENCH_SENDER is app or process, not {SENDER!r}", file=sys.stderr)
            return 2
        interval = "0.05" if SENDER == "app" else "0"  # 0: no sender in the web worker
        env = app_env(
            db.url, base, "warning", WEBHOOK_INTERVAL_SECONDS=interval, RELEASE_INTERVAL_SECONDS="0"
        )
        ids = PublicIds(env["REFERRAL_HASHIDS_SALT"])
        key, codes = asyncio.run(checkout.seed(db.url, env, ADVOCATES))
        merchant_id = asyncio.run(_merchant_of(db.url))
        log_path = Path(tmp) / "server.log"
        gen = checkout.LoadGen(base, key, codes)
        with (
            app_server(env, port, log_path) as proc,
            _sender_process(env, Path(tmp) / "sender.log") as sender,
        ):
            cpu = checkout.CpuMeter(proc.pid, db.postmaster_pid)
            sending = checkout.CpuMeter((sender or proc).pid, db.postmaster_pid)
            where = "the web worker" if sender is None else "`referral webhooks send`"
            print(
                f"granian (1 worker, uvloop) on {base}; receiver on {receiver.url()}; "
                f"webhooks sent by {where}"
            )
            # A shop's database has history, and PostgreSQL statistics about it (as in
            # bench-checkout: on a fresh database the order path's reads walk whole indexes).
            history = gen.run("history", "order", 250, checkout.HISTORY / 250, 0, "hist", None)
            asyncio.run(execute_sql(db.url, "ANALYZE"))
            print(f"history: {len(history.created):,} orders through the API, then ANALYZE")
            print(f"\n-- 1. orders at {RATE:g}/s for {DURATION:g} s, no webhook endpoint")
            alone = gen.run("POST /v1/orders", "order", RATE, DURATION, 2, "alone", cpu)
            print(checkout.describe(alone), flush=True)

            with httpx.Client(base_url=base, timeout=10) as http:
                created = http.post(
                    "/v1/webhook-endpoints",
                    json={"url": receiver.url(), "description": "bench"},
                    headers={"Authorization": f"Bearer {key}"},
                )
            if created.status_code != 201:
                print(f"cannot add the endpoint: {created.text}", file=sys.stderr)
                return 2
            secret = created.json()["secret"]
            last_before = asyncio.run(_scalar(db.url, "SELECT coalesce(max(id), 0) FROM events"))

            print(f"\n-- 2a. {EVENTS:,} events committed in batches of 1,000, no other load")
            app0, db0, _ = sending.sample()
            quiet_rate, quiet_delays = _burst(db.url, merchant_id, last_before, ids, receiver)
            app1, db1, _ = sending.sample()
            per = 1000 / max(1, len(quiet_delays))
            app_ms, db_ms = cpu.delta(app0, app1) * per, cpu.delta(db0, db1) * per
            print(
                f"   {quiet_rate:,.0f} deliveries/s; delay commit -> receiver p50 "
                f"{pct(quiet_delays, 50) * 1000:.0f} ms  p99 {pct(quiet_delays, 99) * 1000:.0f} ms"
                f"\n   CPU per delivery: sender {app_ms:.2f} ms, PostgreSQL {db_ms:.2f} ms "
                f"(with the 1,000-event commits; not slowed by other work on the machine)"
            )
            last_live = asyncio.run(_scalar(db.url, "SELECT coalesce(max(id), 0) FROM events"))

            print("\n-- 2b. the same orders, their events delivered as they come")
            beside = gen.run("POST /v1/orders", "order", RATE, DURATION, 2, "beside", cpu)
            print(checkout.describe(beside), flush=True)
            time.sleep(2)
            live_events = asyncio.run(_events_since(db.url, merchant_id, last_live))
            arrived = {g.headers["webhook-id"]: g.at for g in receiver.received()}
            live_delays = [
                arrived[ids.encode("event", i)] - t
                for i, t in live_events
                if ids.encode("event", i) in arrived
            ]
            print(
                f"   {len(live_events):,} events ({len(live_events) / DURATION:,.0f}/s) from "
                f"the orders; delay commit -> receiver p50 {pct(live_delays, 50) * 1000:.0f} ms"
                f"  p99 {pct(live_delays, 99) * 1000:.0f} ms  max {max(live_delays) * 1000:.0f} ms"
            )
            mark = asyncio.run(_scalar(db.url, "SELECT coalesce(max(id), 0) FROM events"))

            print(f"\n-- 3. {EVENTS:,} events committed in batches of 1,000 beside the orders")
            result: dict[str, object] = {}
            loader = threading.Thread(
                target=lambda: result.update(
                    run=gen.run("POST /v1/orders", "order", RATE, DURATION, 0, "bulk", None)
                )
            )
            loader.start()
            time.sleep(1)
            first_commit = asyncio.run(_emit_bulk(db.url, merchant_id, EVENTS))
            bulk_ids = asyncio.run(_events_since(db.url, merchant_id, mark))
            want = {ids.encode("event", i) for i, _ in bulk_ids}
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                if want <= {g.headers["webhook-id"] for g in receiver.received()}:
                    break
                time.sleep(0.5)
            arrived = {g.headers["webhook-id"]: g.at for g in receiver.received()}
            loader.join()
            run = result["run"]
            print(checkout.describe(run), flush=True)  # type: ignore[arg-type]
            bulk_arrivals = [
                arrived[ids.encode("event", i)]
                for i, _ in bulk_ids
                if ids.encode("event", i) in arrived
            ]
            bulk_delays = [
                arrived[ids.encode("event", i)] - t
                for i, t in bulk_ids
                if ids.encode("event", i) in arrived
            ]
            span = max(bulk_arrivals) - first_commit if bulk_arrivals else float("inf")
            rate = len(bulk_arrivals) / span if span else 0.0
            print(
                f"   {len(bulk_arrivals):,} deliveries in {span:.1f} s: {rate:,.0f}/s "
                f"(target >= 1,000/s); delay commit -> receiver p50 "
                f"{pct(bulk_delays, 50) * 1000:.0f} ms  p99 {pct(bulk_delays, 99) * 1000:.0f} ms"
            )
            # Before the server stops: the last orders' events arrive too.
            _wait_for_all(db.url, merchant_id, last_before, ids, receiver, 120)
            errors = logged_errors(log_path)

        # ------------------------------------------------------------------ checks
        every = asyncio.run(_events_since(db.url, merchant_id, last_before))
        got = receiver.received()
        seen = {g.headers["webhook-id"] for g in got}
        missing = [i for i, _ in every if ids.encode("event", i) not in seen]
        if missing:
            failures.append(f"{len(missing)} of {len(every)} events never arrived")
        verifier = Webhook(secret)
        bad = 0
        for g in got:
            try:
                verifier.verify(g.body, g.headers)
            except WebhookVerificationError:
                bad += 1
        if bad:
            failures.append(f"{bad} of {len(got)} deliveries failed verification")
        failed_attempts = asyncio.run(
            _scalar(db.url, "SELECT count(*) FROM webhook_attempts WHERE NOT succeeded")
        )
        if failed_attempts:
            failures.append(f"{failed_attempts} attempts failed")
        if errors:
            failures.append(f"{len(errors)} error lines in the server log: {errors[:3]}")
        print(
            f"\nchecks: {len(every):,} events, {len(got):,} requests "
            f"({len(got) - len(seen):,} duplicates), all signatures verified: {bad == 0}, "
            f"none missing: {not missing}"
        )
        print(
            f"summary: checkout p99 {alone.latency['p99']:.1f} ms alone, "
            f"{beside.latency['p99']:.1f} ms beside live delivery, "
            f"{run.latency['p99']:.1f} ms beside the {EVENTS:,}-event burst; "  # type: ignore[attr-defined]
            f"deliveries {quiet_rate:,.0f}/s alone ({app_ms:.2f} ms sender CPU each), "
            f"{rate:,.0f}/s beside orders; "
            f"delay p99 {pct(live_delays, 99) * 1000:.0f} ms live, "
            f"{pct(bulk_delays, 99) * 1000:.0f} ms in the burst"
        )
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    run_main("bench-webhooks", main)
