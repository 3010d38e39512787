"""Unique clicks beside raw clicks: one per (visitor id, advocate, day), the day being the
merchant's calendar day. Checked against an in-memory model of that definition over random
clicks (visitors, advocates, bots, batches, days across time-zone boundaries), and through
the API as a shop sees it."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from referral.lib.db import create_pool
from referral.links.clicks import ClickWriter
from referral.links.service import new_click_id
from tests.factories import create_advocate, create_program, make_tenant

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
# Local midnight, a daylight-saving switch and a half-hour offset inside the windows below.
ZONES = {
    "Europe/Stockholm": datetime(2026, 3, 28, 23, 0, tzinfo=UTC),  # midnight; DST at 01:00 UTC
    "Asia/Kolkata": datetime(2026, 6, 30, 18, 30, tzinfo=UTC),  # midnight at +05:30
    "America/Los_Angeles": datetime(2026, 11, 2, 8, 0, tzinfo=UTC),  # midnight at -08:00
}
CHANNELS = ("link", "qr", "whatsapp")


@pytest.fixture
async def writer_pool(database_url):
    pool = await create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


def _click(merchant: int, advocate: int, visitor: str, at: datetime, channel: str, bot: bool):
    return (
        new_click_id(),
        at,
        merchant,
        100 + merchant,  # the program: one per merchant
        advocate,
        "CODE",
        channel,
        visitor,
        None,
        None,
        None,
        None,
        None,
        bot,
    )


def _model(clicks: list[tuple], zones: dict[int, str]) -> tuple[set, Counter]:
    """The definition, in memory: the keys (merchant, advocate, local day, visitor) of human
    clicks, and per (merchant, advocate, channel, UTC hour) the unique clicks first seen
    there (clicks come in time order)."""
    keys: set[tuple] = set()
    per_rollup: Counter = Counter()
    for c in sorted(clicks, key=lambda c: c[1]):
        if c[13]:
            continue
        day = c[1].astimezone(ZoneInfo(zones[c[2]])).date()
        key = (c[2], c[4], day, c[7])
        if key not in keys:
            keys.add(key)
            per_rollup[(c[2], c[4], c[6], c[1].replace(minute=0, second=0, microsecond=0))] += 1
    return keys, per_rollup


async def _zoned_merchants(db: asyncpg.Connection) -> dict[int, str]:
    zones = {}
    for n, zone in enumerate(ZONES):
        tenant = await make_tenant(db, f"Shop {n}")
        await db.execute(
            "UPDATE merchants SET time_zone = $2 WHERE id = $1", tenant.merchant_id, zone
        )
        zones[tenant.merchant_id] = zone
    return zones


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_unique_clicks_match_the_model(writer_pool, db, seed):
    rng = random.Random(seed)
    zones = await _zoned_merchants(db)
    clicks = []
    for merchant, zone in zones.items():
        boundary = ZONES[zone]
        for _ in range(rng.randint(150, 300)):
            # Within five hours of the local midnight, microseconds apart (no ties).
            at = boundary + timedelta(seconds=rng.randint(-5 * 3600, 5 * 3600))
            at += timedelta(microseconds=rng.randint(0, 999_999))
            clicks.append(
                _click(
                    merchant,
                    advocate=rng.randint(1, 3),
                    visitor=f"visitor-{rng.randint(1, 12):04d}-aaaaaaaa",
                    at=at,
                    channel=rng.choice(CHANNELS),
                    bot=rng.random() < 0.15,
                )
            )
    clicks.sort(key=lambda c: c[1])

    # Batches of random sizes, some spanning the boundary, some a single click.
    writer = ClickWriter(writer_pool)
    written = 0
    for click in clicks:
        writer.record(click)
        if rng.random() < 0.08:
            written += await writer.flush()
    written += await writer.flush()
    assert written == len(clicks)

    keys, per_rollup = _model(clicks, zones)
    stored = {tuple(r) for r in await db.fetch("SELECT * FROM unique_clicks")}
    assert stored == keys
    rollups = await db.fetch(
        "SELECT merchant_id, advocate_id, channel, hour, clicks, bot_hits, unique_clicks "
        "FROM click_rollups"
    )
    got = Counter({(r[0], r[1], r[2], r[3]): r["unique_clicks"] for r in rollups})
    assert +got == per_rollup
    assert sum(r["clicks"] for r in rollups) == sum(not c[13] for c in clicks)
    assert sum(r["bot_hits"] for r in rollups) == sum(c[13] for c in clicks)
    # The same visitor on both sides of a local midnight is two unique clicks, one a day.
    days = {(m, a, v): set() for m, a, _, v in keys}
    for m, a, day, v in keys:
        days[(m, a, v)].add(day)
    assert any(len(d) == 2 for d in days.values())


async def test_a_replayed_batch_counts_no_unique_click_twice(writer_pool, db):
    zones = await _zoned_merchants(db)
    merchant = next(iter(zones))
    at = datetime(2026, 5, 5, 12, tzinfo=UTC)
    writer = ClickWriter(writer_pool)
    for n in range(3):  # the same visitor three times, in three batches
        writer.record(
            _click(merchant, 7, "visitor-0001-aaaaaaaa", at + timedelta(minutes=n), "qr", False)
        )
        await writer.flush()
    writer.record(_click(merchant, 7, "visitor-0002-aaaaaaaa", at, "qr", True))  # a bot
    await writer.flush()
    clicks, bots, uniques = await db.fetchrow(
        "SELECT sum(clicks), sum(bot_hits), sum(unique_clicks) FROM click_rollups"
    )
    assert (clicks, bots, uniques) == (3, 1, 1)


async def test_a_zone_the_database_does_not_know_never_stops_the_writer(writer_pool, db):
    tenant = await make_tenant(db, "Shop Z")
    await db.execute(
        "UPDATE merchants SET time_zone = 'Mars/Olympus_Mons' WHERE id = $1", tenant.merchant_id
    )
    writer = ClickWriter(writer_pool)
    at = datetime(2026, 5, 5, 23, 30, tzinfo=UTC)
    writer.record(_click(tenant.merchant_id, 1, "visitor-0001-aaaaaaaa", at, "link", False))
    assert await writer.flush() == 1
    assert writer.last_error is None
    assert await db.fetchval("SELECT day FROM unique_clicks") == at.date()  # counted in UTC


async def test_the_api_shows_unique_clicks_beside_raw_clicks(client, tenant, db):
    program = await create_program(client, tenant)
    anna = await create_advocate(client, tenant, program["id"], "cus_anna")
    ben = await create_advocate(client, tenant, program["id"], "cus_ben")

    async def visit(advocate, visitor: str | None, agent: str = CHROME, channel: str = ""):
        client.cookies.clear()
        headers = {"user-agent": agent}
        if visitor:
            headers["cookie"] = f"rv={visitor}"
        r = await client.get(
            f"/r/{advocate['code']}{channel}", headers=headers, follow_redirects=False
        )
        assert r.status_code == 302

    # One browser clicking Anna's link 20 times, on two channels: 20 clicks, 1 unique.
    for n in range(20):
        await visit(anna, "returningvisitor01", channel=("?ch=qr", "")[n % 2])
    for visitor in ("secondvisitor0001", "thirdvisitor00001"):
        await visit(anna, visitor)
    await visit(anna, None)  # a new visitor, given a cookie
    await visit(anna, "botvisitor0000001", agent="facebookexternalhit/1.1")
    await visit(ben, "returningvisitor01")  # the same browser for another advocate
    # Rows and rollups commit together: once the rows are there, so are the counts.
    for _ in range(500):
        if await db.fetchval("SELECT count(*) FROM clicks") == 25:
            break
        await asyncio.sleep(0.01)

    for advocate, clicks, unique in ((anna, 23, 4), (ben, 1, 1)):
        shown = (await client.get(f"/v1/advocates/{advocate['id']}", headers=tenant.auth)).json()
        assert (shown["clicks"], shown["unique_clicks"]) == (clicks, unique), shown
    listed = (await client.get("/v1/advocates", headers=tenant.auth)).json()["data"]
    assert {a["customer_id"]: a["unique_clicks"] for a in listed} == {"cus_anna": 4, "cus_ben": 1}


async def test_the_migration_counts_the_clicks_recorded_before_it(admin_url, tmp_path):
    """0007 on a database with clicks: their unique clicks by the same definition."""
    import shutil

    from referral.lib.db import SQL_DIR, migrate
    from tests.conftest import PREFIX, _with_database

    name = f"{PREFIX}_backfill"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = _with_database(admin_url, name)
        for path in sorted(SQL_DIR.glob("[0-9]*.sql")):
            if path.name < "0007":
                shutil.copy(path, tmp_path)
        await migrate(url, tmp_path)
        conn = await asyncpg.connect(url)
        try:
            merchant = await conn.fetchval(
                "INSERT INTO merchants (account_id, mode, name, time_zone) "
                "VALUES (gen_random_uuid(), 'test', 'x', 'Europe/Stockholm') RETURNING id"
            )
            writer_clicks = [  # one visitor around Stockholm's midnight (23:00 UTC), a bot
                ("2026-03-27 22:30", False, "link"),
                ("2026-03-27 22:40", False, "qr"),
                ("2026-03-27 23:10", False, "qr"),
                ("2026-03-27 23:20", True, "qr"),
            ]
            for at, bot, channel in writer_clicks:
                await conn.execute(
                    "INSERT INTO clicks (id, clicked_at, merchant_id, program_id, advocate_id,"
                    " code, channel, visitor_id, is_bot) VALUES (gen_random_uuid(),"
                    " ($1 || '+00')::timestamptz, $2, 1, 1, 'C', $3, 'visitor-1', $4)",
                    at,
                    merchant,
                    channel,
                    bot,
                )
                await conn.execute(
                    "INSERT INTO click_rollups AS r VALUES ($1, 1, 1, $2,"
                    " date_trunc('hour', ($3 || '+00')::timestamptz, 'UTC'), $4, $5)"
                    " ON CONFLICT (merchant_id, advocate_id, channel, hour) DO UPDATE"
                    " SET clicks = r.clicks + excluded.clicks,"
                    " bot_hits = r.bot_hits + excluded.bot_hits",
                    merchant,
                    channel,
                    at,
                    0 if bot else 1,
                    1 if bot else 0,
                )
            assert "0007_unique_clicks" in await migrate(url)
            days = await conn.fetch("SELECT day FROM unique_clicks ORDER BY day")
            assert [str(r["day"]) for r in days] == ["2026-03-27", "2026-03-28"]
            rollups = await conn.fetch(
                "SELECT channel, extract(hour FROM hour AT TIME ZONE 'UTC') AS h, clicks,"
                " bot_hits, unique_clicks FROM click_rollups ORDER BY 2, 1"
            )
            assert [tuple(r) for r in rollups] == [
                ("link", 22, 1, 0, 1),
                ("qr", 22, 1, 0, 0),
                ("qr", 23, 1, 1, 1),
            ]
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
