"""Per-IP rate limits on the public endpoints that guess or write: code lookups and quotes
without a secret key, the share page's forms and buttons, story pages. Past the limit a
client gets 429 problem+json with `Retry-After`; other clients are not affected; a shop's
server with its secret key and the redirect `/r/{code}` are never limited."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from referral.app import create_app
from referral.lib.errors import PROBLEM_BASE
from referral.lib.rate_limit import Limit, TokenBuckets
from referral.settings import RateLimits, SettingsError, from_env
from tests.conftest import make_settings
from tests.factories import create_advocate, create_program, on_app_loop

ALICE = ("203.0.113.10", 40000)
BOB = ("203.0.113.11", 40000)
TIGHT = RateLimits(
    lookups=Limit(per_minute=1, burst=3),
    share_page=Limit(per_minute=1, burst=2),
    story_pages=Limit(per_minute=1, burst=4),
)


@pytest.fixture
def settings(database_url):
    return make_settings(database_url, rate_limits=TIGHT)


@pytest.fixture
def app(settings) -> Litestar:
    return create_app(settings)


async def _statuses(client, peer, method: str, path: str, n: int, **kwargs) -> list:
    async def send(http):
        return [await http.request(method, path, **kwargs) for _ in range(n)]

    return await on_app_loop(client, send, peer=peer)


def assert_too_many(response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "too_many_requests"
    assert problem["type"] == PROBLEM_BASE + "too_many_requests"
    assert problem["status"] == 429
    retry = int(response.headers["retry-after"])
    assert 1 <= retry <= 60  # one token a minute
    assert f"retry in {retry} s" in problem["detail"]


class TestCodeLookups:
    async def test_a_publishable_key_is_limited_per_ip(self, client, tenant):
        program = await create_program(client, tenant)
        advocate = await create_advocate(client, tenant, program["id"])
        headers = tenant.public_auth
        alice = await _statuses(client, ALICE, "GET", "/v1/codes/NOSUCHCODE", 5, headers=headers)
        assert [r.status_code for r in alice[:3]] == [404, 404, 404]
        for response in alice[3:]:
            assert_too_many(response)
        # The limit is per client: Bob is not affected, and a good code is no way around it.
        bob = await _statuses(
            client, BOB, "GET", f"/v1/codes/{advocate['code']}", 3, headers=headers
        )
        assert [r.status_code for r in bob] == [200, 200, 200]
        again = await _statuses(
            client, ALICE, "GET", f"/v1/codes/{advocate['code']}", 1, headers=headers
        )
        assert_too_many(again[0])

    async def test_no_key_or_a_wrong_key_counts_too(self, client, tenant):
        wrong = {"Authorization": "Bearer pk_test_guess"}
        found = await _statuses(client, ALICE, "GET", "/v1/codes/X1234567", 4, headers=wrong)
        assert [r.status_code for r in found[:3]] == [401, 401, 401]
        assert_too_many(found[3])
        none = await _statuses(client, ALICE, "GET", "/v1/codes/X1234567", 1)
        assert_too_many(none[0])

    async def test_a_secret_key_is_never_limited(self, client, tenant):
        """A shop's server makes all its calls from one address."""
        found = await _statuses(
            client, ALICE, "GET", "/v1/codes/NOSUCHCODE", 12, headers=tenant.auth
        )
        assert {r.status_code for r in found} == {404}

    async def test_quotes_without_a_secret_key_are_limited(self, client, tenant):
        program = await create_program(client, tenant)
        advocate = await create_advocate(client, tenant, program["id"])
        body = {
            "codes": [advocate["code"]],
            "customer_id": "friend-1",
            "email": "friend@example.com",
            "subtotal": 5000,
            "currency": "EUR",
        }
        public = await _statuses(
            client, ALICE, "POST", "/v1/checkout/quote", 4, json=body, headers=tenant.public_auth
        )
        assert [r.status_code for r in public[:3]] == [403, 403, 403]
        assert_too_many(public[3])
        secret = await _statuses(
            client, ALICE, "POST", "/v1/checkout/quote", 8, json=body, headers=tenant.auth
        )
        assert {r.status_code for r in secret} == {200}, secret[0].text


class TestProxies:
    async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(self, client, tenant):
        responses = []
        for n in range(4):
            forged = {"x-forwarded-for": f"198.51.100.{n}", **tenant.public_auth}
            responses += await _statuses(client, ALICE, "GET", "/v1/codes/NOPE", 1, headers=forged)
        assert [r.status_code for r in responses[:3]] == [404, 404, 404]
        assert_too_many(responses[3])

    async def test_a_trusted_proxy_names_the_client(self, database_url, tenant):
        settings = make_settings(database_url, rate_limits=TIGHT, trusted_proxies=("10.0.0.0/8",))
        async with AsyncTestClient(create_app(settings), base_url="http://testserver.local") as c:
            proxy = ("10.0.0.5", 40000)
            for client_address in ("198.51.100.1", "198.51.100.2"):
                via = {"x-forwarded-for": f"{client_address}, 10.0.0.7", **tenant.public_auth}
                found = await _statuses(c, proxy, "GET", "/v1/codes/NOPE", 4, headers=via)
                assert [r.status_code for r in found[:3]] == [404, 404, 404], client_address
                assert_too_many(found[3])

    async def test_an_ipv6_client_is_its_slash_64(self, client, tenant):
        responses = []
        for host in (
            "2001:db8:1:2::1",
            "2001:db8:1:2::2",
            "2001:db8:1:2:ffff::3",
            "2001:db8:1:2::4",
        ):
            responses += await _statuses(
                client, (host, 40000), "GET", "/v1/codes/NOPE", 1, headers=tenant.public_auth
            )
        assert [r.status_code for r in responses[:3]] == [404, 404, 404]
        assert_too_many(responses[3])
        other = await _statuses(
            client, ("2001:db8:1:3::1", 1), "GET", "/v1/codes/NOPE", 1, headers=tenant.public_auth
        )
        assert other[0].status_code == 404


