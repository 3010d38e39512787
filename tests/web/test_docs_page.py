"""The API docs page and the error pages in a real browser, with nothing reachable but the
app: every request to another host is aborted (and recorded), so a docs UI that needs a CDN
or a font service shows nothing here and the test fails. The context fails the test on any
Content-Security-Policy violation (conftest.py). Screenshots go to tests/artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parents[2] / "tests" / "artifacts"


async def _only_the_app(context, live_server: str) -> list[str]:
    """Abort every request that is not for the app; the list of what was tried elsewhere."""
    elsewhere: list[str] = []

    async def route(route) -> None:
        url = route.request.url
        if url == live_server or url.startswith(f"{live_server}/"):
            await route.continue_()
        else:
            elsewhere.append(url)
            await route.abort()

    await context.route(re.compile(".*"), route)
    return elsewhere


async def test_api_docs_list_the_operations_offline(browser_context, live_server):
    from playwright.async_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    elsewhere = await _only_the_app(browser_context, live_server)
    page = await browser_context.new_page()
    await page.set_viewport_size({"width": 1280, "height": 900})

    response = await page.goto(f"{live_server}/openapi")
    assert response is not None and response.status == 200
    record_order = page.locator("#operations-checkout-recordOrder")
    await expect(record_order).to_be_visible(timeout=20_000)
    await expect(record_order).to_contain_text("POST")
    await expect(record_order).to_contain_text("/v1/orders")
    await expect(record_order).to_contain_text("Record an order")
    assert await page.locator(".opblock").count() > 30  # the whole API, not a fragment
    await page.screenshot(path=ARTIFACTS / "api-docs.png")

    # An operation opens with its parameters and responses, styled by the served CSS.
    await record_order.locator(".opblock-summary").click()
    await expect(record_order.locator(".responses-wrapper")).to_be_visible()
    await expect(record_order.get_by_role("button", name="Try it out")).to_be_visible()
    colour = await record_order.evaluate("e => getComputedStyle(e).borderColor")
    assert colour == "rgb(73, 204, 144)", colour  # Swagger UI's POST green: its CSS applied
    await page.screenshot(path=ARTIFACTS / "api-docs-operation.png")

    # The authorise dialog (secret and publishable keys) opens and closes.
    await page.locator("button.authorize").first.click()
    await expect(page.locator(".dialog-ux")).to_contain_text("secretKey")
    await page.locator(".dialog-ux .close-modal").click()

    # "Try it out" calls the API from the page (connect-src 'self') and shows the answer.
    health = page.locator("#operations-operations-health")
    await health.locator(".opblock-summary").click()
    await health.get_by_role("button", name="Try it out").click()
    await health.get_by_role("button", name="Execute").click()
    answer = health.locator(".live-responses-table tbody td.response-col_status")
    # The page calls the live server: as long as the first render may take on a busy machine.
    await expect(answer).to_have_text("200", timeout=20_000)
    await expect(health.locator(".live-responses-table")).to_contain_text('"status": "ok"')

    assert elsewhere == [], f"the docs page asked other hosts: {elsewhere}"
    spec = await page.request.get(f"{live_server}/openapi/openapi.json")
    assert spec.ok and "/v1/orders" in (await spec.json())["paths"]


async def test_error_pages_render_under_the_policy(browser_context, live_server):
    """The pages a browser gets for a bad share link, an unknown story and an unknown
    referral link: readable, styled (their inline style allowed by nonce or hash)."""
    from playwright.async_api import expect

    elsewhere = await _only_the_app(browser_context, live_server)
    page = await browser_context.new_page()
    for path, status in (("/share/not-a-token", 403), ("/s/AAAAAAAAAAAA", 404), ("/r/ZZZZZZ", 404)):
        response = await page.goto(f"{live_server}{path}")
        assert response is not None and response.status == status, path
        await expect(page.locator("h1")).to_be_visible()
        # The page's own stylesheet applied: the system font stack, not the browser default.
        font = await page.evaluate("getComputedStyle(document.body).fontFamily")
        assert "system-ui" in font, (path, font)
    assert elsewhere == []


async def test_the_page_tests_notice_a_csp_violation(chromium):
    """What `browser_context` relies on: a page whose inline style and script its policy
    blocks is reported, both in the console and by `securitypolicyviolation`."""
    from playwright.async_api import async_playwright

    from tests.web.conftest import CHROMIUM_FLAGS, csp_violations, listen, settle

    page_html = (
        "<!doctype html><title>t</title><style>body{color:red}</style>"
        '<p style="color:blue">x</p><script>document.title = "ran"</script>'
    )

    async def serve(route) -> None:
        policy = "default-src 'self'; style-src 'self'; script-src 'self'"
        await route.fulfill(
            status=200,
            content_type="text/html",
            headers={"content-security-policy": policy},
            body=page_html,
        )

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            context = await browser.new_context()
            messages = await listen(context)
            await context.route("http://csp.test/**", serve)
            page = await context.new_page()
            await page.goto("http://csp.test/page")
            assert await page.title() == "t"  # the inline script was blocked
            await settle(context)
        finally:
            await browser.close()
    violations = csp_violations(messages)
    console = [m for m in violations if "Content Security Policy" in m]
    events = [m for m in violations if "securitypolicyviolation" in m]
    assert len(console) >= 3, violations  # the <style>, the style attribute, the <script>
    assert {e.split(": ", 2)[2].split()[0] for e in events} >= {"style-src-elem", "script-src-elem"}
