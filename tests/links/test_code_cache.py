"""The code cache across instances: two apps on one database, each with its cache on (as in
production) and a time-to-live far longer than the tests wait, so only the change
notifications of migration 0014 can make the other instance follow a change in time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from litestar.testing import AsyncTestClient

from referral.app import create_app
from referral.links.service import LISTENER_HEARTBEAT_SECONDS
from tests.conftest import make_settings
from tests.factories import create_advocate, create_program

LANDING = "https://shop.example/welcome"
# What the resolver promises (links/service.py, CodeResolver): a change reaches every
# listening instance as its notification arrives. The tests allow this long for it.
FOLLOWS_WITHIN_SECONDS = 2.0
TTL = 600.0  # never reached here: a code cached now would otherwise redirect for 10 minutes


def app_with_cache(database_url: str, ttl: float = TTL):
    return create_app(make_settings(database_url, code_cache_seconds=ttl))


def client_of(app) -> AsyncTestClient:
    return AsyncTestClient(app, base_url="http://testserver.local")


@pytest.fixture
async def instances(database_url) -> AsyncIterator[tuple[AsyncTestClient, AsyncTestClient]]:
    async with (
        client_of(app_with_cache(database_url)) as a,
        client_of(app_with_cache(database_url)) as b,
    ):
        yield a, b


def resolver(client: AsyncTestClient):
    return client.app.state.runtime.codes


async def status_of(client: AsyncTestClient, code: str) -> int:
    return (await answer_of(client, code))[0]


async def answer_of(client: AsyncTestClient, code: str) -> tuple[int, str | None]:
    """(status, location) of `/r/{code}`."""
    client.cookies.clear()
    r = await client.get(f"/r/{code}", follow_redirects=False)
    return r.status_code, r.headers.get("location")


async def within(seconds: float, check: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Poll `check` until it holds; fail after `seconds`."""
    started = time.monotonic()
    while True:
        held = check()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        if time.monotonic() - started > seconds:
            pytest.fail(f"not within {seconds} s: {what}")
        await asyncio.sleep(0.01)


async def answers(client: AsyncTestClient, code: str, status: int, what: str) -> None:
    """`/r/{code}` answers `status` within the promised time."""

    async def check() -> bool:
        return await status_of(client, code) == status

    await within(FOLLOWS_WITHIN_SECONDS, check, what)


async def new_code(client: AsyncTestClient, tenant, customers: int = 1) -> tuple[dict, list]:
    """A program and `customers` advocates: (the program, their advocates)."""
    program = await create_program(client, tenant, landing_url=LANDING)
    advocates = [
        await create_advocate(client, tenant, program["id"], f"cus_{i}") for i in range(customers)
    ]
    return program, advocates


async def cached(client: AsyncTestClient, code: str, status: int, where: str = "entries") -> None:
    """`/r/{code}` answers `status` and the listening cache then holds the code (in
    `_entries`, or `_unknown`). Polled: a lookup a change overtook is answered, not kept."""
    codes = resolver(client)

    async def check() -> bool:
        return (
            codes.listening
            and await status_of(client, code) == status
            and code in getattr(codes, f"_{where}")
        )

    await within(5, check, f"{code} answers {status} and is cached")


async def cached_on_both(a, b, code: str) -> None:
    """Both instances redirect the code and hold it in their listening caches."""
    for client in (a, b):
        await cached(client, code, 302)


async def disable(db, tenant, code: str | None = None) -> None:
    """Disable a code (all the merchant's without one) by a connection of neither instance,
    as a suspension elsewhere does."""
    await db.execute(
        "UPDATE codes SET status = 'disabled' WHERE merchant_id = $1 AND ($2::text IS NULL "
        "OR code = $2)",
        tenant.merchant_id,
        code,
    )


class TestAcrossInstances:
    async def test_a_disabled_code_stops_redirecting_on_every_instance(self, instances, tenant, db):
        a, b = instances
        _, (advocate,) = await new_code(a, tenant)
        code = advocate["code"]
        await cached_on_both(a, b, code)
        await disable(db, tenant, code)
        for client in (a, b):
            await answers(client, code, 404, "the disabled code answers 404")

    async def test_a_reactivated_advocate_redirects_again_on_the_other_instance(
        self, instances, tenant, db
    ):
        a, b = instances
        _, (advocate,) = await new_code(a, tenant)
        code = advocate["code"]
        await db.execute(
            "UPDATE advocates SET suspended_at = now() WHERE merchant_id = $1",
            tenant.merchant_id,
        )
        await disable(db, tenant)
        await answers(b, code, 404, "b sees it disabled")
        await cached(b, code, 404)  # b holds the inactive code
        r = await a.post(
            f"/v1/advocates/{advocate['id']}/reactivate",
            json={"actor": "risk@shop.example", "note": "checked"},
            headers=tenant.auth,
        )
        assert r.status_code == 200, r.text
        await answers(b, code, 302, "b redirects again")

    async def test_a_paused_program_reaches_the_other_instance(self, instances, tenant):
        a, b = instances
        program, (advocate,) = await new_code(a, tenant)
        await cached_on_both(a, b, advocate["code"])
        r = await a.post(f"/v1/programs/{program['id']}/pause", json={}, headers=tenant.auth)
        assert r.status_code == 200, r.text

        async def without_offer() -> bool:  # the landing page, no `ref` or `ref_token`
            return await answer_of(b, advocate["code"]) == (302, LANDING)

        await within(FOLLOWS_WITHIN_SECONDS, without_offer, "b stops offering")

    async def test_a_code_made_after_it_was_looked_up_works_at_once(self, instances, tenant):
        """An unknown code is cached too (guessing costs no query); a new code ends that."""
        a, b = instances
        _, (advocate,) = await new_code(a, tenant)
        vanity = "SPRUCE2030"  # no O, I or L: its own lookup key
        await cached(b, vanity, 404, "unknown")
        r = await a.post(
            f"/v1/advocates/{advocate['id']}/codes", json={"code": vanity}, headers=tenant.auth
        )
        assert r.status_code == 201, r.text
        await answers(b, vanity, 302, "b redirects it")


