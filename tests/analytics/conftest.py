"""What the analytics tests share: an app whose click writer flushes only when told, and
small helpers to click, flush, roll up and read a report as a shop's dashboard would."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from referral.lib.rate_limit import Limit
from referral.settings import RateLimits, Settings
from tests.conftest import make_settings

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
BROWSER = {"user-agent": CHROME}
PREVIEW_BOT = "facebookexternalhit/1.1"
STOCKHOLM = ZoneInfo("Europe/Stockholm")


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Clicks reach the database when a test flushes the writer, and the rollups when it
    # runs `catch_up`, never on their own: a report counts exactly what came before.
    # The share and story pages are opened more often than a person could: no limits.
    off = Limit(per_minute=0, burst=0)
    return make_settings(
        database_url,
        click_flush_interval_ms=3_600_000,
        analytics_interval_seconds=0,
        rate_limits=RateLimits(share_page=off, story_pages=off),
    )


def local(day: date, at: time = time(12), zone: ZoneInfo = STOCKHOLM) -> datetime:
    """A wall-clock time on the merchant's `day`, in UTC."""
    return datetime.combine(day, at, zone).astimezone(UTC)


def today(zone: ZoneInfo = STOCKHOLM) -> date:
    return datetime.now(UTC).astimezone(zone).date()


async def on_app_loop(client, make) -> Any:
    """`await make()` on the app's own loop (its pool and click writer live there)."""
    return await asyncio.to_thread(client.blocking_portal.call, make)


async def flush_clicks(client) -> int:
    return await on_app_loop(client, client.app.state.runtime.clicks.flush)


async def record_late_click(client, click: tuple) -> None:
    """A click the writer gets late (replayed after an outage): `clicked_at` in the past."""

    async def record() -> None:
        client.app.state.runtime.clicks.record(click)

    await on_app_loop(client, record)


async def visit(
    client,
    code: str,
    visitor: str,
    *,
    channel: str | None = None,
    story: str | None = None,
    agent: str = CHROME,
) -> str:
    """A browser with visitor cookie `visitor` following `/r/{code}`: the ref_token it got."""
    client.cookies.clear()
    params = {k: v for k, v in (("ch", channel), ("s", story)) if v}
    response = await client.get(
        f"/r/{code}",
        params=params,
        headers={"user-agent": agent, "cookie": f"rv={visitor}"},
        follow_redirects=False,
    )
    assert response.status_code == 302, response.text
    return re.search(r"ref_token=([^&]+)", response.headers["location"]).group(1)


async def catch_up(pool, ids) -> int:
    """Run the rollup worker until nothing is left to book or fold (the app does it every
    second in the background; a test reads right after its writes)."""
    from referral.analytics import service as analytics

    return await analytics.catch_up(pool, ids=ids)


async def report(client, tenant, name: str, *, status: int = 200, **params: Any) -> dict:
    query = {k: str(v) for k, v in params.items() if v is not None}
    response = await client.get(f"/v1/analytics/{name}", params=query, headers=tenant.auth)
    assert response.status_code == status, response.text
    return response.json()


def values(listed: list[dict]) -> dict[tuple[str, str], Any]:
    """A list of Values as {(metric, currency or ''): value}."""
    out = {}
    for v in listed:
        key = (v["metric"], v.get("currency") or "")
        assert key not in out, f"{key} twice in {listed}"
        out[key] = v["value"]
    return out


def figures(listed: list[dict], *metrics: str) -> dict[tuple[str, str], Any]:
    """The Values of `metrics` only (all currencies)."""
    return {k: v for k, v in values(listed).items() if k[0] in metrics}


def breakdown(answer: dict) -> dict[str, dict[tuple[str, str], Any]]:
    assert answer["breakdown"] is not None, answer
    return {row["key"]: values(row["values"]) for row in answer["breakdown"]["rows"]}
