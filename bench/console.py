"""How fast the console's pages render at the analytics benchmark's size.

`make bench-console` seeds a merchant as `bench/analytics.py` does (BENCH_SCALE: 1 is a year
of 10,000,000 clicks, 1,000,000 orders and 50,000 advocates; 0.1 for a quicker run), serves
the app with granian (1 worker, uvloop), signs in to the console with a one-time link, and
requests every page BENCH_PAGE_REQUESTS (50) times after a warm-up: the overview over the
last 30 days, over the year by month and by day, the advocates list and a search, a top
advocate's page, the review queue and a held referral's explain view, stories, payouts and
settings. It prints p50/p99 per page; the target is p99 under 100 ms for every page.

Correctness (exit 1 when one fails): every page answered 200; the overview's referred
revenue and new customers from referral are the analytics API's figures for the same range;
the search finds the advocate by code; no error in the server log. Exit 2 when it cannot run.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import analytics
import asyncpg
import httpx
from harness import (
    ROOT,
    app_env,
    app_server,
    free_port,
    fresh_database,
    logged_errors,
    note_load_average,
    run_main,
    stop_server,
)

REQUESTS = int(os.environ.get("BENCH_PAGE_REQUESTS", "50"))
WARMUP = 3
TARGET_MS = 100.0


async def sign_in_link(url: str, env: dict[str, str], merchant_id: int) -> str:
    from referral import settings as settings_module
    from referral.console import service
    from referral.lib.ids import PublicIds

    settings = settings_module.from_env(env)
    conn = await asyncpg.connect(url)
    try:
        return await service.create_sign_in_link(
            conn, ids=PublicIds(settings.hashids_salt), settings=settings, merchant_id=merchant_id
        )
    finally:
        await conn.close()


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return p50 * 1000, p99 * 1000


def _first(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text)
    return found.group(1) if found else None


def time_pages(base: str, link: str, key: str, code: str, cal) -> tuple[list, list[str]]:
    """(rows of (page, p50, p99, statuses)), problems)."""
    problems: list[str] = []
    rows = []
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as http:
        fields = dict(re.findall(r"(merchant|token)=([^&]+)", link))
        signed = http.post("/console/sign-in", data={**fields, "actor": "bench"})
        if signed.status_code != 303:
            raise SystemExit(
                f"bench-console: sign-in failed: {signed.status_code} {signed.text[:300]}"
            )
        year = f"from={cal.first}&to={cal.today}"
        search = http.get("/console/advocates", params={"q": code.lower()}).text
        advocate = _first(r'href="/console/advocates/(adv_[^"]+)"', search)
        if advocate is None:
            problems.append(f"the search did not find the advocate with code {code}")
        review = http.get("/console/review").text
        referral = _first(r'href="/console/referrals/(ref_[^"]+)"', review)
        pages = [
            ("overview, last 30 days", "/console"),
            ("overview, year by month", f"/console?{year}&interval=month"),
            ("overview, year by day", f"/console?{year}&interval=day"),
            ("advocates", "/console/advocates"),
            ("advocate search", f"/console/advocates?q={code}"),
            ("review queue", "/console/review"),
            ("stories", "/console/stories"),
            ("payouts", "/console/payouts"),
            ("settings", "/console/settings"),
        ]
        if advocate:
            pages.insert(5, ("an advocate's page", f"/console/advocates/{advocate}"))
        if referral:
            pages.append(("a referral explained", f"/console/referrals/{referral}"))
        else:
            problems.append("the review queue lists no held referral")
        for name, path in pages:
            statuses, samples = set(), []
            for i in range(WARMUP + REQUESTS):
                started = time.perf_counter()
                response = http.get(path)
                elapsed = time.perf_counter() - started
                statuses.add(response.status_code)
                if i >= WARMUP:
                    samples.append(elapsed)
            p50, p99 = _percentiles(samples)
            rows.append((name, p50, p99, sorted(statuses)))
            print(f"  {name:<26} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  {sorted(statuses)}",
                  flush=True)  # fmt: skip
        # The overview's figures are the API's (the last 30 days, the default range).
        overview = http.get("/console").text
        api = http.get("/v1/analytics/impact", headers={"authorization": f"Bearer {key}"}).json()
        figures = {(v["metric"], v.get("currency")): v["value"] for v in api["totals"]}
        from referral.console import words

        for currency in sorted({c for (m, c) in figures if m == "referred_revenue" and c}):
            shown = words.money(figures[("referred_revenue", currency)], currency, "en")
            if f'<p class="value">{shown}</p>' not in overview:
                problems.append(f"the overview does not show referred revenue {shown}")
        new = words.number(figures.get(("referred_new_customers", None)), "en")
        if f'<p class="value">{new}</p>' not in overview:
            problems.append(f"the overview does not show {new} new customers from referral")
    return rows, problems


def main() -> int:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (ROOT / ".referral").mkdir(exist_ok=True)
    note_load_average()
    cal = analytics.Calendar(ZoneInfo(analytics.ZONE_NAME), datetime.now(UTC))
    print(f"BENCH_SCALE={analytics.SCALE:g}: {analytics.CLICKS:,} clicks, {analytics.ORDERS:,} "
          f"orders, {analytics.ADVOCATES:,} advocates over {cal.first} .. {cal.today}")  # fmt: skip
    with (
        fresh_database("bench-console") as db,
        tempfile.TemporaryDirectory(prefix="bench-console-", dir=ROOT / ".referral") as tmp,
    ):
        env = app_env(db.url, base, "warning")
        print("seeding:")
        started = time.monotonic()
        world, _ = asyncio.run(analytics.seed(db.url, env, cal))
        print(f"seeded in {time.monotonic() - started:.0f} s")
        log_path = Path(tmp) / "server.log"
        with app_server(env, port, log_path) as proc:
            link = asyncio.run(sign_in_link(db.url, env, world.merchant_id))
            print(f"\n-- console pages, {REQUESTS} requests each after {WARMUP} (one at a time)")
            rows, problems = time_pages(base, link, world.key, world.codes[0], cal)
            stop_server(proc)
        errors = logged_errors(log_path)
    checks = [(not problems, "; ".join(problems) or "the overview shows the API's figures")]
    bad = [name for name, _, _, statuses in rows if statuses != [200]]
    checks.append((not bad, "every page answered 200" + (f"; not: {bad}" if bad else "")))
    checks.append(
        (not errors, "no error in the server log" + (f": {errors[:3]}" if errors else ""))
    )
    print("\ncorrectness:")
    for ok, text in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    slow = [name for name, _, p99, _ in rows if p99 >= TARGET_MS]
    print(f"\ntarget: every page's p99 under {TARGET_MS:.0f} ms: "
          + ("met" if not slow else f"MISSED ({', '.join(slow)})"))  # fmt: skip
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    run_main("bench-console", main)
