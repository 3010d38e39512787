"""The merchant and its keys through the HTTP API: who am I, the settings (and that payouts
and cap periods use them), listing and revoking keys."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from referral.merchants import service as merchants
from referral.rewards.service import release_due
from tests.factories import NO_VELOCITY, create_advocate, create_program


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    if code is not None:
        assert body["code"] == code, body
    return body


async def keys_of(client, key: str) -> dict[str, dict]:
    response = await client.get("/v1/keys", params={"limit": 100}, headers=bearer(key))
    assert response.status_code == 200, response.text
    return {k["hint"]: k for k in response.json()["data"]}


def hint(raw: str) -> str:
    return raw[:8] + "…" + raw[-4:]


class TestWhoAmI:
    async def test_names_the_merchant_mode_settings_and_key(self, client, tenant, ids):
        response = await client.get("/v1/merchant", headers=tenant.auth)
        assert response.status_code == 200, response.text
        me = response.json()
        assert me["id"] == ids.encode("merchant", tenant.merchant_id)
        assert me["mode"] == "test" and me["livemode"] is False
        assert me["name"] == "Shop A"
        assert me["time_zone"] == "UTC"
        assert me["payout_minimums"] == {}
        assert me["key"]["kind"] == "secret"
        assert me["key"]["hint"] == hint(tenant.secret_key)
        assert me["key"]["id"].startswith("key_")
        assert tenant.secret_key not in response.text

    async def test_a_publishable_key_reads_it_too(self, client, tenant):
        response = await client.get("/v1/merchant", headers=tenant.public_auth)
        assert response.status_code == 200, response.text
        assert response.json()["key"]["kind"] == "publishable"
        assert response.json()["key"]["hint"] == hint(tenant.publishable_key)

    async def test_live_and_test_mode_are_separate_merchants(self, client, tenant, ids):
        test = (await client.get("/v1/merchant", headers=tenant.auth)).json()
        live = (await client.get("/v1/merchant", headers=bearer(tenant.live_secret_key))).json()
        assert live["mode"] == "live" and live["livemode"] is True
        assert live["id"] != test["id"]
        # A setting changed in test mode stays in test mode.
        response = await client.patch(
            "/v1/merchant", json={"time_zone": "Europe/Stockholm"}, headers=tenant.auth
        )
        assert response.status_code == 200, response.text
        live = (await client.get("/v1/merchant", headers=bearer(tenant.live_secret_key))).json()
        assert live["time_zone"] == "UTC"

    async def test_without_a_key_is_401(self, client):
        assert_problem(await client.get("/v1/merchant"), 401, "missing_api_key")


class TestSettings:
    async def test_patch_changes_time_zone_and_merges_minimums(self, client, tenant):
        response = await client.patch(
            "/v1/merchant",
            json={"time_zone": "Europe/Stockholm", "payout_minimums": {"EUR": 5000, "SEK": 0}},
            headers=tenant.auth,
        )
        assert response.status_code == 200, response.text
        assert response.json()["time_zone"] == "Europe/Stockholm"
        assert response.json()["payout_minimums"] == {"EUR": 5000, "SEK": 0}

        response = await client.patch(
            "/v1/merchant",
            json={"payout_minimums": {"SEK": None, "JPY": 300}},
            headers=tenant.auth,
        )
        assert response.status_code == 200, response.text
        me = (await client.get("/v1/merchant", headers=tenant.auth)).json()
        assert me["time_zone"] == "Europe/Stockholm", "a field left out keeps its value"
        assert me["payout_minimums"] == {"EUR": 5000, "JPY": 300}

    @pytest.mark.parametrize(
        "zone", ["Mars/Olympus_Mons", "europe/stockholm", "localtime", "+01:00", "Europe/"]
    )
    async def test_an_unknown_time_zone_is_422_naming_the_field(self, client, tenant, zone):
        response = await client.patch("/v1/merchant", json={"time_zone": zone}, headers=tenant.auth)
        problem = assert_problem(response, 422, "invalid_time_zone")
        assert problem["field"] == "time_zone"
        me = (await client.get("/v1/merchant", headers=tenant.auth)).json()
        assert me["time_zone"] == "UTC"

    async def test_an_unknown_currency_is_422_naming_it(self, client, tenant):
        response = await client.patch(
            "/v1/merchant", json={"payout_minimums": {"XYZ": 100}}, headers=tenant.auth
        )
        problem = assert_problem(response, 422, "unknown_currency")
        assert problem["field"] == "payout_minimums.XYZ"

    @pytest.mark.parametrize(
        "body",
        [
            {"payout_minimums": {"EUR": -1}},
            {"payout_minimums": {"EUR": 10.5}},
            {"payout_minimums": {"EUR": "5000"}},
            {"payout_minimums": {"eur": 5000}},
            {"payout_minimums": {"EUR": 10**14}},
            {"time_zone": 3600},
            {"name": "renamed"},
        ],
    )
    async def test_loose_input_is_refused(self, client, tenant, body):
        response = await client.patch("/v1/merchant", json=body, headers=tenant.auth)
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        me = (await client.get("/v1/merchant", headers=tenant.auth)).json()
        assert me["payout_minimums"] == {} and me["name"] == "Shop A"

    async def test_only_secret_keys_change_settings(self, client, tenant):
        response = await client.patch(
            "/v1/merchant", json={"time_zone": "Europe/Paris"}, headers=tenant.public_auth
        )
        assert_problem(response, 403, "secret_key_required")
        assert (await client.get("/v1/merchant", headers=tenant.auth)).json()["time_zone"] == "UTC"

    async def test_the_payout_minimum_set_here_is_the_one_batches_use(
        self, client, tenant, pool, ids
    ):
        program = await create_program(
            client,
            tenant,
            hold_days=0,
            rewards={"advocate": {"kind": "cash", "amounts": {"EUR": 1000}}},
            fraud_policy=NO_VELOCITY,
        )
        for n, customer in enumerate(["small", "big", "big"]):
            advocate = await create_advocate(client, tenant, program["id"], customer)
            response = await client.post(
                "/v1/orders",
                headers=tenant.auth,
                json={
                    "order_id": f"min-{n}",
                    "customer_id": f"friend-{n}",
                    "subtotal": 5000,
                    "total": 5000,
                    "currency": "EUR",
                    "codes": [advocate["code"]],
                    "occurred_at": datetime.now(UTC).isoformat(),
                },
            )
            assert response.status_code == 201, response.text
        await release_due(pool, ids=ids)
        response = await client.patch(
            "/v1/merchant", json={"payout_minimums": {"EUR": 1500}}, headers=tenant.auth
        )
        assert response.status_code == 200, response.text

        batch = await client.post(
            "/v1/payout-batches", json={"currency": "EUR"}, headers=tenant.auth
        )
        assert batch.status_code == 201, batch.text
        assert batch.json()["minimum"] == 1500
        assert batch.json()["line_count"] == 1, "the payee with 10 EUR rolls over"
        assert batch.json()["total"] == 2000


class TestTimeZoneDrivesCapPeriods:
    async def test_a_daily_cap_starts_at_the_merchants_midnight(self, client, tenant, db):
        """Two orders an hour apart, on two UTC days but one Tokyo day: with a cap of one
        reward per day, the time zone set through the API caps the second."""
        response = await client.patch(
            "/v1/merchant", json={"time_zone": "Asia/Tokyo"}, headers=tenant.auth
        )
        assert response.status_code == 200, response.text
        program = await create_program(
            client,
            tenant,
            hold_days=0,
            rewards={
                "advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
                "caps": {"period": "day", "max_rewards_per_period": 1},
            },
            fraud_policy=NO_VELOCITY,
        )
        await db.execute(
            "UPDATE programs SET starts_at = '2020-01-01T00:00:00Z' WHERE merchant_id = $1",
            tenant.merchant_id,
        )
        advocate = await create_advocate(client, tenant, program["id"], "capped")
        rewarded = []
        # 23:30 UTC on 1 Jan and 00:30 UTC on 2 Jan: two UTC days, one Tokyo day (2 Jan).
        for n, at in enumerate(["2025-01-01T23:30:00+00:00", "2025-01-02T00:30:00+00:00"]):
            response = await client.post(
                "/v1/orders",
                headers=tenant.auth,
                json={
                    "order_id": f"cap-{n}",
                    "customer_id": f"friend-cap-{n}",
                    "subtotal": 5000,
                    "total": 5000,
                    "currency": "EUR",
                    "codes": [advocate["code"]],
                    "occurred_at": at,
                },
            )
            assert response.status_code == 201, response.text
            rewarded.append([r for r in response.json()["rewards"] if r["side"] == "advocate"])
        assert rewarded[0], "the first order of the day earns"
        assert not rewarded[1], "the second order of the same Tokyo day is capped"


class TestKeys:
    async def test_list_shows_the_merchants_keys_without_secrets(self, client, tenant):
        response = await client.get("/v1/keys", headers=tenant.auth)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert sorted(k["kind"] for k in data) == ["publishable", "secret"]
        for key in data:
            assert key["id"].startswith("key_")
            assert key["revoked_at"] is None and key["livemode"] is False
            assert set(key) >= {"id", "kind", "label", "hint", "created_at", "revoked_at"}
        assert tenant.secret_key not in response.text
        assert tenant.publishable_key not in response.text
        secret = await client.get("/v1/keys", params={"kind": "secret"}, headers=tenant.auth)
        assert [k["hint"] for k in secret.json()["data"]] == [hint(tenant.secret_key)]

    async def test_list_says_when_each_key_was_last_used(self, client, tenant):
        listed = await keys_of(client, tenant.secret_key)
        assert listed[hint(tenant.secret_key)]["last_used_at"] is not None, "this very call"
        assert listed[hint(tenant.publishable_key)]["last_used_at"] is None, "never used"
        assert (await client.get("/v1/merchant", headers=tenant.public_auth)).status_code == 200
        listed = await keys_of(client, tenant.secret_key)
        assert listed[hint(tenant.publishable_key)]["last_used_at"] is not None

    async def test_listing_needs_a_secret_key(self, client, tenant):
        assert_problem(
            await client.get("/v1/keys", headers=tenant.public_auth), 403, "secret_key_required"
        )

    async def test_a_revoked_key_is_refused_at_once_with_the_cache_on(
        self, database_url, db, tenant
    ):
        """The key cache on (as in production): the revoking instance forgets the key, so
        the very next request with it gets 401."""
        from litestar.testing import AsyncTestClient

        from referral.app import create_app
        from tests.conftest import make_settings

        app = create_app(make_settings(database_url, code_cache_seconds=60))
        second = await merchants.create_key(db, merchant_id=tenant.merchant_id, kind="secret")
        async with AsyncTestClient(app, base_url="http://testserver.local") as client:
            assert (await client.get("/v1/merchant", headers=bearer(second))).status_code == 200
            assert app.state.runtime.keys.ttl > 0, "the key cache is on"
            key_id = (await keys_of(client, tenant.secret_key))[hint(second)]["id"]
            revoked = await client.post(f"/v1/keys/{key_id}/revoke", headers=tenant.auth)
            assert revoked.status_code == 200, revoked.text
            assert revoked.json()["revoked_at"] is not None
            # The revoked key was cached a moment ago; it is refused now all the same.
            for _ in range(3):
                assert_problem(
                    await client.get("/v1/merchant", headers=bearer(second)),
                    401,
                    "invalid_api_key",
                )
            assert (await client.get("/v1/merchant", headers=tenant.auth)).status_code == 200
            listed = await keys_of(client, tenant.secret_key)
            assert listed[hint(second)]["revoked_at"] is not None

    async def test_a_secret_key_may_revoke_the_publishable_key(self, client, tenant):
        key_id = (await keys_of(client, tenant.secret_key))[hint(tenant.publishable_key)]["id"]
        response = await client.post(f"/v1/keys/{key_id}/revoke", headers=tenant.auth)
        assert response.status_code == 200, response.text
        assert_problem(
            await client.get("/v1/merchant", headers=tenant.public_auth), 401, "invalid_api_key"
        )
        again = await client.post(f"/v1/keys/{key_id}/revoke", headers=tenant.auth)
        assert again.status_code == 200, "revoking again changes nothing"
        assert again.json()["revoked_at"] == response.json()["revoked_at"]

    async def test_the_last_active_secret_key_cannot_be_revoked(self, client, tenant, db):
        own = (await keys_of(client, tenant.secret_key))[hint(tenant.secret_key)]["id"]
        problem = assert_problem(
            await client.post(f"/v1/keys/{own}/revoke", headers=tenant.auth),
            409,
            "last_secret_key",
        )
        assert "create another" in problem["detail"]
        assert (await client.get("/v1/merchant", headers=tenant.auth)).status_code == 200

        # With a second secret key, the first may go (even by itself) - and then the second
        # is the last one.
        second = await merchants.create_key(db, merchant_id=tenant.merchant_id, kind="secret")
        response = await client.post(f"/v1/keys/{own}/revoke", headers=tenant.auth)
        assert response.status_code == 200, response.text
        assert_problem(await client.get("/v1/keys", headers=tenant.auth), 401, "invalid_api_key")
        second_id = (await keys_of(client, second))[hint(second)]["id"]
        assert_problem(
            await client.post(f"/v1/keys/{second_id}/revoke", headers=bearer(second)),
            409,
            "last_secret_key",
        )

    async def test_two_revocations_at_once_leave_one_secret_key(self, client, tenant, db):
        second = await merchants.create_key(db, merchant_id=tenant.merchant_id, kind="secret")
        listed = await keys_of(client, tenant.secret_key)
        first_id, second_id = listed[hint(tenant.secret_key)]["id"], listed[hint(second)]["id"]
        # Each key revokes the other, at the same time: exactly one may win.
        responses = await asyncio.gather(
            client.post(f"/v1/keys/{second_id}/revoke", headers=tenant.auth),
            client.post(f"/v1/keys/{first_id}/revoke", headers=bearer(second)),
        )
        assert sorted(r.status_code for r in responses) in ([200, 401], [200, 409]), [
            r.text for r in responses
        ]
        active = await db.fetchval(
            "SELECT count(*) FROM api_keys WHERE merchant_id = $1 AND kind = 'secret' "
            "AND revoked_at IS NULL",
            tenant.merchant_id,
        )
        assert active == 1

    async def test_another_merchants_key_is_not_found(self, client, tenant, other_tenant):
        theirs = (await keys_of(client, other_tenant.secret_key))[
            hint(other_tenant.publishable_key)
        ]["id"]
        assert_problem(
            await client.post(f"/v1/keys/{theirs}/revoke", headers=tenant.auth),
            404,
            "key_not_found",
        )
        mine = await keys_of(client, tenant.secret_key)
        assert theirs not in {k["id"] for k in mine.values()}
        assert (
            await client.get("/v1/merchant", headers=other_tenant.public_auth)
        ).status_code == 200, "their key still works"

    async def test_the_live_twin_cannot_revoke_test_mode_keys(self, client, tenant):
        key_id = (await keys_of(client, tenant.secret_key))[hint(tenant.publishable_key)]["id"]
        assert_problem(
            await client.post(f"/v1/keys/{key_id}/revoke", headers=bearer(tenant.live_secret_key)),
            404,
            "key_not_found",
        )
        assert (await client.get("/v1/merchant", headers=tenant.public_auth)).status_code == 200

    @pytest.mark.parametrize("key_id", ["key_nope", "mer_abc", "x" * 300, "key_"])
    async def test_a_malformed_key_id_is_404(self, client, tenant, key_id):
        assert_problem(await client.post(f"/v1/keys/{key_id}/revoke", headers=tenant.auth), 404)