class TestWarmUp:
    async def test_a_starting_instance_holds_every_code_before_its_first_redirect(
        self, database_url, tenant
    ):
        async with client_of(app_with_cache(database_url)) as a:
            _, advocates = await new_code(a, tenant, customers=3)
        async with client_of(app_with_cache(database_url)) as b:
            codes = resolver(b)
            await within(5, lambda: codes.warm.is_set(), "b is warm")
            assert codes.listening
            assert all(codes._entries.get(x["code"]) is not None for x in advocates)
            assert await status_of(b, advocates[0]["code"]) == 302


class TestListenerLost:
    async def test_a_lost_listener_forgets_the_cache_and_listens_again(
        self, database_url, db, tenant
    ):
        async with client_of(app_with_cache(database_url)) as client:
            _, (advocate,) = await new_code(client, tenant)
            code, codes = advocate["code"], resolver(client)
            await cached(client, code, 302)

            killed = await db.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'referral-code-listener' "
                "AND datname = current_database()"
            )
            assert killed == 1
            await within(
                2 * LISTENER_HEARTBEAT_SECONDS + 1,
                lambda: not codes.listening,
                "the lost connection is noticed",
            )
            # Changes made while nobody listened were never heard: nothing is trusted.
            assert code not in codes._entries
            await within(5, lambda: codes.listening, "it listens again")
            await disable(db, tenant, code)
            await answers(client, code, 404, "the disabled code answers 404")

    async def test_not_listening_a_code_lives_the_short_lifetime(self, database_url, db, tenant):
        """Without its listener (never started here, as while it reconnects) the resolver
        keeps a code `ttl_seconds`, so a change is followed within that time."""
        from referral.lib.db import create_pool
        from referral.links.service import CodeResolver

        async with client_of(create_app(make_settings(database_url))) as client:
            _, (advocate,) = await new_code(client, tenant)
        code = advocate["code"]
        pool = await create_pool(database_url, min_size=1, max_size=2)
        try:
            ttl = 0.5
            codes = CodeResolver(pool, ttl)
            assert (await codes.resolve(code)).active
            await disable(db, tenant, code)
            changed_at = time.monotonic()
            assert (await codes.resolve(code)).active, "cached: not asked again at once"

            async def inactive() -> bool:
                return not (await codes.resolve(code)).active

            await within(ttl + 0.5, inactive, "the disabled code is inactive")
            assert time.monotonic() - changed_at <= ttl + 0.5
        finally:
            await pool.close()


class TestBounded:
    async def test_never_holds_more_than_its_capacity_nor_empties_at_once(
        self, database_url, tenant
    ):
        """Memory per worker is bounded by `capacity` codes; reaching it drops the oldest
        sixteenth, never everything (the old cache emptied itself whole)."""
        from referral.lib.db import create_pool
        from referral.links.service import CodeResolver

        async with client_of(create_app(make_settings(database_url))) as client:
            _, advocates = await new_code(client, tenant, customers=40)
        codes = [a["code"] for a in advocates]
        pool = await create_pool(database_url, min_size=1, max_size=2)
        task = None
        try:
            resolver_ = CodeResolver(pool, TTL, capacity=32)
            task = asyncio.create_task(resolver_.listen(database_url))
            await within(5, lambda: resolver_.warm.is_set(), "warm")
            assert resolver_.listening
            assert len(resolver_._entries) == 32, "the warm-up stops at the capacity"
            for code in codes:
                await resolver_.resolve(code)
                assert 30 <= len(resolver_._entries) <= 32
            for i in range(100):  # guesses never push codes out, and are bounded apart
                assert await resolver_.resolve(f"UNKNOWN{i}") is None
                assert 30 <= len(resolver_._entries) <= 32 and len(resolver_._unknown) <= 2
            for code in codes:
                assert (await resolver_.resolve(code)).active
        finally:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await pool.close()
