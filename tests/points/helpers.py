"""Shared steps of the points tests: a program with points rules, orders, refunds, the
customer's balance and redemptions, through the API as a shop calls it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.factories import NO_VELOCITY, create_program

_numbers = itertools.count(1)

RULES: dict[str, Any] = {
    "earning": {
        "order": {"points": 1, "per": {"EUR": 100}},
        "advocate_referral": {"points": 200},
        "friend_first_order": {"points": 50},
        "share": {"points": 5, "per_day": 2},
        "story": {"points": 100},
        "signup": {"points": 10},
    },
    "expiry": {"months": 12, "since": "earned"},
    "catalogue": [
        {"id": "5-eur", "points": 500, "kind": "coupon", "amount": 500, "currency": "EUR"},
        {"id": "credit-2", "points": 200, "kind": "store_credit", "amount": 200, "currency": "EUR"},
    ],
}


async def points_program(client, tenant, rules: dict | None = None, **overrides) -> dict:
    # Started a year ago: orders dated before a program starts never earn.
    overrides.setdefault("starts_at", (datetime.now(UTC) - timedelta(days=365)).isoformat())
    program = await create_program(
        client, tenant, hold_days=0, fraud_policy=NO_VELOCITY, **overrides
    )
    response = await client.put(
        f"/v1/programs/{program['id']}/points", json=rules or RULES, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    return program


async def order(
    client, tenant, customer_id: str, subtotal: int, *, currency: str = "EUR", **extra
) -> str:
    order_id = f"ord-{next(_numbers)}"
    response = await client.post(
        "/v1/orders",
        headers=tenant.auth,
        json={
            "order_id": order_id,
            "customer_id": customer_id,
            "subtotal": subtotal,
            "total": subtotal,
            "currency": currency,
            "occurred_at": datetime.now(UTC).isoformat(),
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    return order_id


async def refund(client, tenant, order_id: str, amount: int) -> None:
    response = await client.post(
        f"/v1/orders/{order_id}/refunds",
        headers=tenant.auth,
        json={
            "refund_id": f"rf-{next(_numbers)}",
            "amount": amount,
            "currency": "EUR",
            "occurred_at": datetime.now(UTC).isoformat(),
        },
    )
    assert response.status_code in (200, 201), response.text


async def cancel_order(client, tenant, order_id: str) -> None:
    response = await client.post(f"/v1/orders/{order_id}/cancel", headers=tenant.auth)
    assert response.status_code == 200, response.text


async def balance(client, tenant, program: dict, customer_id: str) -> dict:
    response = await client.get(
        f"/v1/customers/{customer_id}/points",
        params={"program_id": program["id"]},
        headers=tenant.auth,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def redeem(client, tenant, program: dict, customer_id: str, item: str, status: int = 201):
    response = await client.post(
        f"/v1/customers/{customer_id}/points/redemptions",
        json={"program_id": program["id"], "item": item},
        headers=tenant.auth,
    )
    assert response.status_code == status, response.text
    return response.json()


async def cancel(client, tenant, customer_id: str, redemption_id: str, status: int = 200):
    response = await client.post(
        f"/v1/customers/{customer_id}/points/redemptions/{redemption_id}/cancel",
        headers=tenant.auth,
    )
    assert response.status_code == status, response.text
    return response.json()
