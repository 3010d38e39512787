"""Security headers on every HTML answer: the share page, the story page, the demo landing
page, the API docs and every error page a browser can meet (403/404/410 pages, the unknown
link page of `/r/{code}`, the docs' own 404). A Content-Security-Policy without
`unsafe-inline` whose nonce (or hash) is exactly what the page's own `<script>` and `<style>`
carry, no `style=` attributes, `nosniff`, no framing, a Referrer-Policy, and HSTS when the
public base URL is https."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from referral.app import create_app
from tests.conftest import make_settings
from tests.factories import approved_advocate_reward, create_advocate, create_program

BASE = "http://testserver.local"
_TAG = re.compile(r"<(script|style)\b([^>]*)>(.*?)</\1>", re.S | re.I)
_NONCE = re.compile(r'\bnonce="([^"]+)"')


async def _client(database_url: str, public_base_url: str) -> AsyncIterator[AsyncTestClient]:
    app = create_app(make_settings(database_url, public_base_url=public_base_url, demo_pages=True))
    async with AsyncTestClient(app, base_url=BASE) as client:
        yield client


@pytest.fixture
async def pages(database_url: str) -> AsyncIterator[AsyncTestClient]:
    async for client in _client(database_url, BASE):
        yield client


@pytest.fixture
async def https_pages(database_url: str) -> AsyncIterator[AsyncTestClient]:
    async for client in _client(database_url, "https://refer.shop.example"):
        yield client


async def _html_paths(client, tenant) -> dict[str, tuple[str, str, int]]:
    """Every kind of HTML page, by name: (method, path, expected status)."""
    program = await create_program(client, tenant, stories_auto_publish=True, hold_days=0)
    advocate = await create_advocate(client, tenant, program["id"], "cus_anna")
    reward_id = await approved_advocate_reward(client, tenant, advocate["code"])
    story = await client.post(
        "/v1/stories",
        json={"advocate_id": advocate["id"], "reward_id": reward_id},
        headers=tenant.auth,
    )
    assert story.status_code == 201, story.text
    share = await client.post(
        f"/v1/advocates/{advocate['id']}/share-url", json={}, headers=tenant.auth
    )
    assert share.status_code == 201, share.text
    share_path = share.json()["url"].removeprefix(BASE)
    story_path = story.json()["url"].removeprefix(BASE)
    return {
        "share page": ("GET", share_path, 200),
        "story page": ("GET", story_path, 200),
        "story page (HEAD)": ("HEAD", story_path, 200),
        "demo landing": ("GET", f"/demo/landing?ref={advocate['code']}", 200),
        "api docs": ("GET", "/openapi", 200),
        "api docs (swagger path)": ("GET", "/openapi/swagger", 200),
        "share page, bad token": ("GET", "/share/not-a-token", 403),
        "story page, unknown slug": ("GET", "/s/AAAAAAAAAAAA", 404),
        "unknown link": ("GET", "/r/ZZZZZZZZ", 404),
        "unknown link (HEAD)": ("HEAD", "/r/ZZZZZZZZ", 404),
        "docs, unknown page": ("GET", "/openapi/redoc", 404),
    }


def _policy(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def _check_page(name: str, response, *, https: bool) -> None:
    headers = response.headers
    assert headers["content-type"].startswith("text/html"), name
    assert headers["x-content-type-options"] == "nosniff", name
    assert headers["x-frame-options"] == "DENY", name
    assert headers["referrer-policy"] in ("no-referrer", "strict-origin-when-cross-origin"), name
    if https:
        assert headers["strict-transport-security"] == "max-age=31536000", name
    else:
        assert "strict-transport-security" not in headers, name

    policy = _policy(headers["content-security-policy"])
    assert "unsafe-inline" not in headers["content-security-policy"], name
    assert "unsafe-eval" not in headers["content-security-policy"], name
    assert policy["default-src"] == ["'self'"], name
    assert policy["frame-ancestors"] == ["'none'"], name
    assert policy["object-src"] == ["'none'"], name
    assert policy["base-uri"] == ["'none'"], name
    for directive in ("script-src", "style-src", "img-src", "form-action"):
        assert all(
            s in ("'self'", "data:") or s.startswith(("'nonce-", "'sha256-"))
            for s in policy[directive]
        ), (name, directive, policy[directive])
    assert "data:" not in policy["script-src"] + policy["style-src"], name

    body = response.text
    assert not re.search(r"<[^>]*\sstyle\s*=", body, re.I), f"{name}: style= is blocked"
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", body, re.I), f"{name}: inline handler"
    nonces = {s.removeprefix("'nonce-").removesuffix("'") for s in policy["script-src"]} & {
        s.removeprefix("'nonce-").removesuffix("'") for s in policy["style-src"]
    }
    for tag, attributes, content in _TAG.findall(body):
        if tag.lower() == "script" and "src=" in attributes and not content.strip():
            continue  # a served file: allowed by 'self'
        nonce = _NONCE.search(attributes)
        if nonce:
            assert nonce.group(1) in nonces, f"{name}: <{tag}> nonce not in the policy"
            continue
        digest = base64.b64encode(hashlib.sha256(content.encode()).digest()).decode()
        sources = policy["style-src" if tag.lower() == "style" else "script-src"]
        assert f"'sha256-{digest}'" in sources, f"{name}: inline <{tag}> not allowed by the policy"


class TestSecurityHeaders:
    async def test_every_html_page_and_error_page_carries_them(self, pages, tenant):
        for name, (method, path, status) in (await _html_paths(pages, tenant)).items():
            response = await pages.request(method, path)
            assert response.status_code == status, (name, response.text[:200])
            if method == "HEAD":
                get = await pages.get(path)
                for header in ("content-security-policy", "x-frame-options", "referrer-policy"):
                    assert header in response.headers, (name, header)
                # HEAD has no body to check; its policy is GET's, with the same sources.
                assert "unsafe-inline" not in response.headers["content-security-policy"]
                assert get.status_code == status
                continue
            _check_page(name, response, https=False)

    async def test_hsts_when_the_public_base_url_is_https(self, https_pages, tenant):
        for name, (method, path, status) in (await _html_paths(https_pages, tenant)).items():
            if method == "HEAD":
                continue
            response = await https_pages.request(method, path)
            assert response.status_code == status, name
            _check_page(name, response, https=True)

    async def test_each_response_has_its_own_nonce(self, pages, tenant):
        paths = await _html_paths(pages, tenant)
        _, share_path, _ = paths["share page"]
        first, second = await pages.get(share_path), await pages.get(share_path)
        nonce = re.compile(r"'nonce-([^']+)'")
        one = nonce.search(first.headers["content-security-policy"]).group(1)
        two = nonce.search(second.headers["content-security-policy"]).group(1)
        assert one != two
        assert len(base64.urlsafe_b64decode(one + "==")) >= 16  # at least 128 bits
        assert f'<script nonce="{one}">' in first.text
        assert f'<style nonce="{one}">' in first.text

    async def test_api_answers_are_not_sniffed_and_carry_no_page_policy(self, pages, tenant):
        response = await pages.get("/v1/programs", headers=tenant.auth)
        assert response.status_code == 200
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in response.headers

    async def test_the_redirect_does_not_run_the_hook(self, pages, tenant):
        """`/r/{code}` answers before Litestar's response hooks: its 302 carries only its own
        headers (the hook would have added `nosniff`), so the headers cost it nothing."""
        program = await create_program(pages, tenant)
        advocate = await create_advocate(pages, tenant, program["id"], "cus_bo")
        response = await pages.get(f"/r/{advocate['code']}", follow_redirects=False)
        assert response.status_code == 302
        assert "x-content-type-options" not in response.headers
        assert "content-security-policy" not in response.headers
