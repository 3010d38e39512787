"""The customer pages as their readers see them, in headless Chromium over real HTTP: the
advocate's share page and a friend's story page, in English and Swedish, with a pending,
an approved and a cancelled reward. Asserts the text the browser renders (not the HTML) and
the QR image's real size, and saves screenshots to tests/artifacts/ for a person to look
at. Skipped, with the reason, only where Chromium cannot be installed (see test_browser)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx

from tests.factories import make_tenant
from tests.web.test_browser import ARTIFACTS

SWEDISH = {"en": False, "sv": True}


async def _world(api: httpx.AsyncClient, locale: str) -> dict[str, str]:
    """A program in `locale`; an advocate with three friends: one order approved (with a
    published story), one on hold, one cancelled."""

    async def ok(method: str, url: str, body: dict) -> dict:
        response = await api.request(method, url, json=body)
        assert response.status_code in (200, 201), response.text
        return response.json()

    program = await ok(
        "POST",
        "/v1/programs",
        {
            "name": f"Pages {locale}",
            "landing_url": "https://shop.example/welcome",
            "hold_days": 14,
            "locale": locale,
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
        {"program_id": program["id"], "customer_id": f"anna-{locale}", "name": "Anna Svensson"},
    )
    rewards = []
    for n, name in enumerate(("bea", "carl", "dora")):  # new customers in each program
        order = await ok(
            "POST",
            "/v1/orders",
            {
                "order_id": f"{locale}-{n}",
                "customer_id": f"{locale}-friend-{n}",
                "email": f"{name}.{locale}@example.com",
                "codes": [advocate["code"]],
                "subtotal": 5000,
                "total": 5000,
                "currency": "EUR",
                "occurred_at": datetime.now(UTC).isoformat(),
            },
        )
        (reward,) = [r for r in order["rewards"] if r["side"] == "advocate"]
        rewards.append(reward)
    await ok("POST", f"/v1/rewards/{rewards[0]['id']}/approve", {"actor": "pages-test"})
    await ok("POST", f"/v1/orders/{locale}-2/cancel", {"reason": "returned"})
    story = await ok(
        "POST",
        "/v1/stories",
        {"advocate_id": advocate["id"], "reward_id": rewards[0]["id"], "show_first_name": True},
    )
    share = await ok("POST", f"/v1/advocates/{advocate['id']}/share-url", {})
    return {"share_url": share["url"], "story_url": story["url"]}


EXPECTED = {
    "en": {
        "share": [
            "Friends who use your link get 10 EUR off their first order.",
            "Your friends get",
            "10 EUR off their first order",
            "Friend D… ordered on",
            "cancelled on",
        ],
        "share_not": ["your first order", "0 EUR", "reversed"],
        "story": [
            "Anna recommends Browser Shop.",
            "Your welcome offer: 10 EUR off your first order",
            "Get 10 EUR off your first order",
        ],
        "story_not": ["Your friends get", "their first order"],
    },
    "sv": {
        "share": [
            "Vänner som använder din länk får 10 EUR rabatt på sin första beställning.",
            "Dina vänner får",
            "10 EUR rabatt på sin första beställning",
            "Vän D… handlade",
            "makulerad",
        ],
        "share_not": ["din första beställning", "0 EUR", "återtagen"],
        "story": [
            "Anna rekommenderar Browser Shop.",
            "Ditt välkomsterbjudande: 10 EUR rabatt på din första beställning",
            "Få 10 EUR rabatt på din första beställning",
        ],
        "story_not": ["Dina vänner får", "sin första beställning"],
    },
}


async def test_share_and_story_pages_read_right_in_both_languages(browser_context, live_server, db):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tenant = await make_tenant(db, "Browser Shop")
    headers = {"Authorization": f"Bearer {tenant.secret_key}"}
    async with httpx.AsyncClient(base_url=live_server, headers=headers, timeout=10) as api:
        worlds = {locale: await _world(api, locale) for locale in ("en", "sv")}

    page = await browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    for locale, world in worlds.items():
        expected = EXPECTED[locale]
        await page.goto(world["share_url"])
        text = await page.inner_text("body")
        for sentence in expected["share"]:
            assert sentence in text, (locale, sentence, text)
        for wrong in expected["share_not"]:
            assert not re.search(rf"(?<![\w.,]){re.escape(wrong)}", text), (locale, wrong, text)
        qr = page.locator("img").first
        size = await qr.evaluate("i => [i.complete, i.naturalWidth, i.naturalHeight]")
        assert size == [True, 400, 400]  # the size the page asked for
        await page.screenshot(path=ARTIFACTS / f"share-page-{locale}.png", full_page=True)

        await page.goto(world["story_url"])
        text = await page.inner_text("body")
        for sentence in expected["story"]:
            assert sentence in text, (locale, sentence, text)
        for wrong in expected["story_not"]:
            assert wrong not in text, (locale, wrong, text)
        await page.screenshot(path=ARTIFACTS / f"story-page-{locale}.png", full_page=True)
    assert not errors, errors
    for name in ("share-page-en", "share-page-sv", "story-page-en", "story-page-sv"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 1000
