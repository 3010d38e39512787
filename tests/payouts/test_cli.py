"""Finance's commands, run as a finance person would: `referral payouts create | export |
mark-paid` in a subprocess against the test database, with secrets from the environment."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from referral.rewards.service import release_due
from tests.commands import referral
from tests.factories import create_program


async def test_create_export_and_mark_paid_from_the_command_line(
    client, tenant, db, pool, ids, settings, tmp_path
):
    program = await create_program(
        client,
        tenant,
        hold_days=0,
        rewards={"advocate": {"kind": "cash", "amounts": {"EUR": 1250}}},
    )
    for n, customer in enumerate(["anna", "=ben", "anna"]):
        advocate = await client.post(
            "/v1/advocates",
            headers=tenant.auth,
            json={
                "program_id": program["id"],
                "customer_id": customer,
                "email": f"{customer.strip('=')}@example.com",
            },
        )
        response = await client.post(
            "/v1/orders",
            headers=tenant.auth,
            json={
                "order_id": f"cli-{n}",
                "customer_id": f"friend-{n}",
                "subtotal": 5000,
                "total": 5000,
                "currency": "EUR",
                "occurred_at": datetime.now(UTC).isoformat(),
                "codes": [advocate.json()["code"]],
            },
        )
        assert response.status_code == 201, response.text
    await release_due(pool, ids=ids)

    merchant = ids.encode("merchant", tenant.merchant_id)
    created = await referral(
        settings, "payouts", "create", "--merchant", merchant, "--currency", "EUR"
    )
    match = re.match(r"(pay_\w+)\s+2 payee\(s\)\s+3 reward\(s\)\s+total 3750 EUR", created)
    assert match, created
    batch_id = match.group(1)

    payouts_file, rewards_file = tmp_path / "payouts.csv", tmp_path / "rewards.csv"
    assert "wrote" in await referral(
        settings, "payouts", "export", batch_id, "-o", str(payouts_file)
    )
    await referral(
        settings, "payouts", "export", batch_id, "-o", str(rewards_file), "--rewards", "--bom"
    )
    http = await client.get(f"/v1/payout-batches/{batch_id}/payouts.csv", headers=tenant.auth)
    assert payouts_file.read_bytes() == http.content
    assert b"'=ben" in http.content and b",25.00,2500," in http.content
    http = await client.get(
        f"/v1/payout-batches/{batch_id}/rewards.csv?bom=true", headers=tenant.auth
    )
    assert rewards_file.read_bytes() == http.content and http.content.startswith(b"\xef\xbb\xbf")

    # Exporting a file changes nothing; marking it paid does, once.
    batch = (await client.get(f"/v1/payout-batches/{batch_id}", headers=tenant.auth)).json()
    assert batch["status"] == "open"
    first = await referral(settings, "payouts", "mark-paid", batch_id)
    second = await referral(settings, "payouts", "mark-paid", batch_id)
    assert first == second == f"{batch_id} is paid: 3750 paid to 2 payee(s)\n"
    paid = await db.fetch(
        "SELECT reward_id, actor FROM reward_transitions WHERE to_status = 'paid'"
    )
    assert len(paid) == 3 == len({r["reward_id"] for r in paid})
    assert {r["actor"] for r in paid} == {"cli"}
    assert (
        await db.fetchval("SELECT sum(amount) FROM ledger_entries WHERE account = 'paid'") == 3750
    )
    batch = (await client.get(f"/v1/payout-batches/{batch_id}", headers=tenant.auth)).json()
    assert batch["status"] == "paid"
    assert (
        payouts_file.read_bytes()
        == (
            await client.get(f"/v1/payout-batches/{batch_id}/payouts.csv", headers=tenant.auth)
        ).content
    )

    # Mistakes are one clear line, not a traceback.
    error = await referral(settings, "payouts", "mark-paid", "pay_nonexistent", expect=2)
    assert error.startswith("referral: ") and "Traceback" not in error
    error = await referral(
        settings,
        "payouts",
        "create",
        "--merchant",
        merchant,
        "--currency",
        "EUR",
        "--cutoff",
        "2999-01-01T00:00:00+00:00",
        expect=2,
    )
    assert "cutoff_in_future" in error
