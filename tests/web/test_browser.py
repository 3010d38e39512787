"""The customer pages in a real browser: headless Chromium (Debian's package) driven by
Playwright against the app served by granian over real HTTP.

Opens an advocate's share page, copies the link (read back from the clipboard), follows a
share button and a story's call to action, and checks that the share and the click were
recorded. Screenshots go to tests/artifacts/. Networks (wa.me, x.com) and the shop's
landing page are unreachable here, so every https request is answered by the test itself.
Skipped, with the reason, only where Chromium cannot be installed. The browser, the server
and the context (which fails a test on any Content-Security-Policy violation) come from
conftest.py.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import httpx

from tests.factories import make_tenant

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"


async def _world(api: httpx.AsyncClient) -> dict[str, str]:
    """A program with auto-published stories, an advocate with an approved reward and a
    published story about it, and a signed share-page URL."""

    async def ok(method: str, url: str, body: dict) -> dict:
        response = await api.request(method, url, json=body)
        assert response.status_code in (200, 201), response.text
        return response.json()

    program = await ok(
        "POST",
        "/v1/programs",
        {
            "name": "Browser test",
            "landing_url": "https://shop.example/welcome",
            "hold_days": 0,
            "brand_colour": "#6b2fb3",
            "stories_auto_publish": True,
            "rewards": {
                "advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
                "friend": {"kind": "coupon", "amounts": {"EUR": 1000}},
            },
        },
    )
    advocate = await ok(
        "POST",
        "/v1/advocates",
        {"program_id": program["id"], "customer_id": "cus_anna", "name": "Anna Svensson"},
    )
    order = await ok(
        "POST",
        "/v1/orders",
        {
            "order_id": "o-1",
            "customer_id": "friend-1",
            "codes": [advocate["code"]],
            "subtotal": 5000,
            "total": 5000,
            "currency": "EUR",
            "occurred_at": datetime.now(UTC).isoformat(),
        },
    )
    (reward,) = [r for r in order["rewards"] if r["side"] == "advocate"]
    await ok("POST", f"/v1/rewards/{reward['id']}/approve", {"actor": "browser-test"})
    story = await ok(
        "POST",
        "/v1/stories",
        {"advocate_id": advocate["id"], "reward_id": reward["id"], "show_first_name": True},
    )
    share = await ok("POST", f"/v1/advocates/{advocate['id']}/share-url", {})
    return {"link": advocate["link"], "story_id": story["id"], "share_url": share["url"]}


async def test_share_page_copy_share_and_story_call_to_action(browser_context, live_server, db):
    from playwright.async_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tenant = await make_tenant(db, "Browser Shop")
    headers = {"Authorization": f"Bearer {tenant.secret_key}"}
    async with httpx.AsyncClient(base_url=live_server, headers=headers, timeout=10) as api:
        world = await _world(api)

        outside: list[str] = []

        async def answer_outside(route) -> None:
            outside.append(route.request.url)
            await route.fulfill(status=200, content_type="text/html", body="<title>away</title>")

        context = browser_context  # fails the test on a CSP violation (conftest.py)
        await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
        await context.route(re.compile(r"^https://"), answer_outside)
        page = await context.new_page()

        await page.goto(world["share_url"])
        await expect(page.locator("h1")).to_contain_text("Share Browser Shop")
        await page.screenshot(path=ARTIFACTS / "share-page.png", full_page=True)

        await page.click("#copy-link")
        await expect(page.locator("#copy-status")).to_have_text("Copied!")
        assert await page.evaluate("navigator.clipboard.readText()") == world["link"]

        await page.click("#share-whatsapp")
        await page.wait_for_url(re.compile(r"^https://wa\.me/"))
        assert f"{world['link']}?ch=whatsapp" in unquote(page.url)
        await page.go_back()

        await page.click("a.story-link")
        await page.wait_for_url(re.compile(r"/s/[A-Za-z0-9_-]{12}$"))
        await expect(page.locator("#story-text")).to_contain_text("I got 10 EUR")
        await page.screenshot(path=ARTIFACTS / "story-page.png", full_page=True)

        await page.click('a[data-channel="x"]')
        await page.wait_for_url(re.compile(r"^https://x\.com/intent/post"))
        await page.go_back()

        await page.click("#story-cta")
        await page.wait_for_url(re.compile(r"^https://shop\.example/welcome\?"))
        assert "ref_token=" in page.url
        await page.screenshot(path=ARTIFACTS / "landing.png")

        # What the browser did was recorded: the click (through the buffered writer),
        # the story's share and view, and the share page's copy and WhatsApp shares.
        stats = {}
        for _ in range(100):
            response = await api.get(f"/v1/stories/{world['story_id']}")
            stats = response.json()["stats"]
            if stats["clicks"]:
                break
            await asyncio.sleep(0.05)
        assert stats["clicks"] == 1, stats
        assert stats["shares"] == {"x": 1}, stats
        assert stats["views"] >= 1, stats
    link_shares = await db.fetch(
        "SELECT channel FROM shares WHERE story_id IS NULL ORDER BY shared_at"
    )
    assert [r["channel"] for r in link_shares] == ["copy", "whatsapp"]
    assert any(url.startswith("https://shop.example/welcome") for url in outside)
    assert (ARTIFACTS / "story-page.png").stat().st_size > 1000
