"""Benchmark of switching in: a 1,000,000-line customer file through `referral import`.

    make bench-imports        (or: .venv/bin/python bench/imports.py)

Starts a PostgreSQL (embedded, in `.referral/bench-imports-pg-*`, removed afterwards; or a
fresh database on the server named by BENCH_DATABASE_URL, dropped afterwards), migrates, and
makes one merchant through the services. Writes BENCH_LINES (1,000,000) customers as CSV
(`customer_id,email`, a line at a time: the file is never in this process's memory) into
`.referral/`, then runs `referral import customers FILE --merchant …` as a subprocess, twice:

1. the first import: every line created;
2. the same file again: nothing created, every line unchanged (idempotency).

Printed for each: wall time (the command's whole run: interpreter start, streaming the file
into staging by COPY, the batches), lines/s and the command's peak RSS (/usr/bin/time's
maximum resident set size, else the children's ru_maxrss). PostgreSQL's own memory is not
counted (its shared buffers are the server's, whatever the file).

Checks: the import succeeded with read = created = BENCH_LINES the first time and created =
0, unchanged = BENCH_LINES the second; `imported_customers` holds BENCH_LINES rows; no
staged line is left. Target: under 60 s, in constant memory (the peak RSS does not grow with
BENCH_LINES: compare BENCH_LINES=100000).

Environment: BENCH_LINES (1000000), BENCH_DATABASE_URL. Exit status: 0 when the checks pass,
1 when one fails, 2 when the benchmark cannot run.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from harness import ROOT, BenchError, app_env, fresh_database, note_load_average, run_main

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")  # platformdirs, as root

LINES = int(os.environ.get("BENCH_LINES", "1000000"))
TARGET_SECONDS = 60.0


async def seed(url: str, env: dict[str, str]) -> str:
    """Migrate, and make the merchant; its public id."""
    import asyncpg

    from referral.lib.db import migrate
    from referral.lib.ids import PublicIds
    from referral.lib.logging import configure_logging
    from referral.merchants import service as merchant_service

    configure_logging("console", "warning")
    await migrate(url)
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            merchant = (await merchant_service.create_merchant(conn, name="Bench Imports"))["live"]
    finally:
        await conn.close()
    return PublicIds(env["REFERRAL_HASHIDS_SALT"]).encode("merchant", merchant.id)


def write_file(path: Path, lines: int) -> int:
    with path.open("w", buffering=1 << 20) as out:
        out.write("customer_id,email\n")
        for n in range(lines):
            out.write(f"cus-{n:07d},customer.{n}@example.com\n")
    return path.stat().st_size


def run_import(env: dict[str, str], merchant: str, path: Path, label: str) -> dict:
    """`referral import customers FILE` as a subprocess: its summary, wall time, peak RSS."""
    exe = Path(sys.executable).parent / "referral"
    command = [str(exe), "import", "customers", str(path), "--merchant", merchant]
    timer = Path("/usr/bin/time")
    rss_file = path.with_suffix(f".{label}.rss")
    if timer.exists():
        command = [str(timer), "-f", "%M", "-o", str(rss_file)] + command
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(command)}: exit {proc.returncode}: {proc.stderr[-800:]}")
    if timer.exists():
        peak_kb, how = int(rss_file.read_text().split()[-1]), "/usr/bin/time"
    else:
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        how = "ru_maxrss" if peak_kb > before else "ru_maxrss (a lower bound)"
    summary = json.loads(proc.stdout)
    print(
        f"{label:>7}: {elapsed:6.1f} s  {LINES / elapsed:>10,.0f} lines/s  "
        f"peak RSS {peak_kb / 1024:6.1f} MB ({how})  counts {summary['counts']}"
    )
    return {"summary": summary, "seconds": elapsed, "peak_mb": peak_kb / 1024}


async def counts(url: str) -> tuple[int, int]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return (
            await conn.fetchval("SELECT count(*) FROM imported_customers"),
            await conn.fetchval("SELECT count(*) FROM import_lines"),
        )
    finally:
        await conn.close()


def main() -> int:
    (ROOT / ".referral").mkdir(exist_ok=True)
    note_load_average()
    tmp = Path(tempfile.mkdtemp(prefix="bench-imports-", dir=ROOT / ".referral"))
    path = tmp / "customers.csv"
    try:
        started = time.perf_counter()
        size = write_file(path, LINES)
        print(
            f"file: {LINES:,} lines, {size / 1e6:.1f} MB, written in "
            f"{time.perf_counter() - started:.1f} s"
        )
        with fresh_database("bench-imports") as db:
            env = app_env(db.url, "http://127.0.0.1:9", "warning")
            merchant = asyncio.run(seed(db.url, env))
            first = run_import(env, merchant, path, "first")
            again = run_import(env, merchant, path, "again")
            rows, staged = asyncio.run(counts(db.url))
    finally:
        for leftover in tmp.iterdir():
            leftover.unlink()
        tmp.rmdir()
    failures = []
    want_first = {"read": LINES, "created": LINES, "unchanged": 0, "failed": 0}
    want_again = {"read": LINES, "created": 0, "unchanged": LINES, "failed": 0}
    if first["summary"]["status"] != "succeeded" or first["summary"]["counts"] != want_first:
        failures.append(f"first import: {first['summary']['counts']} != {want_first}")
    if again["summary"]["counts"] != want_again:
        failures.append(f"second import: {again['summary']['counts']} != {want_again}")
    if rows != LINES:
        failures.append(f"imported_customers holds {rows:,} rows, not {LINES:,}")
    if staged:
        failures.append(f"{staged:,} staged lines left behind")
    met = "met" if first["seconds"] < TARGET_SECONDS else "MISSED"
    print(f"target: the first import under {TARGET_SECONDS:.0f} s: {met}")
    for failure in failures:
        print(f"FAILED: {failure}")
    if not failures:
        print("checks: counts, idempotency, rows and staging: ok")
    return 1 if failures else 0


if __name__ == "__main__":
    run_main("bench-imports", main)
