"""The share page as an advocate in an experiment sees it, and as a held-out customer
sees it, in a real browser (conftest.py's Chromium, failing on any CSP violation)."""

from __future__ import annotations

from pathlib import Path

import httpx

from referral.experiments import rules
from tests.factories import make_tenant

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
HEADLINE = "Give 15 EUR, get 10 EUR"


def held_out(key: bytes, customer_id: str) -> bool:
    return rules.held_out(key, 5_000, customer_id)


INTRO = "Your friends save 15 EUR on their first order, and you get 10 EUR when they do."


async def test_variant_copy_and_the_held_out_answer(browser_context, live_server, db):
    from playwright.async_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tenant = await make_tenant(db, "Browser Shop")
    headers = {"Authorization": f"Bearer {tenant.secret_key}"}
    async with httpx.AsyncClient(base_url=live_server, headers=headers, timeout=10) as api:

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
                "brand_colour": "#6b2fb3",
                "rewards": {"friend": {"kind": "coupon", "amounts": {"EUR": 1000}}},
            },
        )
        # Both variants say the same, so whichever the advocate gets shows it.
        settings = {
            "friend": {"kind": "coupon", "amounts": {"EUR": 1500}},
            "share_headline": HEADLINE,
            "share_text": INTRO,
        }
        await ok(
            "POST",
            f"/v1/programs/{program['id']}/experiments",
            {
                "name": "Copy",
                "variants": [
                    {"key": "a", "name": "A", "settings": settings},
                    {"key": "b", "name": "B", "settings": settings},
                ],
            },
        )
        anna = await ok(
            "POST", "/v1/advocates", {"program_id": program["id"], "customer_id": "cus_anna"}
        )
        share = await ok("POST", f"/v1/advocates/{anna['id']}/share-url", {})
        page = await browser_context.new_page()
        await page.goto(share["url"])
        await expect(page.locator("h1")).to_have_text(HEADLINE)
        await expect(page.locator("main")).to_contain_text(INTRO)
        await page.screenshot(path=ARTIFACTS / "share-page-variant.png", full_page=True)

        # A holdout from now on, whose key (fixed here) holds Anna out: her page says so.
        await ok("PUT", f"/v1/programs/{program['id']}/holdout", {"share_percent": 50})
        key = next(k for k in (bytes([i]) * 16 for i in range(256)) if held_out(k, "cus_anna"))
        await db.execute("UPDATE program_holdouts SET hash_key = $1", key)
        response = await page.goto(share["url"])
        assert response.status == 403
        await expect(page.locator("h1")).to_have_text("No invitation to share right now")
        await expect(page.locator("main")).not_to_contain_text(anna["code"])
        await page.screenshot(path=ARTIFACTS / "share-page-held-out.png", full_page=True)
        report = (await api.get(f"/v1/programs/{program['id']}/holdout")).json()
        assert report["held_out_answers"] == 1
