"""Keys made, restricted, rolled and revoked through the API and the command line."""

from __future__ import annotations

import asyncio
import time

from tests.commands import referral
from tests.factories import on_app_loop


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def make_key(client, tenant, **body) -> dict:
    response = await client.post("/v1/keys", json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()


class TestCreate:
    async def test_a_restricted_key_is_shown_once_and_listed_with_its_scopes(self, client, tenant):
        made = await make_key(client, tenant, label="checkout", scopes=["checkout", "read"])
        assert made["secret"].startswith("sk_test_") and made["scopes"] == ["checkout", "read"]
        listed = await client.get("/v1/keys", headers=tenant.auth)
        (shown,) = [k for k in listed.json()["data"] if k["id"] == made["id"]]
        assert "secret" not in shown and shown["scopes"] == ["checkout", "read"]
        me = await client.get("/v1/merchant", headers=bearer(made["secret"]))
        assert me.json()["key"]["id"] == made["id"]

    async def test_scopes_are_kept_in_their_order_once_each(self, client, tenant):
        made = await make_key(client, tenant, scopes=["admin", "read", "admin"])
        assert made["scopes"] == ["read", "admin"]

    async def test_a_publishable_key_takes_no_scopes(self, client, tenant):
        response = await client.post(
            "/v1/keys", json={"kind": "publishable", "scopes": ["read"]}, headers=tenant.auth
        )
        assert response.status_code == 422 and response.json()["code"] == "publishable_key_scopes"
        made = await make_key(client, tenant, kind="publishable")
        assert made["secret"].startswith("pk_test_") and made["scopes"] is None

    async def test_unknown_scopes_and_empty_lists_are_refused(self, client, tenant):
        for scopes in (["everything"], [], ["read"] * 5):
            response = await client.post("/v1/keys", json={"scopes": scopes}, headers=tenant.auth)
            assert response.status_code == 400, scopes

    async def test_a_replay_answers_the_same_key_without_its_secret(self, client, tenant, db):
        headers = {**tenant.auth, "Idempotency-Key": "make-one-key"}
        first = await client.post("/v1/keys", json={"scopes": ["read"]}, headers=headers)
        again = await client.post("/v1/keys", json={"scopes": ["read"]}, headers=headers)
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == first.json()["id"] and again.json()["secret"] is None
        secret = first.json()["secret"]
        stored = await db.fetchval("SELECT string_agg(response::text, '') FROM idempotency_keys")
        assert secret not in stored, "only the key's hash is kept anywhere"

    async def test_a_key_without_admin_cannot_make_keys(self, client, tenant):
        finance = await make_key(client, tenant, scopes=["finance"])
        response = await client.post("/v1/keys", json={}, headers=bearer(finance["secret"]))
        assert response.status_code == 403 and response.json()["code"] == "insufficient_scope"


class TestRoll:
    async def test_the_new_key_works_and_the_old_one_until_its_grace_ends(
        self, client, tenant, app
    ):
        old = await make_key(client, tenant, label="shop backend", scopes=["checkout"])
        assert (await client.get("/v1/codes/NOPE", headers=bearer(old["secret"]))).status_code in (
            200,
            404,
        )  # the old key is now in this instance's cache
        response = await client.post(
            f"/v1/keys/{old['id']}/roll", json={"grace_period_seconds": 1}, headers=tenant.auth
        )
        assert response.status_code == 200, response.text
        rolled = response.json()
        new, replaced = rolled["key"], rolled["replaced"]
        assert new["secret"] != old["secret"] and new["scopes"] == ["checkout"]
        assert new["label"] == "shop backend" and replaced["replaced_by"] == new["id"]
        assert (await client.get("/v1/merchant", headers=bearer(old["secret"]))).status_code == 200
        assert (await client.get("/v1/merchant", headers=bearer(new["secret"]))).status_code == 200
        # The grace ends on the dot, cached or not: poll until refused, within a deadline.
        deadline = time.monotonic() + 5
        while (await client.get("/v1/merchant", headers=bearer(old["secret"]))).status_code == 200:
            assert time.monotonic() < deadline, "the old key outlived its grace"
            await asyncio.sleep(0.1)
        refused = await client.get("/v1/merchant", headers=bearer(old["secret"]))
        assert refused.status_code == 401 and refused.json()["code"] == "invalid_api_key"
        assert (await client.get("/v1/merchant", headers=bearer(new["secret"]))).status_code == 200

    async def test_no_grace_ends_the_old_key_at_once(self, client, tenant):
        old = await make_key(client, tenant, scopes=["read"])
        await client.get("/v1/merchant", headers=bearer(old["secret"]))
        response = await client.post(
            f"/v1/keys/{old['id']}/roll", json={"grace_period_seconds": 0}, headers=tenant.auth
        )
        assert response.status_code == 200
        assert (await client.get("/v1/merchant", headers=bearer(old["secret"]))).status_code == 401

    async def test_a_key_rolls_once_and_a_revoked_key_not_at_all(self, client, tenant):
        old = await make_key(client, tenant, scopes=["read"])
        first = await client.post(f"/v1/keys/{old['id']}/roll", headers=tenant.auth)
        assert first.status_code == 200 and first.json()["replaced"]["expires_at"]
        again = await client.post(f"/v1/keys/{old['id']}/roll", headers=tenant.auth)
        assert again.status_code == 409 and again.json()["code"] == "key_already_rolled"
        assert first.json()["key"]["id"] in again.json()["detail"]
        gone = await make_key(client, tenant, scopes=["read"])
        await client.post(f"/v1/keys/{gone['id']}/revoke", headers=tenant.auth)
        refused = await client.post(f"/v1/keys/{gone['id']}/roll", headers=tenant.auth)
        assert refused.status_code == 409 and refused.json()["code"] == "key_revoked"

    async def test_a_grace_beyond_seven_days_or_an_unknown_key_is_refused(self, client, tenant):
        old = await make_key(client, tenant)
        long = await client.post(
            f"/v1/keys/{old['id']}/roll",
            json={"grace_period_seconds": 8 * 86400},
            headers=tenant.auth,
        )
        assert long.status_code == 400
        missing = await client.post("/v1/keys/key_nope/roll", headers=tenant.auth)
        assert missing.status_code == 404 and missing.json()["code"] == "key_not_found"

    async def test_rolling_the_only_admin_key_leaves_its_successor_in_charge(self, client, tenant):
        me = await client.get("/v1/merchant", headers=tenant.auth)
        own = me.json()["key"]["id"]
        rolled = await client.post(
            f"/v1/keys/{own}/roll", json={"grace_period_seconds": 0}, headers=tenant.auth
        )
        assert rolled.status_code == 200
        successor = bearer(rolled.json()["key"]["secret"])
        assert (await client.get("/v1/keys", headers=successor)).status_code == 200
        last = await client.post(f"/v1/keys/{rolled.json()['key']['id']}/revoke", headers=successor)
        assert last.status_code == 409 and last.json()["code"] == "last_secret_key"


class TestRevoke:
    async def test_a_merchant_keeps_a_key_that_can_manage_keys(self, client, tenant):
        """Restricted keys without admin do not count: they could not make another key."""
        await make_key(client, tenant, scopes=["checkout", "finance", "read"])
        me = await client.get("/v1/merchant", headers=tenant.auth)
        refused = await client.post(
            f"/v1/keys/{me.json()['key']['id']}/revoke", headers=tenant.auth
        )
        assert refused.status_code == 409 and refused.json()["code"] == "last_secret_key"
        admin = await make_key(client, tenant, scopes=["admin"])
        done = await client.post(f"/v1/keys/{me.json()['key']['id']}/revoke", headers=tenant.auth)
        assert done.status_code == 200
        assert (await client.get("/v1/keys", headers=bearer(admin["secret"]))).status_code == 200

    async def test_two_revocations_at_once_cannot_strand_the_merchant(self, client, tenant):
        """Each of the two admin keys revokes the other at the same moment: one wins, the
        other is refused (the merchant lock makes them take turns), and one key is left."""
        second = await make_key(client, tenant)
        me = await client.get("/v1/merchant", headers=tenant.auth)
        first_id = me.json()["key"]["id"]
        other = bearer(second["secret"])

        async def both(http):
            return await asyncio.gather(
                http.post(f"/v1/keys/{second['id']}/revoke", headers=tenant.auth),
                http.post(f"/v1/keys/{first_id}/revoke", headers=other),
            )

        answers = await on_app_loop(client, both)
        codes = sorted(a.status_code for a in answers)
        # the loser is refused as the last key (409), or, when its own key was revoked
        # before its call got in, as a revoked key (401)
        assert codes[0] == 200 and codes[1] in (401, 409), [a.text for a in answers]
        working = [
            h
            for h in (tenant.auth, other)
            if (await client.get("/v1/keys", headers=h)).status_code == 200
        ]
        assert len(working) == 1


async def test_the_command_line_makes_restricted_keys_and_rolls_them(client, tenant, settings):
    me = await client.get("/v1/merchant", headers=tenant.auth)
    merchant = me.json()["id"]
    out = await referral(
        settings, "keys", "create", "--merchant", merchant, "--scope", "finance", "--scope", "read"
    )
    secret = out.strip()
    made = await client.get("/v1/merchant", headers=bearer(secret))
    key_id = made.json()["key"]["id"]
    listed = await referral(settings, "keys", "list", "--merchant", merchant)
    (row,) = [line for line in listed.splitlines() if line.startswith(key_id)]
    assert "finance,read" in row
    rolled = await referral(settings, "keys", "roll", key_id, "--grace", "0")
    new_secret = rolled.strip()
    assert new_secret.startswith("sk_test_") and new_secret != secret
    assert (await client.get("/v1/merchant", headers=bearer(new_secret))).status_code == 200
    assert (await client.get("/v1/merchant", headers=bearer(secret))).status_code == 401
    bad = await referral(settings, "keys", "roll", key_id, "--grace", "soon", expect=2)
    assert "--grace" in bad
    log = await client.get("/v1/audit-log", params={"action": "api_key"}, headers=tenant.auth)
    actors = [(e["action"], e["actor"]["type"]) for e in log.json()["data"]]
    assert actors == [("api_key.created", "cli"), ("api_key.rolled", "cli")]
