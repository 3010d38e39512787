"""Deliveries to a real receiver on 127.0.0.1, verified with the `standardwebhooks`
reference library: signatures, timestamps, rotation, retries, disabling, resend, recover,
address refusal, filtering and two workers sharing the work."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from referral.lib.db import create_pool
from referral.webhooks.delivery import USER_AGENT, Deliverer, deliver_due
from referral.webhooks.schemas import CATALOGUE
from tests.factories import create_advocate, create_program, referred_order
from tests.webhooks.conftest import add_endpoint, attempts, emit, event_ids
from tests.webhooks.receiver import Answer, Receiver


def verified(secret: str, got) -> dict:
    return Webhook(secret).verify(got.body, got.headers)


async def test_a_checkout_is_delivered_signed_and_as_the_catalogue_says(
    client, tenant, pool, settings, receiver
):
    endpoint = await add_endpoint(client, tenant, receiver.url())
    assert endpoint["secret"].startswith("whsec_")
    program = await create_program(client, tenant, hold_days=0)
    anna = await create_advocate(client, tenant, program["id"])
    await referred_order(client, tenant, anna["code"])

    sent = await deliver_due(pool, settings=settings)
    ids = await event_ids(client, tenant)
    assert sent == len(ids) >= 3
    got = receiver.wait_for(len(ids))
    bodies = [verified(endpoint["secret"], g) for g in got]
    assert sorted(g.headers["webhook-id"] for g in got) == sorted(ids)
    assert {b["id"] for b in bodies} == set(ids), "webhook-id is the event id"
    assert {"referral.converted", "reward.created"} <= {b["type"] for b in bodies}
    assert all(g.headers["user-agent"] == USER_AGENT for g in got)
    listed = (await client.get("/v1/events", headers=tenant.auth)).json()["data"]
    by_id = {b["id"]: b for b in bodies}
    for event in listed:
        assert by_id[event["id"]] == event, "the body is the event as GET /v1/events shows it"
        struct, _ = CATALOGUE[event["type"]]
        msgspec.convert(event["data"], struct)  # the payload is what the catalogue documents
        assert set(event["data"]) <= set(struct.__struct_fields__)
    tried = await attempts(client, tenant, endpoint["id"])
    assert len(tried) == len(ids) and all(a["succeeded"] and a["status_code"] == 200 for a in tried)
    assert await deliver_due(pool, settings=settings) == 0, "nothing is sent twice"


async def test_timestamp_is_the_attempts_and_a_tampered_delivery_fails(
    client, tenant, db, pool, settings, receiver
):
    endpoint = await add_endpoint(client, tenant, receiver.url())
    await emit(pool, tenant)
    await deliver_due(pool, settings=settings)
    (got,) = receiver.wait_for(1)
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 5
    verified(endpoint["secret"], got)
    old = {**got.headers, "webhook-timestamp": str(int(time.time()) - 600)}
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(got.body, old)  # replayed 10 minutes later
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(got.body.replace(b"o-1", b"o-2"), got.headers)
    other = (await add_endpoint(client, tenant, receiver.url("/other")))["secret"]
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(got.body, got.headers)


async def test_rotation_signs_with_both_secrets(client, tenant, db, pool, settings, receiver):
    endpoint = await add_endpoint(client, tenant, receiver.url())
    rotated = await client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=tenant.auth
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != endpoint["secret"]
    expires = datetime.fromisoformat(rotated.json()["previous_expires_at"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)
    await emit(pool, tenant)
    await deliver_due(pool, settings=settings)
    (got,) = receiver.wait_for(1)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    verified(endpoint["secret"], got)  # a receiver still on the old secret
    verified(new, got)  # and one that switched


async def test_500_is_retried_on_schedule_under_the_same_webhook_id(
    client, tenant, db, pool, settings, receiver
):
    answers = iter([Answer(500, body=b"boom"), Answer(200)])
    receiver.respond = lambda _: next(answers)
    endpoint = await add_endpoint(client, tenant, receiver.url())
    await emit(pool, tenant)
    assert await deliver_due(pool, settings=settings) == 1
    first = await attempts(client, tenant, endpoint["id"])
    assert [(a["succeeded"], a["status_code"], a["response"]) for a in first] == [
        (False, 500, "boom")
    ]
    assert await deliver_due(pool, settings=settings) == 0, "the retry waits about 5 s"
    later = datetime.now(UTC) + timedelta(seconds=6)
    assert await deliver_due(pool, settings=settings, now=later) == 1
    got = receiver.wait_for(2)
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
    assert [a["succeeded"] for a in await attempts(client, tenant, endpoint["id"])] == [
        False,
        True,
    ]


async def test_429_waits_for_retry_after(client, tenant, db, pool, settings, receiver):
    answers = iter([Answer(429, {"retry-after": "120"}), Answer(200)])
    receiver.respond = lambda _: next(answers)
    await add_endpoint(client, tenant, receiver.url())
    await emit(pool, tenant)
    start = datetime.now(UTC)
    await deliver_due(pool, settings=settings)
    assert await deliver_due(pool, settings=settings, now=start + timedelta(seconds=60)) == 0
    assert await deliver_due(pool, settings=settings, now=start + timedelta(seconds=125)) == 1
    assert len(receiver.wait_for(2)) == 2


async def test_timeout_counts_as_a_failure(client, tenant, db, pool, settings, receiver):
    receiver.respond = lambda _: Answer(200, delay=3)
    endpoint = await add_endpoint(client, tenant, receiver.url())
    await emit(pool, tenant)
    began = time.monotonic()
    await deliver_due(pool, settings=msgspec.structs.replace(settings, webhook_timeout_seconds=0.5))
    assert time.monotonic() - began < 2.5, "the 0.5 s timeout, not the receiver's 3 s"
    (attempt,) = await attempts(client, tenant, endpoint["id"])
    assert attempt["error"] == "timeout" and attempt["status_code"] is None
    assert attempt["duration_ms"] < 2000


async def test_redirects_are_not_followed(client, tenant, db, pool, settings, receiver):
    receiver.respond = lambda got: Answer(302, {"location": receiver.url("/elsewhere")})
    endpoint = await add_endpoint(client, tenant, receiver.url())
    await emit(pool, tenant)
    await deliver_due(pool, settings=settings)
    assert [g.path for g in receiver.wait_for(1)] == ["/hook"]
    (attempt,) = await attempts(client, tenant, endpoint["id"])
    assert (attempt["succeeded"], attempt["status_code"]) == (False, 302)


async def test_410_disables_the_endpoint_at_once(client, tenant, db, pool, settings, receiver):
    receiver.respond = lambda _: Answer(410)
    endpoint = await add_endpoint(client, tenant, receiver.url())
    await emit(pool, tenant)
    await emit(pool, tenant)
    await deliver_due(pool, settings=settings)
    read = (await client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=tenant.auth)).json()
    assert (read["enabled"], read["disabled_reason"]) == (False, "gone")
    count = len(receiver.received())
    await emit(pool, tenant)
    later = datetime.now(UTC) + timedelta(days=2)
    assert await deliver_due(pool, settings=settings, now=later) == 0
    assert len(receiver.received()) == count, "nothing more is sent to a gone endpoint"
    assert await event_ids(client, tenant, "webhook_endpoint.disabled")


async def test_five_days_of_failures_disable_and_say_so(
    client, tenant, db, pool, settings, receiver
):
    with Receiver() as healthy:
        receiver.respond = lambda _: Answer(503)
        failing = await add_endpoint(client, tenant, receiver.url(), event_types=["order.*"])
        watcher = await add_endpoint(
            client, tenant, healthy.url(), event_types=["webhook_endpoint.*"]
        )
        await emit(pool, tenant)
        start = datetime.now(UTC)
        await deliver_due(pool, settings=settings, now=start)
        read = await client.get(f"/v1/webhook-endpoints/{failing['id']}", headers=tenant.auth)
        assert read.json()["enabled"] and read.json()["failing_since"] is not None
        await emit(pool, tenant)  # another event, days later, fails as well
        await deliver_due(pool, settings=settings, now=start + timedelta(days=5, minutes=1))
        read = await client.get(f"/v1/webhook-endpoints/{failing['id']}", headers=tenant.auth)
        assert (read.json()["enabled"], read.json()["disabled_reason"]) == (False, "failing")
        await deliver_due(pool, settings=settings)
        (told,) = healthy.wait_for(1)
        body = verified(watcher["secret"], told)
        assert body["type"] == "webhook_endpoint.disabled"
        assert body["data"]["endpoint_id"] == failing["id"]
        assert body["data"]["reason"] == "failing"


async def test_success_stops_the_failure_clock(client, tenant, db, pool, settings, receiver):
    answers = iter([Answer(500), Answer(200), Answer(500)])
    receiver.respond = lambda _: next(answers)
    endpoint = await add_endpoint(client, tenant, receiver.url())
    await emit(pool, tenant)
    start = datetime.now(UTC)
    await deliver_due(pool, settings=settings, now=start)
    await deliver_due(pool, settings=settings, now=start + timedelta(days=3))
    await emit(pool, tenant)
    await deliver_due(pool, settings=settings, now=start + timedelta(days=6))
    read = (await client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=tenant.auth)).json()
    assert read["enabled"], "it succeeded 3 days ago: not 5 days of failures"


async def test_resend_delivers_again_with_the_same_id(client, tenant, db, pool, settings, receiver):
    endpoint = await add_endpoint(client, tenant, receiver.url())
    await emit(pool, tenant)
    await deliver_due(pool, settings=settings)
    (event_id,) = await event_ids(client, tenant)
    resent = await client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/events/{event_id}/resend",
        headers={**tenant.auth, "Idempotency-Key": "resend-1"},
    )
    assert resent.status_code == 200, resent.text
    await deliver_due(pool, settings=settings)
    got = receiver.wait_for(2)
    assert [g.headers["webhook-id"] for g in got] == [event_id, event_id]
    by_event = await client.get(f"/v1/events/{event_id}/webhook-attempts", headers=tenant.auth)
    assert len(by_event.json()["data"]) == 2


async def test_recover_sends_what_failed_in_the_window(
    client, tenant, db, pool, settings, receiver
):
    endpoint = await add_endpoint(client, tenant, receiver.url())
    await emit(pool, tenant, order_id="before")
    off = await client.patch(
        f"/v1/webhook-endpoints/{endpoint['id']}", json={"enabled": False}, headers=tenant.auth
    )
    assert off.status_code == 200 and off.json()["disabled_reason"] == "manual"
    await db.execute("SELECT pg_sleep(0.05)")  # `since` falls between the two batches
    since = datetime.now(UTC)
    for n in range(3):
        await emit(pool, tenant, order_id=f"down-{n}")
    assert await deliver_due(pool, settings=settings) == 0, "down: nothing sent"
    on = await client.patch(
        f"/v1/webhook-endpoints/{endpoint['id']}", json={"enabled": True}, headers=tenant.auth
    )
    assert on.json()["enabled"]
    recovered = await client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/recover",
        json={"since": since.isoformat()},
        headers=tenant.auth,
    )
    assert recovered.status_code == 200, recovered.text
    assert recovered.json()["deliveries"] == 3
    await deliver_due(pool, settings=settings)
    got = receiver.wait_for(3)
    assert sorted(verified(endpoint["secret"], g)["data"]["order_id"] for g in got) == [
        "down-0",
        "down-1",
        "down-2",
    ]


async def test_live_mode_refuses_private_addresses_after_dns(
    client, tenant, db, pool, settings, receiver
):
    live = {"Authorization": f"Bearer {tenant.live_secret_key}"}
    refused = await client.post(
        "/v1/webhook-endpoints", json={"url": f"https://127.0.0.1:{receiver.port}/"}, headers=live
    )
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_webhook_url"
    plain = await client.post(
        "/v1/webhook-endpoints", json={"url": "http://shop.example/hook"}, headers=live
    )
    assert plain.status_code == 422, "live mode is https only"
    # A name is only known after DNS: `localhost` resolves to loopback at delivery time.
    created = await client.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url(host="localhost", scheme="https")},
        headers=live,
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["livemode"] is True
    live_merchant = await db.fetchval(
        "SELECT merchant_id FROM api_keys WHERE key_hash = sha256($1::text::bytea)",
        tenant.live_secret_key,
    )
    await emit(pool, live_merchant)
    assert await deliver_due(pool, settings=settings) == 1
    await asyncio.sleep(0)
    assert receiver.received() == [], "no connection was made"
    tried = await client.get(f"/v1/webhook-endpoints/{endpoint['id']}/attempts", headers=live)
    (attempt,) = tried.json()["data"]
    assert attempt["error"] == "address_refused" and "loopback" in attempt["response"]


async def test_event_types_filter_with_wildcards(client, tenant, db, pool, settings):
    with Receiver() as rewards, Receiver() as orders, Receiver() as everything:
        await add_endpoint(client, tenant, rewards.url(), event_types=["reward.*"])
        await add_endpoint(client, tenant, orders.url(), event_types=["order.cancelled"])
        await add_endpoint(client, tenant, everything.url())
        for type_ in ("reward.approved", "reward.paid", "order.cancelled", "order.refunded"):
            await emit(pool, tenant, type_, order_id="o")
        await deliver_due(pool, settings=settings)

        def types(r: Receiver, count: int) -> list[str]:
            """What arrived, once `count` requests have (a receiver records a request as it
            answers it, so it may lag the sender by a moment)."""
            r.wait_for(count)
            return sorted(msgspec.json.decode(g.body)["type"] for g in r.received())

        assert len(everything.wait_for(4)) == 4
        assert types(rewards, 2) == ["reward.approved", "reward.paid"]
        assert types(orders, 1) == ["order.cancelled"]
    bad = await client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://localhost/x", "event_types": ["reward.payed"]},
        headers=tenant.auth,
    )
    assert bad.status_code == 422 and bad.json()["code"] == "unknown_event_type"


async def test_the_sql_fan_out_matches_like_the_rule(db):
    from referral.webhooks import rules
    from referral.webhooks.schemas import EVENT_TYPES

    patterns = ["*", "reward.*", "reward.paid", "payout.*", "payout_batch.*", "order.cancelled"]
    for pattern in patterns:
        for type_ in EVENT_TYPES:
            in_sql = await db.fetchval("SELECT webhook_type_matches($1, $2)", [pattern], type_)
            assert in_sql == rules.matches([pattern], type_), (pattern, type_)


async def test_test_endpoint_sends_now_and_answers_the_attempt(client, tenant, receiver):
    receiver.respond = lambda _: Answer(202, body=b"thanks")
    endpoint = await add_endpoint(client, tenant, receiver.url())
    response = await client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    attempt = response.json()
    assert (attempt["succeeded"], attempt["status_code"], attempt["response"]) == (
        True,
        202,
        "thanks",
    )
    (got,) = receiver.wait_for(1)
    assert verified(endpoint["secret"], got)["type"] == "webhook.test"
    assert (await attempts(client, tenant, endpoint["id"]))[0]["event_type"] == "webhook.test"


async def test_two_workers_never_send_the_same_attempt(
    client, tenant, db, pool, settings, database_url, receiver
):
    await add_endpoint(client, tenant, receiver.url())
    from referral.events import service as events

    async with pool.acquire() as conn:
        await events.emit_many(
            conn,
            merchant_id=tenant.merchant_id,
            type="order.cancelled",
            payloads=[{"order_id": f"o-{n}"} for n in range(400)],
        )
    pools = [await create_pool(database_url, min_size=1, max_size=4) for _ in range(2)]
    # Timeouts and leases long enough for a loaded CI machine: a timed-out attempt would
    # not arrive, and an expired lease would rightly let the other worker send it again.
    small = msgspec.structs.replace(
        settings, webhook_concurrency=20, webhook_timeout_seconds=15, webhook_lease_seconds=120
    )
    try:
        made = await asyncio.gather(*(Deliverer(p, small).drain() for p in pools))
    finally:
        for p in pools:
            await p.close()
    assert sum(made) == 400 and all(made), f"both workers took work: {made}"
    got = receiver.wait_for(400)
    ids = [g.headers["webhook-id"] for g in got]
    assert len(ids) == len(set(ids)) == 400, "each event once, by one worker"
    assert await db.fetchval("SELECT count(*) FROM webhook_attempts") == 400


async def test_a_slow_endpoint_never_delays_another(client, tenant, db, pool, settings):
    with Receiver(lambda _: Answer(200, delay=0.45)) as slow, Receiver() as fast:
        await add_endpoint(client, tenant, slow.url())
        await add_endpoint(client, tenant, fast.url())
        quick = msgspec.structs.replace(
            settings,
            webhook_endpoint_concurrency=2,
            webhook_interval_seconds=0.02,
            webhook_timeout_seconds=0.5,
        )
        deliverer = Deliverer(pool, quick)
        runner = asyncio.create_task(deliverer.run())
        try:
            for n in range(20):
                await emit(pool, tenant, order_id=f"o-{n}")
            began = time.monotonic()
            await asyncio.to_thread(fast.wait_for, 20, 10)
            took = time.monotonic() - began
        finally:
            runner.cancel()
            await deliverer.close()
        assert took < 2, f"the fast endpoint waited {took:.1f} s behind the slow one"
        assert len(slow.received()) <= 6, "the slow one got at most its share meanwhile"


def _most_at_once(arrivals: list[float], within: float) -> int:
    """The most requests that arrived within `within` seconds of each other: with every
    answer taking longer than that, the most that were in flight at once."""
    arrivals = sorted(arrivals)
    return max((sum(1 for b in arrivals[i:] if b - a < within) for i, a in enumerate(arrivals)),
               default=0)  # fmt: skip


async def test_requests_in_flight_are_bounded_per_endpoint_and_in_all(
    client, tenant, pool, settings
):
    answer_after = 0.3
    with contextlib.ExitStack() as stack:
        receivers = [stack.enter_context(Receiver(lambda _: Answer(200, delay=answer_after)))
                     for _ in range(3)]  # fmt: skip
        for r in receivers:
            await add_endpoint(client, tenant, r.url())
        for n in range(12):
            await emit(pool, tenant, order_id=f"o-{n}")
        bounded = msgspec.structs.replace(
            settings, webhook_endpoint_concurrency=3, webhook_concurrency=4
        )
        async with Deliverer(pool, bounded) as deliverer:
            assert await deliverer.drain() == 36
    per_endpoint = [[g.at for g in r.received()] for r in receivers]
    window = answer_after * 0.9
    assert all(len(a) == 12 for a in per_endpoint)
    assert max(_most_at_once(a, window) for a in per_endpoint) <= 3, "per endpoint"
    overall = _most_at_once([t for a in per_endpoint for t in a], window)
    assert 2 <= overall <= 4, f"{overall} in flight in all"
