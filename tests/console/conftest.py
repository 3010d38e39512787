"""Signing in to the console the way a person does: a link from the service, the sign-in
page's form, and the session cookie the test client keeps from then on."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from referral.console import service
from referral.lib.ids import PublicIds
from referral.settings import Settings
from tests.factories import Tenant
from tests.web.conftest import browser_context, chromium  # noqa: F401 - the browser fixtures

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def sign_in_link(db: asyncpg.Connection, settings: Settings, merchant_id: int) -> str:
    return await service.create_sign_in_link(
        db, ids=PublicIds(settings.hashids_salt), settings=settings, merchant_id=merchant_id
    )


def link_fields(link: str) -> dict[str, str]:
    query = parse_qs(urlsplit(link).query)
    return {"merchant": query["merchant"][0], "token": query["token"][0]}


async def sign_in(client, db, settings, merchant_id: int, actor: str = "Maja Risk") -> str:
    """Signs the client in; returns the page's CSRF token."""
    link = await sign_in_link(db, settings, merchant_id)
    response = await client.post(
        "/console/sign-in", data={**link_fields(link), "actor": actor}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    page = await client.get("/console")
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


@pytest.fixture
async def console(client, db, settings, tenant: Tenant):
    """The client signed in to the tenant's (test-mode) console; `.csrf` for its forms."""
    client.csrf = await sign_in(client, db, settings, tenant.merchant_id)
    return client


@pytest.fixture
def console_server(database_url: str, tmp_path):
    """The app under granian on this test's database, with secrets the test knows, so it can
    mint sign-in links for it: yields (base URL, the server's Settings)."""
    from bench.harness import app_env, app_server, free_port
    from tests.conftest import make_settings

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    known = make_settings(database_url, public_base_url=base)
    env = app_env(
        database_url,
        base,
        "warning",
        CLICK_FLUSH_INTERVAL_MS="10",
        RELEASE_INTERVAL_SECONDS="0",
        ANALYTICS_INTERVAL_SECONDS="0.2",
    )
    env.update(
        REFERRAL_HASHIDS_SALT=known.hashids_salt,
        REFERRAL_CLICK_TOKEN_KEY=known.click_token_key,
        REFERRAL_IP_HASH_KEY=known.ip_hash_key,
    )
    with app_server(env, port, tmp_path / "server.log"):
        yield base, known


async def browser_sign_in(page, db, settings, merchant_id: int, actor: str) -> None:
    """Open a fresh sign-in link in the browser page and sign in as `actor`."""
    await page.goto(await sign_in_link(db, settings, merchant_id))
    await page.fill("#actor", actor)
    await page.click("button[type=submit]")
    await page.wait_for_url(settings.public_base_url + "/console")


def api_call(api):
    """`ok(method, url, body)`: a call through the shop's API (an httpx client with its key)
    that must succeed, answering its JSON."""

    async def ok(method: str, url: str, body: dict | None = None) -> dict:
        response = await api.request(method, url, json=body)
        assert response.status_code in (200, 201), response.text
        return response.json()

    return ok
