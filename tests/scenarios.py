"""Fraud and review scenarios shared by the fraud and referral tests: a program with advocate
Anna whose device, network, card and address are known, orders through the API, and a
referral held for review."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count
from typing import Any

from tests.factories import create_advocate, create_program

_orders = count(1)
ANNA_SEEN = {
    "ip": "198.51.100.7",
    "user_agent": "Mozilla/5.0 (Anna's laptop)",
    "payment_fingerprint": "pm_fp_anna_visa",
    "shipping_address": {
        "line1": "Storgatan 12",
        "city": "Malmö",
        "postal_code": "211 42",
        "country": "SE",
    },
}


async def post(client, tenant, path: str, body: Any, status: int = 200) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=tenant.auth)
    assert response.status_code == status, response.text
    return response.json()


async def get(client, tenant, path: str) -> dict[str, Any]:
    response = await client.get(path, headers=tenant.auth)
    assert response.status_code == 200, response.text
    return response.json()


async def order(client, tenant, customer_id: str, code: str | None = None, **fields) -> dict:
    body = {
        "order_id": f"o-{next(_orders)}",
        "customer_id": customer_id,
        "email": f"{customer_id}@example.org",
        "subtotal": 5000,
        "total": 5000,
        "currency": "EUR",
        "occurred_at": datetime.now(UTC).isoformat(),
        **fields,
    }
    if code:
        body["codes"] = [code]
    return await post(client, tenant, "/v1/orders", body, 201)


async def setup(client, tenant, fraud_policy: dict | None = None, **program) -> dict:
    """A program, advocate Anna, and one order of Anna's own (what the shop sends for every
    customer), so her device, network, card and address are known."""
    created = await create_program(client, tenant, fraud_policy=fraud_policy or {}, **program)
    anna = await create_advocate(client, tenant, created["id"], "anna")
    await order(client, tenant, "anna", **ANNA_SEEN)
    return {"program": created, "anna": anna, "code": anna["code"]}


async def explain(client, tenant, result: dict) -> dict:
    return await get(client, tenant, f"/v1/referrals/{result['referral']['id']}")


def rules_of(referral: dict) -> dict[str, dict]:
    return {r["rule"]: r for r in referral["decision"]["reasons"]}


async def referral_in_review(client, tenant, **program) -> tuple[dict, dict]:
    s = await setup(client, tenant, {"same_ip": {"action": "review"}}, hold_days=0, **program)
    result = await order(client, tenant, "bert", s["code"], ip=ANNA_SEEN["ip"])
    assert result["referral"]["status"] == "in_review"
    return s, result
