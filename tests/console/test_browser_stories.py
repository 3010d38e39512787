"""Moderating stories in a real browser (headless Chromium against granian): two pending
stories with their share images, one published (its public page then answers), one hidden;
the published tab shows what it brought. Each step checked in the database, with no console
error or CSP violation. Screenshots at phone and laptop widths in tests/artifacts/."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from tests.console.conftest import api_call
from tests.console.test_browser import ARTIFACTS, _shoot
from tests.console.test_browser_payouts import signed_in
from tests.factories import make_tenant

BROWSER = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126"}


async def _stories(api: httpx.AsyncClient) -> list[dict]:
    ok = api_call(api)

    program = await ok(
        "POST",
        "/v1/programs",
        {
            "name": "Give 10, get 10",
            "landing_url": "https://shop.example/welcome",
            "hold_days": 0,
            "brand_colour": "#6b2fb3",
            "rewards": {
                "advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
                "friend": {"kind": "coupon", "amounts": {"EUR": 1000}},
            },
        },
    )
    told = []
    texts = (
        "I got 10 EUR for telling my sister about the shop. She loves her new boots!",
        "Buy here",
    )
    for n, (name, text) in enumerate(zip(("Anna Svensson", "Bo Ek"), texts, strict=True)):
        advocate = await ok(
            "POST",
            "/v1/advocates",
            {
                "program_id": program["id"],
                "customer_id": f"cus_{n}",
                "name": name,
            },
        )
        placed = await ok(
            "POST",
            "/v1/orders",
            {
                "order_id": f"o-{n}",
                "customer_id": f"friend-{n}",
                "codes": [advocate["code"]],
                "email": f"friend{n}@example.org",
                "subtotal": 5000,
                "total": 5000,
                "currency": "EUR",
                "occurred_at": datetime.now(UTC).isoformat(),
            },
        )
        (reward,) = [r for r in placed["rewards"] if r["side"] == "advocate"]
        await ok("POST", f"/v1/rewards/{reward['id']}/approve", {"actor": "test"})
        told.append(
            await ok(
                "POST",
                "/v1/stories",
                {
                    "advocate_id": advocate["id"],
                    "reward_id": reward["id"],
                    "text": text,
                    "show_first_name": n == 0,
                },
            )
        )
    return told


async def test_publish_one_story_and_hide_another(browser_context, console_server, db, ids):
    from playwright.async_api import expect

    base, settings = console_server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tenant = await make_tenant(db, "Browser Shop")
    async with httpx.AsyncClient(base_url=base, headers=tenant.auth, timeout=10) as api:
        anna, bo = await _stories(api)

        page, errors = await signed_in(browser_context, db, settings, tenant, "Stina Social")

        await page.click("nav.sections >> text=Stories")
        await expect(page.locator("h1")).to_have_text("Stories")
        await expect(page.locator(".tabs a[aria-current=page]")).to_have_text("To review (2)")
        cards = page.locator("li.story")
        await expect(cards).to_have_count(2)
        image = page.locator(f"#story-{anna['id']} img")
        await image.scroll_into_view_if_needed()
        await expect(image).to_have_js_property("complete", True)
        assert await image.evaluate("i => i.naturalWidth") == 1200, "the share image drew"
        await _shoot(page, "stories")

        await page.locator(f"#story-{anna['id']} button:text('Publish')").click()
        await expect(page.locator(".notice")).to_contain_text("Published: the story now shows")
        await expect(cards).to_have_count(1)
        row = await db.fetchrow(
            "SELECT status, published_at FROM stories WHERE merchant_id = $1 AND id = $2",
            tenant.merchant_id,
            ids.decode("story", anna["id"]),
        )
        assert row["status"] == "published" and row["published_at"] is not None
        async with httpx.AsyncClient(headers=BROWSER) as visitor:
            assert (await visitor.get(anna["url"])).status_code == 200
            assert (await visitor.get(anna["image_url"])).status_code == 200

        await page.locator(f"#story-{bo['id']} button:text('Hide')").click()
        await expect(page.locator(".notice")).to_have_text(
            "Hidden: the story's page no longer shows it."
        )
        await expect(page.locator(".empty")).to_contain_text("No story waits for you")
        assert (
            await db.fetchval(
                "SELECT status FROM stories WHERE id = $1", ids.decode("story", bo["id"])
            )
            == "hidden"
        )
        async with httpx.AsyncClient(headers=BROWSER) as visitor:
            assert (await visitor.get(bo["url"])).status_code == 404

        await page.click(".tabs >> text=Published")
        await expect(page.locator(".tabs a[aria-current=page]")).to_have_text("Published (1)")
        stats = page.locator(f"#story-{anna['id']} ul.stats")
        await expect(stats).to_contain_text("1 view")
        await _shoot(page, "stories-published")
        assert not errors, errors
