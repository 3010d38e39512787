"""The share page's points in a real browser: the advocate sees their balance, the thanks
for their order, their level with the way to the next, redeems a coupon, sees its code,
cancels it and gets the points back; in English and Swedish. Screenshots
(tests/artifacts/share-page-points-*.png) are what the advocate sees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.factories import make_tenant

ARTIFACTS = Path(__file__).resolve().parents[2] / "tests" / "artifacts"
LAPTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
RULES = {
    "earning": {"order": {"points": 1, "per": {"EUR": 100}}, "advocate_referral": {"points": 50}},
    "catalogue": [
        {"id": "coupon-5", "points": 500, "kind": "coupon", "amount": 500, "currency": "EUR"},
        {
            "id": "credit-20",
            "points": 2000,
            "kind": "store_credit",
            "amount": 2000,
            "currency": "EUR",
        },
    ],
    "levels": {
        "qualifier": "referrals",
        "levels": [
            {"name": "Member", "threshold": 0},
            {"name": "Silver", "threshold": 1},
            {"name": "Gold", "threshold": 3, "multiplier_bp": 20000},
        ],
    },
}
WORDS = {
    "en": {
        "balance": "740 points",
        "thanks": "Thanks for your order! It earned you 690 points.",
        "level": "Silver",
        "next": "2 more friends to Gold",
        "redeemed": "Done! Your reward is under",
        "cancelled": "Cancelled: your points are back.",
        "after": "240 points",
    },
    "sv": {
        "balance": "740 poäng",
        "thanks": "Tack för din beställning! Den gav dig 690 poäng.",
        "level": "Silver",
        "next": "2 vänner till för att nå Gold",
        "redeemed": "Klart! Din belöning finns under",
        "cancelled": "Ångrat: dina poäng är tillbaka.",
        "after": "240 poäng",
    },
}


async def _share_url(api: httpx.AsyncClient, locale: str) -> str:
    async def ok(method: str, url: str, body: dict) -> dict:
        response = await api.request(method, url, json=body)
        assert response.status_code in (200, 201), response.text
        return response.json()

    program = await ok(
        "POST",
        "/v1/programs",
        {
            "name": "Points browser test",
            "landing_url": "https://shop.example/welcome",
            "brand_colour": "#1f5f8b",
            "locale": locale,
            "hold_days": 0,
            "starts_at": (datetime.now(UTC) - timedelta(days=30)).isoformat(),
            "rewards": {
                "advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
                "friend": {"kind": "coupon", "amounts": {"EUR": 1000}},
            },
        },
    )
    await ok("PUT", f"/v1/programs/{program['id']}/points", RULES)
    customer = f"cus_{locale}"
    advocate = await ok(
        "POST",
        "/v1/advocates",
        {"program_id": program["id"], "customer_id": customer, "name": "Anna Svensson"},
    )
    now = datetime.now(UTC).isoformat()
    await ok(
        "POST",
        "/v1/orders",
        {
            "order_id": f"friend-{locale}",
            "customer_id": f"friend-{locale}",
            "codes": [advocate["code"]],
            "subtotal": 4000,
            "total": 4000,
            "currency": "EUR",
            "occurred_at": now,
        },
    )
    await ok(
        "POST",
        "/v1/orders",
        {
            "order_id": f"own-{locale}",
            "customer_id": customer,
            "subtotal": 69_000,
            "total": 69_000,
            "currency": "EUR",
            "occurred_at": now,
        },
    )
    return (await ok("POST", f"/v1/advocates/{advocate['id']}/share-url", {}))["url"]


async def test_the_advocate_sees_points_and_level_redeems_and_cancels(
    browser_context, live_server, db
):
    from playwright.async_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tenant = await make_tenant(db, "Points Shop")
    headers = {"Authorization": f"Bearer {tenant.secret_key}"}
    async with httpx.AsyncClient(base_url=live_server, headers=headers, timeout=10) as api:
        for locale, words in WORDS.items():
            page = await browser_context.new_page()
            await page.goto(await _share_url(api, locale))
            await expect(page.locator("#points-balance")).to_have_text(words["balance"])
            await expect(page.locator("#points-thanks")).to_have_text(words["thanks"])
            await expect(page.locator("#points-level")).to_contain_text(words["level"])
            await expect(page.locator("#level-next")).to_have_text(words["next"])
            await expect(page.locator("#redeem-credit-20")).to_be_disabled()
            await page.set_viewport_size(LAPTOP)
            await page.screenshot(
                path=ARTIFACTS / f"share-page-points-{locale}.png", full_page=True
            )
            await page.set_viewport_size(PHONE)
            await page.screenshot(
                path=ARTIFACTS / f"share-page-points-{locale}-phone.png", full_page=True
            )

            await page.click("#redeem-coupon-5")
            await expect(page.locator("#points-notice")).to_contain_text(words["redeemed"])
            await expect(page.locator("#points-balance")).to_have_text(words["after"])
            code = page.locator("#redemptions .code")
            await expect(code).to_have_count(1)
            assert (await code.inner_text()).startswith("F1")  # the coupon to type at checkout
            await page.screenshot(
                path=ARTIFACTS / f"share-page-points-redeemed-{locale}.png", full_page=True
            )
            await page.click("#redemptions button")
            await expect(page.locator("#points-notice")).to_have_text(words["cancelled"])
            await expect(page.locator("#points-balance")).to_have_text(words["balance"])
            await expect(page.locator("#redemptions .code")).to_have_count(0)
            await page.close()
