"""`referral merchants …` and `referral keys …` as an operator runs them: in a subprocess
against the test database, the merchant named by id or by one of its keys."""

from __future__ import annotations

from tests.commands import referral


def error_line(stderr: str) -> str:
    """The one line a refused command says (log lines are JSON)."""
    lines = [line for line in stderr.splitlines() if line and not line.startswith("{")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def hint(raw: str) -> str:
    return raw[:8] + "…" + raw[-4:]


async def test_merchants_list_names_every_merchant(settings, tenant, other_tenant, ids):
    out = await referral(settings, "merchants", "list")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    mine = rows[ids.encode("merchant", tenant.merchant_id)]
    assert mine[1:] == ["test", "UTC", "Shop", "A"]
    assert ids.encode("merchant", other_tenant.merchant_id) in rows
    assert len(rows) == 4, "both tenants, each a live and a test merchant"


async def test_an_unknown_merchant_is_an_error_not_an_empty_batch(settings, tenant, db):
    for wrong in ("mer_doesnotexist", "mer_ymw52mjvpa", "prg_abcdefghij"):
        err = await referral(
            settings, "payouts", "create", "--merchant", wrong, "--currency", "EUR", expect=2
        )
        line = error_line(err)
        assert "no merchant" in line and "referral merchants list" in line, line
    assert await db.fetchval("SELECT count(*) FROM payout_batches") == 0


async def test_a_key_names_its_merchant(settings, tenant, ids, client):
    out = await referral(
        settings, "payouts", "create", "--key", tenant.secret_key, "--currency", "EUR"
    )
    batch_id = out.split()[0]
    response = await client.get(f"/v1/payout-batches/{batch_id}", headers=tenant.auth)
    assert response.status_code == 200, "the batch is in the key's merchant"

    err = await referral(
        settings, "payouts", "create", "--key", "sk_test_nope", "--currency", "EUR", expect=2
    )
    assert "not valid" in error_line(err)
    err = await referral(settings, "payouts", "create", "--currency", "EUR", expect=2)
    assert "--merchant" in err and "--key" in err


async def test_show_and_update_the_settings(settings, tenant, client):
    out = await referral(
        settings,
        "merchants",
        "update",
        "--key",
        tenant.secret_key,
        "--time-zone",
        "Europe/Stockholm",
        "--payout-minimum",
        "EUR=5000",
        "--payout-minimum",
        "sek=2500",
    )
    assert "Europe/Stockholm" in out and "EUR 5000, SEK 2500" in out
    me = (await client.get("/v1/merchant", headers=tenant.auth)).json()
    assert me["time_zone"] == "Europe/Stockholm"
    assert me["payout_minimums"] == {"EUR": 5000, "SEK": 2500}

    await referral(
        settings, "merchants", "update", "--key", tenant.secret_key, "--payout-minimum", "SEK=none"
    )
    out = await referral(settings, "merchants", "show", "--merchant", me["id"])
    assert "EUR 5000 (minor units)" in out and "SEK" not in out

    for args in (
        ("--time-zone", "Mars/Olympus"),
        ("--payout-minimum", "EUR=12.50"),
        ("--payout-minimum", "XYZ=100"),
        (),
    ):
        err = await referral(
            settings, "merchants", "update", "--merchant", me["id"], *args, expect=2
        )
        error_line(err)
    me_after = (await client.get("/v1/merchant", headers=tenant.auth)).json()
    assert me_after["payout_minimums"] == {"EUR": 5000}
    assert me_after["time_zone"] == "Europe/Stockholm"


async def test_list_create_and_revoke_keys(settings, tenant, other_tenant, ids, client):
    merchant = ids.encode("merchant", tenant.merchant_id)
    created = await referral(
        settings, "keys", "create", "--key", tenant.secret_key, "--kind", "publishable"
    )
    new_key = created.strip()
    assert new_key.startswith("pk_test_")
    assert (
        await client.get("/v1/merchant", headers={"Authorization": f"Bearer {new_key}"})
    ).json()["id"] == merchant

    out = await referral(settings, "keys", "list", "--merchant", merchant)
    assert tenant.secret_key not in out and new_key not in out
    rows = {line.split()[2]: line.split() for line in out.splitlines()[1:]}
    assert set(rows) == {hint(tenant.secret_key), hint(tenant.publishable_key), hint(new_key)}
    new_id = rows[hint(new_key)][0]

    # Another merchant's id does not reach this key.
    other = ids.encode("merchant", other_tenant.merchant_id)
    err = await referral(settings, "keys", "revoke", new_id, "--merchant", other, expect=2)
    assert "not a key of that merchant" in error_line(err)

    out = await referral(settings, "keys", "revoke", new_id)
    assert f"{new_id} (publishable" in out and "30 seconds" in out
    response = await client.get("/v1/merchant", headers={"Authorization": f"Bearer {new_key}"})
    assert response.status_code == 401, response.text

    # The last active secret key stays.
    secret_id = rows[hint(tenant.secret_key)][0]
    err = await referral(settings, "keys", "revoke", secret_id, expect=2)
    assert "last active secret key" in error_line(err)
    assert (await client.get("/v1/merchant", headers=tenant.auth)).status_code == 200

    err = await referral(settings, "keys", "list", "--merchant", "mer_nope", expect=2)
    assert "referral merchants list" in error_line(err)
