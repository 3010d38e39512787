"""Webhook tests: a real receiver, a 0.5 s attempt timeout, and no sender in the app (each
test drives delivery passes itself with `deliver_due`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from referral.events import service as events
from referral.settings import Settings
from tests.conftest import make_settings
from tests.factories import Tenant
from tests.webhooks.receiver import Receiver


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        webhook_interval_seconds=0,
        # Generous: a loaded CI machine must not turn a delivery into a timeout (and a lease
        # must outlast a timeout, or nothing is sent). The tests of timeouts set their own.
        webhook_timeout_seconds=10,
        webhook_lease_seconds=30,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


async def add_endpoint(client, tenant: Tenant, url: str, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/webhook-endpoints", json={"url": url, **body}, headers=tenant.auth
    )
    assert response.status_code == 201, response.text
    return response.json()


async def emit(pool, tenant: Tenant | int, type_: str = "order.cancelled", **data: Any) -> None:
    """An event through the outbox's own service, as any room writes one (committed)."""
    merchant_id = tenant if isinstance(tenant, int) else tenant.merchant_id
    async with pool.acquire() as conn:
        await events.emit(
            conn, merchant_id=merchant_id, type=type_, data=data or {"order_id": "o-1"}
        )


async def event_ids(client, tenant: Tenant, type_: str | None = None) -> list[str]:
    params = {"limit": 100, **({"type": type_} if type_ else {})}
    response = await client.get("/v1/events", params=params, headers=tenant.auth)
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["data"]]


async def attempts(client, tenant: Tenant, endpoint_id: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"/v1/webhook-endpoints/{endpoint_id}/attempts", params={"limit": 100}, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]
