"""The widget on a shop's own pages, in headless Chromium: a test shop served from another
origin (`http://localhost:…`) than the service (`http://127.0.0.1:…`), each of its pages
under a strict Content-Security-Policy with a fresh nonce (nonce-only scripts with
'strict-dynamic', nonce-only styles, Trusted Types required, connections and images only
to the service), including the script with its published SRI hash.

The share box appears, copies the link (keyboard only), records the copy and a WhatsApp
share and the view; it speaks Swedish on a Swedish page. A friend follows the advocate's
link to the shop's landing page: the offer shows, nothing is stored until the shop's
consent banner calls `referralConsent(true)`, then the click token is a first-party cookie
of the shop, which its checkout sends back in a quote. The context fails the test on any
CSP violation (tests/web/conftest.py); console errors fail it too. Screenshots go to
/tmp/widget-shots/.
"""

from __future__ import annotations

import asyncio
import html
import re
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from bench.harness import free_port
from tests.factories import (
    approved_advocate_reward,
    create_advocate,
    create_program,
    make_tenant,
)
from tests.web.conftest import browser_context, chromium, live_server  # noqa: F401

SHOTS = Path("/tmp/widget-shots")


class Shop:
    """The test shop: an account page with the share box, a landing page with the offer,
    each with its own nonce; what the shop's backend hands the widget is set per test."""

    def __init__(self, service: str, integrity: str) -> None:
        self.service, self.integrity = service, integrity
        self.token = ""
        self.port = free_port()
        self.origin = f"http://localhost:{self.port}"
        self.policies: list[str] = []

    def policy(self, nonce: str) -> str:
        return (
            "default-src 'none'; "
            f"script-src 'nonce-{nonce}' 'strict-dynamic'; "
            f"style-src 'nonce-{nonce}'; "
            f"img-src 'self' {self.service}; "
            f"connect-src {self.service}; "
            "require-trusted-types-for 'script'; "
            "base-uri 'none'; object-src 'none'; form-action 'self'; frame-ancestors 'none'"
        )

    def page(self, path: str, nonce: str) -> str:
        lang = "sv" if path.endswith("-sv") else "en"
        if path.startswith("/account"):
            body = f'<h1>My account</h1>\n<referral-share token="{html.escape(self.token)}">'
            body += "</referral-share>"
        elif path == "/welcome":
            body = (
                "<h1>Welcome to the shop</h1>\n"
                '<referral-offer consent="required"></referral-offer>\n'
                '<p class="banner">We use cookies. <button id="accept" type="button">'
                "Accept</button></p>\n"
                f'<script nonce="{nonce}">document.getElementById("accept")'
                '.addEventListener("click", () => window.referralConsent(true));</script>'
            )
        elif path.startswith("/welcome-local"):
            body = '<h1>Welcome</h1>\n<referral-offer storage="local"></referral-offer>'
        else:
            return ""
        script = (
            f'<script src="{self.service}/widget/v1/referral.js" integrity="{self.integrity}" '
            f'crossorigin="anonymous" nonce="{nonce}"></script>'
        )
        return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Test shop</title>
