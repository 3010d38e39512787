"""Builders for test data. Merchants and keys go through the service (there is no HTTP API
for them); everything else through the HTTP API, as a shop would."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from referral.merchants import service as merchants


@dataclass(frozen=True)
class Tenant:
    merchant_id: int
    secret_key: str
    publishable_key: str
    live_secret_key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret_key}"}

    @property
    def public_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.publishable_key}"}


async def make_tenant(conn: asyncpg.Connection, name: str) -> Tenant:
    created = await merchants.create_merchant(conn, name=name)
    test, live = created["test"], created["live"]
    return Tenant(
        merchant_id=test.id,
        secret_key=await merchants.create_key(conn, merchant_id=test.id, kind="secret"),
        publishable_key=await merchants.create_key(conn, merchant_id=test.id, kind="publishable"),
        live_secret_key=await merchants.create_key(conn, merchant_id=live.id, kind="secret"),
    )


# Tests that make dozens of referrals per advocate within seconds (ledger and payout flows)
# turn the velocity rule off: there, that burst is the setup, not what is tested.
NO_VELOCITY = {"advocate_velocity": {"enabled": False}}


def program_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Give 10, get 10",
        "landing_url": "https://shop.example/welcome?utm_source=referral",
        "hold_days": 14,
        "rewards": {
            "advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
            "friend": {"kind": "coupon", "amounts": {"EUR": 1000}},
        },
    }
    body.update(overrides)
    return body


async def create_program(client, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/programs", json=program_body(**overrides), headers=tenant.auth
    )
    assert response.status_code == 201, response.text
    return response.json()


async def create_advocate(
    client, tenant: Tenant, program_id: str, customer_id: str = "cus_1"
) -> dict[str, Any]:
    response = await client.post(
        "/v1/advocates",
        json={"program_id": program_id, "customer_id": customer_id},
        headers=tenant.auth,
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


async def on_app_loop(client, send, *, peer: tuple[str, int] = ("203.0.113.10", 40000)):
    """Run `await send(http)` on the app's own event loop, where `http` is an httpx client
    whose requests reach the app from `peer`. The test client serialises requests and
    reports its peer as "testclient"; this gives truly concurrent requests (each with its own
    database connection) and a real client address."""
    import asyncio

    import httpx

    async def run():
        transport = httpx.ASGITransport(app=client.app, client=peer)
        async with httpx.AsyncClient(transport=transport, base_url=str(client.base_url)) as http:
            return await send(http)

    return await asyncio.to_thread(client.blocking_portal.call, run)


def friend_order(code: str, n: int = 1, **overrides: Any) -> dict[str, Any]:
    """The body of friend `n`'s first order with the advocate's code."""
    from datetime import UTC, datetime

    body: dict[str, Any] = {
        "order_id": f"ord-{n}",
        "customer_id": f"friend-{n}",
        "email": f"friend{n}@example.com",
        "codes": [code],
        "subtotal": 5000,
        "total": 5000,
        "currency": "EUR",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    body.update(overrides)
    return body


async def referred_order(
    client, tenant: Tenant, code: str, n: int = 1, **overrides: Any
) -> dict[str, Any]:
    """A friend's first order with the advocate's code (or `ref_token` in `overrides`)."""
    body = friend_order(code, n, **overrides)
    response = await client.post("/v1/orders", json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()


async def approved_advocate_reward(client, tenant: Tenant, code: str, n: int = 1) -> str:
    """The public id of an approved advocate reward from a friend's order with `code`."""
    order = await referred_order(client, tenant, code, n)
    (reward,) = [r for r in order["rewards"] if r["side"] == "advocate"]
    response = await client.post(
        f"/v1/rewards/{reward['id']}/approve", json={"actor": "test"}, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    return reward["id"]
