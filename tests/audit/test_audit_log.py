"""The audit trail: every change route leaves exactly one row naming the key, the action and
the object, with its state before and after; nothing can edit or delete a row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from referral.http import access
from tests.factories import NO_VELOCITY, create_advocate, create_program, referred_order
from tests.scenarios import referral_in_review

AUDITED = {op: rule.audited for op, rule in access.OPERATIONS.items() if rule.audited}


class Trail:
    """Calls the API with the tenant's key and reads what each call added to the log."""

    def __init__(self, client, tenant) -> None:
        self.client, self.tenant = client, tenant
        self.seen = 0
        self.covered: set[str] = set()
        self.key_id: str | None = None

    async def start(self) -> None:
        me = await self.client.get("/v1/merchant", headers=self.tenant.auth)
        self.key_id = me.json()["key"]["id"]
        self.seen = len(await self.entries())

    async def entries(self) -> list[dict[str, Any]]:
        found, after = [], None
        while True:
            params = {"limit": 100, **({"starting_after": after} if after else {})}
            page = await self.client.get("/v1/audit-log", params=params, headers=self.tenant.auth)
            assert page.status_code == 200, page.text
            found += page.json()["data"]
            if not page.json()["has_more"]:
                return found
            after = found[-1]["id"]

    async def setup_done(self) -> None:
        """What setting up a step changed (a program for a review, …) is not that step's."""
        self.seen = len(await self.entries())

    async def call(
        self,
        operation_id: str,
        method: str,
        path: str,
        body: Any = None,
        status: int = 200,
        *,
        csv: bytes | None = None,
    ) -> dict[str, Any]:
        """Make the call and check it added exactly one row: its action, this key, the object."""
        if csv is None:
            response = await self.client.request(method, path, json=body, headers=self.tenant.auth)
        else:
            headers = {**self.tenant.auth, "content-type": "text/csv"}
            response = await self.client.request(method, path, content=csv, headers=headers)
        assert response.status_code == status, f"{operation_id}: {response.text}"
        entries = await self.entries()
        added, self.seen = entries[self.seen :], len(entries)
        assert [e["action"] for e in added] == [AUDITED[operation_id]], operation_id
        (entry,) = added
        assert entry["actor"]["type"] == "key" and entry["actor"]["key_id"] == self.key_id
        assert entry["actor"]["name"].startswith("sk_test_")
        assert entry["subject_id"] and entry["after"] is not None or method == "DELETE"
        self.covered.add(operation_id)
        return response.json() if response.content else {}


@pytest.fixture
async def trail(client, tenant) -> Trail:
    trail = Trail(client, tenant)
    await trail.start()
    return trail


