"""Retention: raw clicks older than the retention age go with their month's partition once
the rollups hold them (the reports of those months do not change), fraud signals expire
after their window, and the job is safe to run twice or on several instances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from referral.analytics import service as analytics
from referral.customers import repo as customers_repo
from referral.customers.service import apply_retention, months_before
from referral.runtime import Runtime
from tests.analytics.conftest import BROWSER, catch_up, flush_clicks, record_late_click, report
from tests.conftest import make_settings
from tests.factories import create_advocate, create_program


@pytest.fixture
def settings(database_url: str):
    return make_settings(
        database_url,
        click_flush_interval_ms=3_600_000,
        click_retention_months=13,
        signal_retention_days=30,
    )


@pytest.fixture
def runtime(settings, pool) -> Runtime:
    return Runtime.build(settings, pool)


def _partition(at: datetime) -> str:
    return f"clicks_{at:%Y_%m}"


async def _shop_with_old_clicks(client, tenant, db) -> dict:
    """Two clicks 15 months ago (in their own month's partition) and one today."""
    program = await create_program(client, tenant)
    anna = await create_advocate(client, tenant, program["id"], "anna")
    row = await db.fetchrow("SELECT id, program_id FROM advocates WHERE merchant_id = $1",
                            tenant.merchant_id)  # fmt: skip
    old = months_before(datetime.now(UTC), 15) + timedelta(days=10, hours=12)
    await db.execute("SELECT ensure_click_partitions($1, 0)", old)
    for n, at in enumerate((old, old + timedelta(hours=1), datetime.now(UTC))):
        await record_late_click(
            client,
            (f"{n:032x}", at, tenant.merchant_id, row["program_id"], row["id"], anna["code"],
             "email", f"visitor-{n}", None, None, BROWSER["user-agent"], None, None, False),
        )  # fmt: skip
    assert await flush_clicks(client) == 3
    return {"old": old, "program": program}


def _clicks(funnel: dict) -> int:
    return next(v["value"] for v in funnel["totals"] if v["metric"] == "clicks")


def _old_month(old: datetime) -> dict:
    start = old.replace(day=1).date()
    return {"from": start.isoformat(), "to": (start + timedelta(days=27)).isoformat()}


async def test_old_clicks_go_with_their_partition_and_their_figures_stay(
    client, tenant, db, pool, ids, runtime
):
    shop = await _shop_with_old_clicks(client, tenant, db)
    await catch_up(pool, ids)
    before = await report(client, tenant, "funnel", **_old_month(shop["old"]))
    assert _clicks(before) == 2, before

    run = await apply_retention(runtime)

    assert run.ran and run.waiting_for_rollups == []
    assert _partition(shop["old"]) in run.partitions_dropped
    kept = await db.fetchval("SELECT count(*) FROM clicks WHERE merchant_id = $1",
                             tenant.merchant_id)  # fmt: skip
    assert kept == 1, "today's click stays"
    assert await db.fetchval("SELECT to_regclass($1)", _partition(shop["old"])) is None
    after = await report(client, tenant, "funnel", **_old_month(shop["old"]))
    before.pop("generated_at", None), after.pop("generated_at", None)
    assert after == before
    # A rebuild recomputes only what raw clicks are left for: still identical.
    (rebuilt,) = await analytics.rebuild(pool, ids=ids, merchant_id=tenant.merchant_id)
    assert rebuilt.identical, rebuilt.differences

    again = await apply_retention(runtime)
    assert again.ran and again.partitions_dropped == [] and again.clicks_deleted == 0


async def test_clicks_not_yet_in_the_rollups_are_kept(client, tenant, db, runtime):
    shop = await _shop_with_old_clicks(client, tenant, db)  # flushed, not booked

    run = await apply_retention(runtime)

    assert run.ran and run.partitions_dropped == []
    assert run.waiting_for_rollups == [runtime.ids.encode("merchant", tenant.merchant_id)]
    assert await db.fetchval("SELECT to_regclass($1)", _partition(shop["old"])) is not None


async def test_fraud_signals_expire_after_their_window(client, tenant, db, runtime):
    program = await create_program(client, tenant)
    await create_advocate(client, tenant, program["id"], "anna")
    now = datetime.now(UTC)
    for kind, seen in (("ip", now - timedelta(days=31)), ("payment", now - timedelta(days=29))):
        await db.execute(
            "INSERT INTO customer_signals (merchant_id, customer_id, kind, value, first_seen_at,"
            " last_seen_at) VALUES ($1, 'anna', $2, $3, $4, $4)",
            tenant.merchant_id, kind, kind.encode().ljust(16, b"\0"), seen,
        )  # fmt: skip

    run = await apply_retention(runtime)

    assert run.fraud_signals_expired == 1
    left = await db.fetch("SELECT kind FROM customer_signals WHERE merchant_id = $1",
                          tenant.merchant_id)  # fmt: skip
    assert [r["kind"] for r in left] == ["payment"]


async def test_one_instance_runs_it_at_a_time(client, tenant, db, pool, runtime):
    async with pool.acquire() as other:
        assert await customers_repo.try_retention_lock(other)
        try:
            run = await apply_retention(runtime)
        finally:
            await customers_repo.retention_unlock(other)
    assert not run.ran
    assert (await apply_retention(runtime)).ran
