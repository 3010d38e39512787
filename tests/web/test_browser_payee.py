"""The advocate's payout details on their share page, in a real browser: a wrong IBAN is
refused in words they can act on, with what they typed kept; a right one is saved and shown
masked. Screenshots (tests/artifacts/share-page-payee-*.png) are what the advocate sees."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.factories import make_tenant

ARTIFACTS = Path(__file__).resolve().parents[2] / "tests" / "artifacts"
IBAN = "SE35 5000 0000 0549 1000 0003"


async def _share_url(api: httpx.AsyncClient, locale: str) -> str:
    async def ok(url: str, body: dict) -> dict:
        response = await api.post(url, json=body)
        assert response.status_code in (200, 201), response.text
        return response.json()

    program = await ok(
        "/v1/programs",
        {
            "name": "Payee browser test",
            "landing_url": "https://shop.example/welcome",
            "brand_colour": "#6b2fb3",
            "locale": locale,
            "rewards": {"advocate": {"kind": "cash", "amounts": {"EUR": 1000}}},
        },
    )
    advocate = await ok(
        "/v1/advocates",
        {"program_id": program["id"], "customer_id": f"cus_{locale}", "name": "Anna Svensson"},
    )
    return (await ok(f"/v1/advocates/{advocate['id']}/share-url", {}))["url"]


async def test_the_advocate_corrects_a_wrong_iban_and_sees_it_masked(
    browser_context, live_server, db
):
    from playwright.async_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tenant = await make_tenant(db, "Payee Shop")
    headers = {"Authorization": f"Bearer {tenant.secret_key}"}
    async with httpx.AsyncClient(base_url=live_server, headers=headers, timeout=10) as api:
        for locale, refused, saved in (
            ("en", "That IBAN isn't valid.", "Paid to:"),
            ("sv", "IBAN-numret är inte giltigt.", "Betalas till:"),
        ):
            page = await browser_context.new_page()
            await page.goto(await _share_url(api, locale))
            await page.check("input[name=method][value=bank_transfer]")
            await page.fill("#payee-iban", IBAN[:-1] + "4")  # one digit wrong
            await page.fill("#payee-holder", "Anna Svensson")
            await page.click(".payee-form button[type=submit]")
            error = page.locator("#payee-error")
            await expect(error).to_contain_text(refused)
            await expect(page.locator("#payee-iban")).to_have_value(IBAN[:-1] + "4")
            await expect(error).to_be_in_viewport()  # the page opens at the form, not the top
            await page.screenshot(path=ARTIFACTS / f"share-page-payee-error-{locale}.png")

            await page.fill("#payee-iban", IBAN)
            await page.click(".payee-form button[type=submit]")
            current = page.locator("#payee-current")
            await expect(current).to_contain_text(f"{saved} SE35 **** **** **** **** 0003")
            await expect(page.locator("#payee-error")).to_have_count(0)
            await expect(page.locator("#payee-saved")).to_be_in_viewport()
            await page.screenshot(path=ARTIFACTS / f"share-page-payee-saved-{locale}.png")
            assert "0549 1000 0003" not in await page.content()
            await page.close()
        shown = await api.get("/v1/payees/cus_sv")
        assert shown.json()["iban"] == "SE35 **** **** **** **** 0003"