async def test_every_change_route_writes_one_audit_row(client, tenant, db, trail):
    t = trail
    # the merchant, programs and policies
    await t.call("updateMerchant", "PATCH", "/v1/merchant", {"time_zone": "Europe/Stockholm"})
    program = await t.call(
        "createProgram",
        "POST",
        "/v1/programs",
        {
            "name": "Audited",
            "landing_url": "https://shop.example/",
            "hold_days": 0,
            "rewards": {"advocate": {"kind": "cash", "amounts": {"EUR": 1000}}},
            "fraud_policy": NO_VELOCITY,
        },
        201,
    )
    pid = program["id"]
    await t.call("updateProgram", "PATCH", f"/v1/programs/{pid}", {"hold_days": 1})
    policy = await client.get(f"/v1/programs/{pid}/fraud-policy", headers=tenant.auth)
    await t.call(
        "putFraudPolicy", "PUT", f"/v1/programs/{pid}/fraud-policy", policy.json()["policy"]
    )
    await t.call("updateProgram", "PATCH", f"/v1/programs/{pid}", {"hold_days": 0})
    await t.call(
        "putPointsRules",
        "PUT",
        f"/v1/programs/{pid}/points",
        {"earning": {"order": {"points": 1, "per": {"EUR": 100}}}},
    )

    # advocates
    anna = await create_advocate(client, tenant, pid, "anna")
    await t.call(
        "addVanityCode", "POST", f"/v1/advocates/{anna['id']}/codes", {"code": "ANNAAUDIT"}, 201
    )
    await db.execute(
        "UPDATE advocates SET suspended_at = now() WHERE merchant_id = $1", tenant.merchant_id
    )  # as the fraud rules would after repeated rejections
    await t.call(
        "reactivateAdvocate",
        "POST",
        f"/v1/advocates/{anna['id']}/reactivate",
        {"actor": "risk@shop.example"},
    )

    # rewards: approve, reverse, reinstate by hand
    order = await referred_order(client, tenant, anna["code"], 1)
    (reward,) = [r for r in order["rewards"] if r["side"] == "advocate"]
    who = {"actor": "finance@shop.example"}
    rid = reward["id"]
    await t.call("reverseReward", "POST", f"/v1/rewards/{rid}/reverse", who)
    await t.call("reinstateReward", "POST", f"/v1/rewards/{rid}/reinstate", who)
    order = await referred_order(client, tenant, anna["code"], 2)
    (pending,) = [r for r in order["rewards"] if r["side"] == "advocate"]
    await db.execute(
        "UPDATE rewards SET hold_until = now() + interval '1 day' WHERE merchant_id = $1",
        tenant.merchant_id,
    )
    await t.call("approveReward", "POST", f"/v1/rewards/{pending['id']}/approve", who)

    # stories: the advocate's own is a fact; moderating it is audited
    story = await client.post(
        "/v1/stories",
        json={"advocate_id": anna["id"], "reward_id": pending["id"]},
        headers=tenant.auth,
    )
    assert story.status_code == 201, story.text
    await t.call("updateStory", "PATCH", f"/v1/stories/{story.json()['id']}", {"status": "hidden"})

    # payouts: a batch cancelled, another exported, a line failed, the batch paid
    batch = await t.call(
        "createPayoutBatch", "POST", "/v1/payout-batches", {"currency": "EUR"}, 201
    )
    await t.call("cancelPayoutBatch", "POST", f"/v1/payout-batches/{batch['id']}/cancel")
    for n in (3, 4):  # a second payee, so one line can fail and one be paid
        other = await create_advocate(client, tenant, pid, f"bo-{n}")
        await referred_order(client, tenant, other["code"], n)
    batch = await client.post("/v1/payout-batches", json={"currency": "EUR"}, headers=tenant.auth)
    await t.setup_done()
    bid = batch.json()["id"]
    await t.call("markPayoutBatchExported", "POST", f"/v1/payout-batches/{bid}/export")
    lines = await client.get(f"/v1/payout-batches/{bid}/lines", headers=tenant.auth)
    line = lines.json()[0]["id"]
    await t.call(
        "failPayoutLine",
        "POST",
        f"/v1/payout-batches/{bid}/lines/{line}/fail",
        {"reason": "account closed", "actor": "finance@shop.example"},
    )
    await t.call("markPayoutBatchPaid", "POST", f"/v1/payout-batches/{bid}/mark-paid")

    # reviews
    _, held = await referral_in_review(client, tenant)
    await t.setup_done()
    ref = held["referral"]["id"]
    await t.call("approveReferral", "POST", f"/v1/referrals/{ref}/approve", who)
    await t.call("rejectReferral", "POST", f"/v1/referrals/{ref}/reject", who)  # after all

    # coupon pools: made, and filled by JSON and by CSV
    coupons = await t.call(
        "createCouponPool",
        "POST",
        f"/v1/programs/{pid}/coupon-pools",
        {"name": "Welcome", "currency": "EUR"},
        201,
    )
    codes = f"/v1/coupon-pools/{coupons['id']}/codes"
    await t.call("addCouponCodes", "POST", codes, {"codes": ["AUDIT-0001"]})
    await t.call("addCouponCodesCsv", "POST", f"{codes}.csv", csv=b"AUDIT-0002\n")

    # payees: the IBAN is audited masked, never as it is
    iban = "SE3550000000054910000003"
    body = {"method": "bank_transfer", "iban": iban, "account_holder": "Anna Svensson"}
    await t.call("putPayee", "PUT", "/v1/payees/cus_audit", body)
    # switching in: an import (its lines, worked later by the worker, are not staff changes)
    await t.call(
        "createImport", "POST", "/v1/imports?kind=customers", csv=b"customer_id\nc-1\n", status=202
    )

    # webhooks
    endpoint = await t.call(
        "createWebhookEndpoint",
        "POST",
        "/v1/webhook-endpoints",
        {"url": "http://127.0.0.1:9/hooks?token=shop-secret"},
        201,
    )
    eid = endpoint["id"]
    path = f"/v1/webhook-endpoints/{eid}"
    await t.call("updateWebhookEndpoint", "PATCH", path, {"description": "books"})
    await t.call("rotateWebhookSecret", "POST", f"{path}/rotate-secret")
    events = await client.get("/v1/events", headers=tenant.auth)
    event = events.json()["data"][0]["id"]
    await t.call("resendWebhookEvent", "POST", f"{path}/events/{event}/resend")
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    await t.call("recoverWebhookEndpoint", "POST", f"{path}/recover", {"since": since})
    await t.call("deleteWebhookEndpoint", "DELETE", path)

    # a program's lifecycle
    ending = await create_program(client, tenant, name="Summer")
    await t.setup_done()
    for action in ("pause", "resume", "end"):
        await t.call(f"{action}Program", "POST", f"/v1/programs/{ending['id']}/{action}", {})

    # experiments and holdouts (ended without a winner: a winner also changes the program,
    # audited as the program's own update)
    experiment = await t.call(
        "createExperiment",
        "POST",
        f"/v1/programs/{pid}/experiments",
        {"name": "Offers", "variants": [{"key": "a", "name": "A"}, {"key": "b", "name": "B"}]},
        201,
    )
    await t.call(
        "endExperiment", "POST", f"/v1/programs/{pid}/experiments/{experiment['id']}/end", {}
    )
    await t.call("setHoldout", "PUT", f"/v1/programs/{pid}/holdout", {"share_percent": 5})

    # keys
    made = await t.call("createKey", "POST", "/v1/keys", {"scopes": ["read"]}, 201)
    await t.call("rollKey", "POST", f"/v1/keys/{made['id']}/roll", {"grace_period_seconds": 60})
    await t.call("revokeKey", "POST", f"/v1/keys/{made['id']}/revoke")

    missing = set(AUDITED) - t.covered - _covered_elsewhere()
    assert missing == set(), f"audited routes this walk does not call: {sorted(missing)}"

    log = await t.entries()
    by_action = {e["action"]: e for e in log}
    hooked = by_action["webhook_endpoint.created"]["after"]
    assert hooked["url"] == "http://127.0.0.1:9" and "shop-secret" not in str(log)
    assert by_action["merchant.updated"]["after"] == {
        "time_zone": "Europe/Stockholm",
        "payout_minimums": {},
    }
    assert by_action["merchant.updated"]["before"]["time_zone"] == "UTC"
    assert by_action["reward.reversed"]["after"]["status"] == "reversed"
    assert by_action["payout_batch.paid"]["before"]["status"] == "exported"
    assert by_action["api_key.rolled"]["after"]["replaced_by"].startswith("key_")
    assert made["secret"] not in str(log), "a key's secret is never logged"
    assert by_action["payee.updated"]["after"]["iban"] == "SE35 **** **** **** **** 0003"
    assert iban not in str(log) and "Svensson" not in str(log)


