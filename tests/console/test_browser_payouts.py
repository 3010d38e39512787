"""Finance's walk through the payouts pages in a real browser (headless Chromium against
granian): see what is due, preview a batch, create it, download its CSV (the API's bytes),
mark it exported and paid, fail a payee's line; each step checked in the database, with no
console error or CSP violation. Screenshots at phone and laptop widths in tests/artifacts/."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx

from referral.rewards.service import release_due
from tests.console.conftest import api_call, browser_sign_in
from tests.console.test_browser import ARTIFACTS, LAPTOP, _shoot
from tests.factories import NO_VELOCITY, make_tenant


async def _world(api: httpx.AsyncClient) -> None:
    """Anna and Ben (emails on file) and Cleo (none) each earn 10 EUR, approved at once."""

    ok = api_call(api)

    program = await ok(
        "POST",
        "/v1/programs",
        {
            "name": "Give 10, get 10",
            "landing_url": "https://shop.example/welcome",
            "hold_days": 0,
            "fraud_policy": NO_VELOCITY,
            "rewards": {"advocate": {"kind": "cash", "amounts": {"EUR": 1000}}},
        },
    )
    now = datetime.now(UTC).isoformat()
    for n, (name, email) in enumerate(
        (("anna", "anna@example.com"), ("ben", "ben@example.com"), ("cleo", None))
    ):
        body = {"program_id": program["id"], "customer_id": name, "name": name.title()}
        if email:
            body["email"] = email
        advocate = await ok("POST", "/v1/advocates", body)
        await ok(
            "POST",
            "/v1/orders",
            {
                "order_id": f"o-{n}",
                "customer_id": f"friend-{n}",
                "codes": [advocate["code"]],
                "subtotal": 5000,
                "total": 5000,
                "currency": "EUR",
                "occurred_at": now,
            },
        )


async def signed_in(browser_context, db, settings, tenant, actor: str):
    """A laptop-sized page signed in as `actor`, and the list its console errors go to."""
    errors: list[str] = []
    browser_context.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    browser_context.on("weberror", lambda e: errors.append(str(e.error)))
    page = await browser_context.new_page()
    await page.set_viewport_size(LAPTOP)
    await browser_sign_in(page, db, settings, tenant.merchant_id, actor)
    return page, errors


async def test_preview_create_download_pay_and_fail_a_line(
    browser_context, console_server, db, pool, ids, tmp_path: Path
):
    from playwright.async_api import expect

    base, settings = console_server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tenant = await make_tenant(db, "Browser Shop")
    api = httpx.AsyncClient(base_url=base, headers=tenant.auth, timeout=10)
    async with api:
        await _world(api)
        await release_due(pool, ids=ids)

        page, errors = await signed_in(browser_context, db, settings, tenant, "Fia Finance")

        await page.click("nav.sections >> text=Payouts")
        await expect(page.locator("h1")).to_have_text("Payouts")
        due = page.locator("section[aria-labelledby=due] .figure")
        await expect(due).to_have_count(1)
        await expect(due).to_contain_text("30 EUR")
        await _shoot(page, "payouts")

        await page.click("a:text('Preview a batch')")
        await expect(page.locator("#preview-total")).to_have_text("30 EUR")
        await expect(page.locator("#preview-payees")).to_have_text("3")
        assert (
            await db.fetchval(
                "SELECT count(*) FROM payout_batches WHERE merchant_id = $1", tenant.merchant_id
            )
            == 0
        )
        await _shoot(page, "payouts-preview")

        await page.click("button:text('Create this batch')")
        await expect(page.locator(".notice")).to_have_text("Batch created: 3 payees, 30 EUR.")
        batch_id = page.url.split("?")[0].rsplit("/", 1)[1]
        pk = ids.decode("payout", batch_id)
        row = await db.fetchrow(
            "SELECT status, total, line_count FROM payout_batches "
            "WHERE merchant_id = $1 AND id = $2",
            tenant.merchant_id,
            pk,
        )
        assert tuple(row) == ("open", 3000, 3)
        await expect(page.locator("main")).to_contain_text("The PayPal file leaves out 1 line")
        await _shoot(page, "payouts-batch-open")

        async with page.expect_download() as download_info:
            await page.click("text=Payouts (one row per payee)")
        download = await download_info.value
        assert download.suggested_filename == f"{batch_id}.csv"
        saved = tmp_path / "payouts.csv"
        await download.save_as(saved)
        from_api = await api.get(f"/v1/payout-batches/{batch_id}/payouts.csv")
        assert saved.read_bytes() == from_api.content
        assert b"anna@example.com" in from_api.content

        await page.click("button:text('Mark exported')")
        await expect(page.locator(".notice")).to_contain_text("Marked exported")
        await page.click("#mark-paid")
        await expect(page.locator(".notice")).to_have_text(
            "Marked paid: 3 payees, 30 EUR. Their rewards are paid."
        )
        actors = await db.fetch(
            "SELECT DISTINCT t.actor FROM reward_transitions t JOIN payout_items i "
            "ON i.reward_id = t.reward_id AND i.merchant_id = t.merchant_id "
            "WHERE i.batch_id = $1 AND t.to_status = 'paid'",
            pk,
        )
        assert [r["actor"] for r in actors] == ["Fia Finance"]

        cleo = page.locator("tr", has_text="cleo")
        await cleo.locator("summary").click()
        await cleo.locator("input[name=reason]").fill("no PayPal account")
        await cleo.locator("button:text('Mark failed')").click()
        await expect(page.locator(".notice")).to_contain_text("marked failed: no PayPal account")
        await expect(page.locator("table.lines tbody tr")).to_have_count(1)
        line = await db.fetchrow(
            "SELECT status, failure_reason FROM payout_lines "
            "WHERE batch_id = $1 AND payee_key = 'cleo'",
            pk,
        )
        assert tuple(line) == ("failed", "no PayPal account")
        await _shoot(page, "payouts-batch-failed")
        await page.click("text=All (3)")
        await _shoot(page, "payouts-batch")

        await page.click("text=← Payouts")
        await expect(page.locator("section[aria-labelledby=batches] tbody tr")).to_contain_text(
            "paid"
        )
        await expect(due).to_contain_text("10 EUR"), "Cleo's reward is due again"
        assert not errors, errors