class TestPages:
    async def test_the_share_pages_forms_and_buttons(self, client, tenant):
        program = await create_program(client, tenant)
        advocate = await create_advocate(client, tenant, program["id"])
        made = await client.post(
            f"/v1/advocates/{advocate['id']}/share-url", json={}, headers=tenant.auth
        )
        path = made.json()["url"].removeprefix("http://testserver.local")
        form = {"data": {"contact_preference": "email"}}
        posted = await _statuses(client, ALICE, "POST", f"{path}/contact", 3, **form)
        assert [r.status_code for r in posted[:2]] == [303, 303]
        assert_too_many(posted[2])
        shared = await _statuses(client, ALICE, "GET", f"{path}/to/whatsapp", 1)
        assert_too_many(shared[0])  # one limit for the page's writes
        page = await _statuses(client, ALICE, "GET", path, 3)  # reading the page is not
        assert {r.status_code for r in page} == {200}
        bob = await _statuses(client, BOB, "POST", f"{path}/contact", 1, **form)
        assert bob[0].status_code == 303

    async def test_story_slugs(self, client):
        found = await _statuses(client, ALICE, "GET", "/s/guessed-slug", 5)
        assert [r.status_code for r in found[:4]] == [404] * 4
        assert_too_many(found[4])
        image = await _statuses(client, ALICE, "GET", "/s/other/image.png", 1)
        assert_too_many(image[0])
        bob = await _statuses(client, BOB, "GET", "/s/guessed-slug", 1)
        assert bob[0].status_code == 404


class TestRedirect:
    async def test_the_redirect_is_never_limited(self, app, client, tenant):
        program = await create_program(client, tenant)
        advocate = await create_advocate(client, tenant, program["id"])
        found = await _statuses(client, ALICE, "GET", f"/r/{advocate['code']}", 40)
        assert {r.status_code for r in found} == {302}
        unknown = await _statuses(client, ALICE, "GET", "/r/NOSUCHCODE", 10)
        assert {r.status_code for r in unknown} == {404}
        # Not a cheap limit: no limit at all on its routes.
        for route in app.routes:
            if route.path.startswith("/r/{code") and route.path.count("/") == 2:
                for handler in route.route_handlers:
                    assert handler.resolve_guards() == [], route.path


class TestBuckets:
    def test_a_bucket_refills_at_its_rate(self):
        now = [0.0]
        buckets = TokenBuckets(Limit(per_minute=6, burst=2), clock=lambda: now[0])
        assert [buckets.take("a") for _ in range(2)] == [0.0, 0.0]
        assert buckets.take("a") == pytest.approx(10.0)  # one token every 10 s
        assert buckets.take("b") == 0.0
        now[0] = 9.0
        assert buckets.take("a") == pytest.approx(1.0)
        now[0] = 10.0
        assert buckets.take("a") == 0.0
        now[0] = 1000.0  # never more than the burst
        assert [buckets.take("a") == 0.0 for _ in range(3)] == [True, True, False]

    def test_memory_is_bounded(self):
        buckets = TokenBuckets(Limit(per_minute=1, burst=1), max_keys=100)
        for n in range(1000):
            buckets.take(n)
        assert len(buckets._buckets) == 100

    def test_settings_from_the_environment(self):
        base = {
            "DATABASE_URL": "postgresql://x@localhost/x",
            "REFERRAL_HASHIDS_SALT": "s" * 16,
            "REFERRAL_CLICK_TOKEN_KEY": "c" * 16,
            "REFERRAL_IP_HASH_KEY": "i" * 16,
        }
        defaults = from_env(base).rate_limits
        assert defaults == RateLimits()
        assert all(getattr(defaults, f).enabled for f in defaults.__struct_fields__)
        tuned = from_env({**base, "RATE_LIMIT_LOOKUPS": "600/100", "RATE_LIMIT_STORY_PAGES": "0"})
        assert tuned.rate_limits.lookups == Limit(per_minute=600, burst=100)
        assert not tuned.rate_limits.story_pages.enabled
        for bad in ("many", "-1", "60/0"):
            with pytest.raises(SettingsError):
                from_env({**base, "RATE_LIMIT_SHARE_PAGE": bad})
