"""The console in a real browser (headless Chromium, Playwright) against granian: sign in
with a link, read the overview, approve a held referral in the review queue, open another's
explain view, find the advocate, sign out. Each step is checked in the database; no page may
log a console error or a Content-Security-Policy violation (the `browser_context` fixture
fails the test on one). Screenshots at phone and laptop widths go to tests/artifacts/."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.console.conftest import api_call, browser_sign_in
from tests.factories import make_tenant

ARTIFACTS = Path(__file__).resolve().parents[2] / "tests" / "artifacts"
LAPTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


async def _world(api: httpx.AsyncClient, base: str) -> dict:
    ok = api_call(api)

    program = await ok(
        "POST",
        "/v1/programs",
        {
            "name": "Give 10, get 10",
            "landing_url": "https://shop.example/welcome",
            "hold_days": 0,
            "brand_colour": "#6b2fb3",
            "fraud_policy": {"same_ip": {"action": "review"}},
            "rewards": {
                "advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
                "friend": {"kind": "coupon", "amounts": {"EUR": 1000}},
            },
        },
    )
    anna = await ok(
        "POST",
        "/v1/advocates",
        {
            "program_id": program["id"],
            "customer_id": "cus_anna",
            "name": "Anna Svensson",
            "email": "anna@example.com",
        },
    )
    now = datetime.now(UTC).isoformat()
    order = {"subtotal": 5000, "total": 5000, "currency": "EUR", "occurred_at": now}
    await ok(
        "POST",
        "/v1/orders",
        {**order, "order_id": "a-1", "customer_id": "cus_anna", "ip": "198.51.100.7"},
    )
    async with httpx.AsyncClient() as visitor:  # a few clicks for the funnel
        for i in range(3):
            await visitor.get(f"{base}/r/{anna['code']}", headers={"user-agent": f"Phone {i}"})
    referrals = {}
    for n, ip in (("bert", "203.0.113.9"), ("cilla", "198.51.100.7"), ("dan", "198.51.100.7")):
        placed = await ok(
            "POST",
            "/v1/orders",
            {
                **order,
                "order_id": f"o-{n}",
                "customer_id": n,
                "email": f"{n}@example.org",
                "codes": [anna["code"]],
                "ip": ip,
            },
        )
        referrals[n] = placed["referral"]
    assert [referrals[n]["status"] for n in ("bert", "cilla", "dan")] == [
        "converted",
        "in_review",
        "in_review",
    ]
    return {"anna": anna, "referrals": referrals}


async def _booked(api: httpx.AsyncClient) -> None:
    """Until the rollup worker has booked the orders (a condition, with a deadline)."""
    for _ in range(200):
        answer = (await api.get("/v1/analytics/impact")).json()
        figures = {v["metric"]: v["value"] for v in answer["totals"] if not v.get("currency")}
        if figures.get("referred_new_customers"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the rollups never showed the orders: {answer}")


async def _shoot(page, name: str) -> None:
    for size, label in ((LAPTOP, "laptop"), (PHONE, "phone")):
        await page.set_viewport_size(size)
        await page.screenshot(path=ARTIFACTS / f"console-{name}-{label}.png", full_page=True)
    await page.set_viewport_size(LAPTOP)


async def test_sign_in_overview_review_explain_search_sign_out(
    browser_context, console_server, db, ids
):
    from playwright.async_api import expect

    base, settings = console_server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tenant = await make_tenant(db, "Browser Shop")
    headers = {"Authorization": f"Bearer {tenant.secret_key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as api:
        world = await _world(api, base)
        await _booked(api)

    errors: list[str] = []
    browser_context.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    browser_context.on("weberror", lambda e: errors.append(str(e.error)))
    page = await browser_context.new_page()
    await page.set_viewport_size(LAPTOP)

    await browser_sign_in(page, db, settings, tenant.merchant_id, "Maja Risk")
    await expect(page.locator("h1")).to_have_text("Overview")
    await expect(page.locator(".top")).to_contain_text("Signed in as Maja Risk")
    await expect(page.locator(".badge")).to_have_text("Test mode")
    card = page.locator(".figure", has_text="New customers from referral")
    await expect(card.locator(".value")).to_have_text("3")  # held ones are new customers too
    await expect(page.locator("svg[role=img] title")).to_have_text("New customers from referral")
    await _shoot(page, "overview")

    await page.click("nav.sections >> text=Review")
    held = world["referrals"]["cilla"]["id"]
    await page.check(f"#pick-{held}")
    await page.fill("#note", "Same flat, checked by phone")
    await page.click("button[value=approve]")
    await expect(page.locator(".notice")).to_have_text("1 decided (approved).")
    row = await db.fetchrow(
        "SELECT r.status, v.actor, v.note FROM referrals r JOIN referral_reviews v "
        "ON v.referral_id = r.id AND v.merchant_id = r.merchant_id "
        "WHERE r.merchant_id = $1 AND r.id = $2",
        tenant.merchant_id,
        ids.decode("referral", held),
    )
    assert tuple(row) == ("converted", "Maja Risk", "Same flat, checked by phone")
    await _shoot(page, "review")

    other = world["referrals"]["dan"]["id"]
    await page.click(f"a[href='/console/referrals/{other}']")
    await expect(page.locator("h1")).to_contain_text(other)
    await expect(page.locator("main")).to_contain_text("A fraud rule held it")
    await expect(page.locator("main")).to_contain_text("same_ip")
    await _shoot(page, "explain")

    await page.click("nav.sections >> text=Advocates")
    await page.fill("#q", world["anna"]["code"].lower())
    await page.click("button:text('Search')")
    await page.click("text=Anna Svensson")
    await expect(page.locator("h1")).to_have_text("Anna Svensson")
    await _shoot(page, "advocate")

    await page.click("button:text('Sign out')")
    await expect(page.locator("h1")).to_have_text("You are signed out")
    ended = await db.fetchval(
        "SELECT count(*) FROM console_sessions "
        "WHERE merchant_id = $1 AND signed_out_at IS NOT NULL",
        tenant.merchant_id,
    )
    assert ended == 1
    await page.goto(base + "/console")
    await expect(page.locator("h1")).to_have_text("Please sign in")
    assert not [e for e in errors if "401" not in e], errors