def _covered_elsewhere() -> set[str]:
    """Audited routes whose own tests check their row (each needs a world of its own)."""
    return {
        op
        for op, action in AUDITED.items()
        if action.startswith("customer.")  # tests/customers: erasure
    }


async def test_the_log_filters_by_action_category_subject_and_key(client, tenant, trail):
    program = await create_program(client, tenant)
    await client.patch(f"/v1/programs/{program['id']}", json={"hold_days": 3}, headers=tenant.auth)
    key = await client.post("/v1/keys", json={"scopes": ["admin"]}, headers=tenant.auth)
    other = {"Authorization": f"Bearer {key.json()['secret']}"}
    await client.patch(f"/v1/programs/{program['id']}", json={"hold_days": 4}, headers=other)

    async def actions(**params: str) -> list[str]:
        page = await client.get("/v1/audit-log", params=params, headers=tenant.auth)
        assert page.status_code == 200, page.text
        return [e["action"] for e in page.json()["data"]]

    assert await actions(action="program") == [
        "program.created",
        "program.updated",
        "program.updated",
    ]
    assert await actions(action="program.updated", key_id=key.json()["id"]) == ["program.updated"]
    assert await actions(subject_type="api_key") == ["api_key.created"]
    assert await actions(subject_id=program["id"], action="program.created") == ["program.created"]
    bad = await client.get("/v1/audit-log", params={"action": "DROP TABLE"}, headers=tenant.auth)
    assert bad.status_code == 400
    unknown = await client.get("/v1/audit-log", params={"key_id": "key_nope"}, headers=tenant.auth)
    assert unknown.status_code == 404


async def test_another_merchants_log_is_not_shown(client, tenant, other_tenant):
    await create_program(client, tenant)
    page = await client.get("/v1/audit-log", headers=other_tenant.auth)
    assert page.json()["data"] == []


async def test_a_change_that_fails_leaves_no_row(client, tenant, trail):
    program = await create_program(client, tenant)
    before = len(await trail.entries())
    refused = await client.patch(
        f"/v1/programs/{program['id']}",
        json={"landing_url": "javascript:alert(1)"},
        headers=tenant.auth,
    )
    assert refused.status_code == 422
    assert len(await trail.entries()) == before


async def test_rows_cannot_be_edited_or_deleted(client, tenant, db):
    await create_program(client, tenant)
    for statement in (
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await db.execute(statement)
    assert await db.fetchval("SELECT count(*) FROM audit_log") == 1
