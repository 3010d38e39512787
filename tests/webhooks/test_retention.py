"""Webhook retention: the daily job forgets attempts and finished deliveries older than
WEBHOOK_RETENTION_DAYS, keeps what is younger and what is still being retried, and an
event whose delivery was forgotten can still be resent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from referral.customers.service import apply_retention
from referral.runtime import Runtime
from referral.webhooks.delivery import deliver_due
from tests.webhooks.conftest import add_endpoint, attempts, emit, event_ids


async def _age_everything_so_far(db, merchant_id: int, days: int) -> None:
    then = datetime.now(UTC) - timedelta(days=days)
    await db.execute(
        "UPDATE webhook_deliveries SET created_at = $2, updated_at = $2 WHERE merchant_id = $1",
        merchant_id, then,
    )  # fmt: skip
    await db.execute(
        "UPDATE webhook_attempts SET attempted_at = $2 WHERE merchant_id = $1", merchant_id, then
    )


async def _event_id(db, merchant_id: int) -> int:
    return await db.fetchval("SELECT max(id) FROM events WHERE merchant_id = $1", merchant_id)


async def test_old_attempts_and_deliveries_go_and_the_rest_stay(
    client, tenant, db, pool, settings, receiver
):
    endpoint = await add_endpoint(client, tenant, receiver.url())
    await emit(pool, tenant, order_id="o-old")
    old = await _event_id(db, tenant.merchant_id)
    await emit(pool, tenant, order_id="o-retried")
    retried = await _event_id(db, tenant.merchant_id)
    assert await deliver_due(pool, settings=settings) == 2
    # One of them is being retried (as after a failure): kept, however old.
    await db.execute(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now() + interval '1 h'"
        " WHERE merchant_id = $1 AND event_id = $2",
        tenant.merchant_id, retried,
    )  # fmt: skip
    await _age_everything_so_far(db, tenant.merchant_id, days=91)
    await emit(pool, tenant, order_id="o-young")
    young = await _event_id(db, tenant.merchant_id)
    assert await deliver_due(pool, settings=settings) == 1

    runtime = Runtime.build(settings, pool)
    run = await apply_retention(runtime)

    assert (run.webhook_attempts_deleted, run.webhook_deliveries_deleted) == (2, 1)
    kept = await db.fetch(
        "SELECT event_id, status FROM webhook_deliveries WHERE merchant_id = $1 ORDER BY event_id",
        tenant.merchant_id,
    )
    assert [(r["event_id"], r["status"]) for r in kept] == [
        (retried, "pending"),
        (young, "succeeded"),
    ]
    listed = await attempts(client, tenant, endpoint["id"])
    assert len(listed) == 1, "the endpoint's attempt list shows only what was kept"
    again = await apply_retention(runtime)
    assert (again.webhook_attempts_deleted, again.webhook_deliveries_deleted) == (0, 0)

    # The event itself stays in the outbox: resending a forgotten delivery sends it again.
    forgotten = runtime.ids.encode("event", old)
    assert forgotten in await event_ids(client, tenant)
    response = await client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/events/{forgotten}/resend",
        headers={**tenant.auth, "Idempotency-Key": "resend-forgotten"},
    )
    assert response.status_code == 200, response.text
    await db.execute(  # the retried one is not due yet
        "UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 h'"
        " WHERE merchant_id = $1 AND event_id = $2",
        tenant.merchant_id, retried,
    )  # fmt: skip
    assert await deliver_due(pool, settings=settings) == 1
    assert [g.headers["webhook-id"] for g in receiver.received()[3:]] == [forgotten]
