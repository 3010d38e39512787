"""Idempotency-Key on every state-changing POST: one effect, the stored answer on a retry."""

from __future__ import annotations

from tests.factories import create_advocate, create_program, program_body


async def test_program_create_retried_with_a_key_creates_one_program(client, tenant, db):
    headers = {**tenant.auth, "Idempotency-Key": "create-program-1"}
    first = await client.post("/v1/programs", json=program_body(), headers=headers)
    again = await client.post("/v1/programs", json=program_body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert await db.fetchval("SELECT count(*) FROM programs") == 1


async def test_same_key_with_another_body_is_refused(client, tenant, db):
    headers = {**tenant.auth, "Idempotency-Key": "k-2"}
    await client.post("/v1/programs", json=program_body(), headers=headers)
    other = await client.post("/v1/programs", json=program_body(name="Other"), headers=headers)
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"
    assert await db.fetchval("SELECT count(*) FROM programs") == 1


async def test_keys_are_scoped_per_merchant(client, tenant, other_tenant, db):
    for who in (tenant, other_tenant):
        r = await client.post(
            "/v1/programs",
            json=program_body(),
            headers={**who.auth, "Idempotency-Key": "shared-key"},
        )
        assert r.status_code == 201
    assert await db.fetchval("SELECT count(DISTINCT merchant_id) FROM programs") == 2


async def test_vanity_code_and_advocate_retries_replay(client, tenant):
    program = await create_program(client, tenant)
    advocate = await create_advocate(client, tenant, program["id"])
    headers = {**tenant.auth, "Idempotency-Key": "vanity-1"}
    url = f"/v1/advocates/{advocate['id']}/codes"
    first = await client.post(url, json={"code": "ANNA10"}, headers=headers)
    again = await client.post(url, json={"code": "ANNA10"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()


async def test_a_refused_request_stores_nothing_under_its_key(client, tenant, db):
    headers = {**tenant.auth, "Idempotency-Key": "bad-then-good"}
    bad = await client.post(
        "/v1/programs", json=program_body(landing_url="ftp://x"), headers=headers
    )
    assert bad.status_code == 422
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys") == 0
