"""What the browser tests share: headless Chromium (Debian's package) driven by Playwright,
the app served by granian over real HTTP, and a browser context that fails the test on any
Content-Security-Policy violation.

A violation is what a reader would see as a page without its style or its script, so every
page test goes through `browser_context`: it listens to every page's console (Chromium
reports a blocked script, style or image there, naming the "Content Security Policy") and to
`securitypolicyviolation` events in every document, and the test fails if any happened.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bench.harness import app_env, app_server, free_port
from tests import debian

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Runs in every document before its own scripts; the page's policy does not apply to it.
_REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation (securitypolicyviolation): ${e.effectiveDirective} blocked ` +
    `${e.blockedURI || "inline"} at ${e.documentURI} ${e.sample || ""}`);
}, true);
"""


@pytest.fixture(scope="session")
def chromium() -> str:
    """/usr/bin/chromium, installed with apt-get (as root, without prompting) if missing."""
    return debian.ensure(CHROMIUM, "chromium", "chromium-driver")


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Iterator[str]:
    """The app under granian on a free port, on this test's own database."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = app_env(
        database_url,
        base,
        "warning",
        CLICK_FLUSH_INTERVAL_MS="10",
        RELEASE_INTERVAL_SECONDS="0",
    )
    with app_server(env, port, tmp_path / "server.log"):
        yield base


def csp_violations(messages: list[str]) -> list[str]:
    return [m for m in messages if "Content Security Policy" in m or "CSP violation" in m]


async def listen(context) -> list[str]:
    """Every console message of every page in `context` from now on, as "url: text"."""
    messages: list[str] = []

    def heard(message) -> None:
        page = message.page
        messages.append(f"{page.url if page else '?'}: {message.text}")

    await context.add_init_script(_REPORT_VIOLATIONS)
    context.on("console", heard)
    return messages


async def settle(context) -> None:
    """A round trip to each open page, so every console message it sent has arrived."""
    for page in context.pages:
        if not page.is_closed():
            with contextlib.suppress(Exception):  # a page navigating away
                await page.evaluate("0")


@pytest.fixture
async def browser_context(chromium: str) -> AsyncIterator:
    """A fresh Chromium context (phone-sized, en-GB). Fails the test if any page in it
    reported a Content-Security-Policy violation."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            context = await browser.new_context(
                viewport={"width": 390, "height": 844}, locale="en-GB"
            )
            messages = await listen(context)
            yield context
            await settle(context)
        finally:
            await browser.close()
    violations = csp_violations(messages)
    assert not violations, "Content-Security-Policy violations:\n" + "\n".join(violations)