<style nonce="{nonce}">body{{font:16px/1.5 Georgia,serif;margin:0 auto;max-width:40rem;
padding:1rem;background:#faf7f2;color:#222}} referral-share,referral-offer{{margin:1rem 0}}
.banner{{background:#222;color:#fff;padding:.5rem 1rem}}</style>
{script}
</head><body>
{body}
</body></html>"""

    def serve(self) -> ThreadingHTTPServer:
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                nonce = secrets.token_urlsafe(16)
                text = shop.page(urlsplit(self.path).path, nonce)
                if not text:
                    self.send_error(404)
                    return
                body = text.encode()
                policy = shop.policy(nonce)
                shop.policies.append(policy)
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-security-policy", policy)
                self.send_header("cache-control", "no-store")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return ThreadingHTTPServer(("127.0.0.1", self.port), Handler)


@pytest.fixture
def shop(live_server: str) -> Iterator[Shop]:  # noqa: F811 - the fixture imported above
    SHOTS.mkdir(parents=True, exist_ok=True)
    manifest = httpx.get(f"{live_server}/widget/v1/manifest.json").json()
    shop = Shop(live_server, manifest["integrity"])
    server = shop.serve()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield shop
    finally:
        server.shutdown()
        server.server_close()


async def _world(api: httpx.AsyncClient, tenant, landing_url: str) -> dict[str, str]:
    """A program in purple whose links land on the test shop, an advocate with an approved
    reward, and the share token the shop's backend asks for."""
    program = await create_program(
        api, tenant, landing_url=landing_url, hold_days=0, brand_colour="#6b2fb3"
    )
    advocate = await create_advocate(api, tenant, program["id"], "cus_anna")
    await approved_advocate_reward(api, tenant, advocate["code"])
    share = await api.post(f"/v1/advocates/{advocate['id']}/share-url", json={})
    assert share.status_code == 201, share.text
    return {"code": advocate["code"], "link": advocate["link"], "share_url": share.json()["url"]}


async def _eventually(db, sql: str, want):
    got = None
    for _ in range(100):
        got = [tuple(r) for r in await db.fetch(sql)]
        if got == want:
            return got
        await asyncio.sleep(0.05)
    return got


def _errors(page, into: list[str]) -> None:
    page.on("console", lambda m: m.type == "error" and into.append(f"{page.url}: {m.text}"))
    page.on("pageerror", lambda e: into.append(f"{page.url}: {e}"))


async def test_share_box_and_offer_on_a_shop_page_of_another_origin(
    browser_context,  # noqa: F811
    live_server,  # noqa: F811
    shop,
    db,
):
    from playwright.async_api import expect

    tenant = await make_tenant(db, "Widget Shop")
    headers = {"Authorization": f"Bearer {tenant.secret_key}"}
    async with httpx.AsyncClient(base_url=live_server, headers=headers, timeout=10) as api:
        world = await _world(api, tenant, f"{shop.origin}/welcome")
        shop.token = world["share_url"].rsplit("/", 1)[1]
        context = browser_context
        errors: list[str] = []
        away: list[str] = []

        async def answer_away(route) -> None:  # the networks are not reachable from here
            away.append(route.request.url)
            await route.fulfill(status=200, content_type="text/html", body="<title>away</title>")

        await context.route(re.compile(r"^https://"), answer_away)
        await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=shop.origin)

        # The advocate's account page: the share box, in the program's colour.
        page = await context.new_page()
        _errors(page, errors)
        await page.goto(f"{shop.origin}/account")
        box = page.locator("referral-share")
        await expect(box.locator("h2")).to_have_text("Share Widget Shop with your friends")
        await expect(box.locator("input")).to_have_value(world["link"])
        await expect(box.locator("#rewards li")).to_contain_text("10 EUR")
        await expect(box.locator("img.qr")).to_have_attribute(
            "alt", "QR code of your referral link"
        )
        loaded = await box.locator("img.qr").evaluate(
            """i => i.complete ? i.naturalWidth
                : new Promise(done => i.addEventListener("load", () => done(i.naturalWidth)))"""
        )
        assert loaded == 400  # the QR image, from the service
        band = await box.locator(".band").evaluate(
            "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]"
        )
        assert band == ["rgb(107, 47, 179)", "rgb(255, 255, 255)"]
        await page.screenshot(path=SHOTS / "share-en.png", full_page=True)

        # Copy with the keyboard alone: Tab to the field, Tab to the button, Enter.
        await page.keyboard.press("Tab")
        await page.keyboard.press("Tab")
        focused = await page.evaluate("document.activeElement.shadowRoot.activeElement.textContent")
        assert focused == "Copy link"
        await box.screenshot(path=SHOTS / "share-focus.png")
        await page.keyboard.press("Enter")
        await expect(box.locator("[role=status]")).to_have_text("Copied!")
        assert await page.evaluate("navigator.clipboard.readText()") == world["link"]
        shares = "SELECT channel FROM shares WHERE story_id IS NULL ORDER BY shared_at"
        assert await _eventually(db, shares, [("copy",)]) == [("copy",)]

        # A share button: a new tab through the service's tracked URL to the network.
        async with context.expect_page() as opened:
            await box.get_by_role("link", name="WhatsApp").click()
        network = await opened.value
        await network.wait_for_url(re.compile(r"^https://wa\.me/"))
        assert f"{world['link']}?ch=whatsapp" in unquote(network.url)
        await network.close()
        assert await _eventually(db, shares, [("copy",), ("whatsapp",)]) == [
            ("copy",),
            ("whatsapp",),
        ]
        assert await db.fetchval("SELECT count(*) FROM share_page_views") == 1

        # A Swedish page gets a Swedish box.
        await page.goto(f"{shop.origin}/account-sv")
        await expect(box.locator("h2")).to_have_text("Tipsa dina vänner om Widget Shop")
        await expect(box.get_by_role("button", name="Kopiera länken")).to_be_visible()
        await expect(box.locator("#rewards .status")).to_have_text("godkänd")
        await page.screenshot(path=SHOTS / "share-sv.png", full_page=True)
        await page.set_viewport_size({"width": 1024, "height": 800})
        await page.screenshot(path=SHOTS / "share-sv-desktop.png", full_page=True)

        # A browser without constructable stylesheets: a <style> with the script's nonce.
        older = await context.new_page()
        _errors(older, errors)
        await older.add_init_script("delete Document.prototype.adoptedStyleSheets")
        await older.goto(f"{shop.origin}/account")
        await expect(older.locator("referral-share h2")).to_be_visible()
        assert await older.locator("referral-share style").count() == 1
        fallback_band = await older.locator("referral-share .band").evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        assert fallback_band == "rgb(107, 47, 179)"
        await older.close()

        # A friend follows the link: the shop's landing page, consent asked.
        friend = await context.new_page()
        _errors(friend, errors)
        await friend.goto(f"{live_server}/r/{world['code']}?ch=whatsapp")
        await friend.wait_for_url(re.compile(rf"^{re.escape(shop.origin)}/welcome\?"))
        query = parse_qs(urlsplit(friend.url).query)
        ref, ref_token = query["ref"][0], query["ref_token"][0]
        offer = friend.locator("referral-offer")
        await expect(offer.locator("h2")).to_have_text("Your welcome offer")
        await expect(offer.locator(".offer")).to_have_text("10 EUR off your first order")
        await expect(offer.locator(".eyebrow")).to_have_text("A friend recommends Widget Shop.")
        await friend.screenshot(path=SHOTS / "offer-before-consent.png", full_page=True)

        async def kept() -> dict[str, str]:
            cookies = await context.cookies(shop.origin)
            return {c["name"]: c["value"] for c in cookies if c["name"].startswith("referral_")}

        assert await kept() == {}
        assert await friend.evaluate("Object.keys(localStorage)") == []

        await friend.click("#accept")  # the shop's own banner calls referralConsent(true)
        await expect(friend.locator("referral-offer .offer")).to_be_visible()  # still shown
        want = {"referral_ref": ref, "referral_ref_token": ref_token}
        for _ in range(100):
            if await kept() == want:
                break
            await asyncio.sleep(0.05)
        assert await kept() == want
        (cookie,) = [
            c for c in await context.cookies(shop.origin) if c["name"] == "referral_ref_token"
        ]
        assert (cookie["domain"], cookie["path"], cookie["sameSite"]) == ("localhost", "/", "Lax")
        assert cookie["expires"] > datetime.now(UTC).timestamp() + 29 * 86400

        # The shop's checkout sends the kept token back: the friend offer applies.
        quote = await api.post(
            "/v1/checkout/quote",
            json={
                "ref_token": cookie["value"],
                "email": "new.friend@example.com",
                "subtotal": 5000,
                "currency": "EUR",
            },
        )
        assert quote.status_code == 200, quote.text
        assert quote.json()["applies"] is True, quote.json()
        assert quote.json()["code"] == ref

        # Without a consent requirement, kept at once; here in the shop's localStorage.
        await friend.goto(f"{shop.origin}/welcome-local?ref={ref}&ref_token={ref_token}")
        await expect(offer.locator(".offer")).to_be_visible()
        stored = await friend.evaluate("JSON.parse(localStorage.getItem('referral_ref_token'))")
        assert stored["value"] == ref_token

        # The same offer on a Swedish page.
        await friend.goto(f"{shop.origin}/welcome-local-sv?ref={ref}&ref_token={ref_token}")
        await expect(offer.locator(".offer")).to_have_text(
            "10 EUR rabatt på din första beställning"
        )
        await expect(offer.locator("h2")).to_have_text("Ditt välkomsterbjudande")
        await friend.screenshot(path=SHOTS / "offer-sv.png", full_page=True)

        # The consent withdrawn: what was kept is forgotten.
        await friend.evaluate("window.referralConsent(false)")
        assert await kept() == {}
        assert await friend.evaluate("localStorage.getItem('referral_ref_token')") is None

    assert all("'strict-dynamic'" in p and "require-trusted-types-for" in p for p in shop.policies)
    assert [url for url in away if not url.startswith("https://wa.me/")] == []
    assert not errors, "console errors:\n" + "\n".join(errors)
