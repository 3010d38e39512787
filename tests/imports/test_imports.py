"""Switching in from another service: advocates with their codes, customers and past orders
imported from a file through `POST /v1/imports`, worked through by the imports worker, and
read back as a shop's team would (status, counts, the error report), then met at checkout."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from referral.codes.codec import CodeCodec
from referral.imports import service as imports
from tests.conftest import make_settings
from tests.factories import create_advocate, create_program
from tests.scenarios import get, order, post

FIXED = {
    "advocate": {"kind": "cash", "amounts": {"EUR": 1000}},
    "friend": {"kind": "cash", "amounts": {"EUR": 500}},
}


LIMIT = 1024 * 1024


@pytest.fixture
def settings(database_url):
    """This module's app takes import files of up to a megabyte (IMPORT_MAX_BYTES)."""
    return make_settings(database_url, import_max_bytes=LIMIT)


async def upload(
    client,
    tenant,
    kind: str,
    body: str | bytes,
    *,
    content_type: str = "text/csv",
    status: int = 202,
    headers: dict | None = None,
    **params,
) -> dict:
    response = await client.post(
        "/v1/imports",
        params={"kind": kind, **params},
        content=body.encode() if isinstance(body, str) else body,
        headers={**tenant.auth, "content-type": content_type, **(headers or {})},
    )
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def imported(client, tenant, pool, settings, ids):
    """`await imported(kind, body, …)`: the file uploaded as merchant `tenant`, worked to its
    end by the imports worker, and the import as the API then shows it."""

    async def run(kind: str, body: str | bytes, **kw) -> dict:
        job = await upload(client, tenant, kind, body, **kw)
        assert job["status"] == "queued"
        await imports.run_due(pool, codec=CodeCodec(settings.hashids_salt), ids=ids)
        return await get(client, tenant, f"/v1/imports/{job['id']}")

    return run


async def errors_of(client, tenant, job: dict) -> list[tuple[int, str]]:
    page = await get(client, tenant, f"/v1/imports/{job['id']}/errors")
    return [(e["line"], e["code"]) for e in page["data"]]


CUSTOMERS = """customer_id,email
c-1,one@example.com
c-2,
,three@example.com
c-4,Four.Person@Example.com
"""


class TestCustomers:
    async def test_a_file_imports_and_again_changes_nothing(self, client, tenant, imported, db):
        first = await imported("customers", CUSTOMERS)
        assert first["status"] == "succeeded", first
        assert first["lines"] == 4
        assert first["counts"] == {"read": 4, "created": 4, "unchanged": 0, "failed": 0}
        assert first["finished_at"] is not None
        again = await imported("customers", CUSTOMERS)
        assert again["counts"] == {"read": 4, "created": 0, "unchanged": 4, "failed": 0}
        assert await db.fetchval("SELECT count(*) FROM imported_customers") == 4
        # Staged lines are gone once the import is done: the file is not kept.
        assert await db.fetchval("SELECT count(*) FROM import_lines") == 0

    async def test_json_lines_are_the_same_import(self, client, tenant, imported):
        body = "\n".join(
            json.dumps(line)
            for line in ({"customer_id": "c-1"}, {"email": "two@example.com"}, {"customer_id": 7})
        )
        job = await imported(
            "customers",
            body,
            content_type="application/x-ndjson",
        )
        assert job["format"] == "jsonl"
        assert job["counts"] == {"read": 3, "created": 2, "unchanged": 0, "failed": 1}
        assert await errors_of(client, tenant, job) == [(3, "invalid_field")]

    async def test_an_imported_customer_is_not_new_to_the_new_customers_rule(
        self, client, tenant, imported, db
    ):
        program = await create_program(client, tenant, rewards=FIXED)
        code = (await create_advocate(client, tenant, program["id"], "adv-1"))["code"]
        await imported("customers", "email\nOld-Friend@Example.org\n")
        quote = await post(
            client,
            tenant,
            "/v1/checkout/quote",
            {
                "email": "old-friend@example.org",
                "codes": [code],
                "subtotal": 5000,
                "currency": "EUR",
            },
        )
        assert quote["applies"] is False and quote["reason"] == "not_new_customer"
        result = await order(client, tenant, "old-friend", code)  # email old-friend@example.org
        assert result["referral"]["rejection_reason"] == "not_new_customer"
        assert result["rewards"] == []
        # A customer the file did not name is new.
        fresh = await order(client, tenant, "new-friend", code)
        assert fresh["referral"]["status"] != "rejected", fresh
        assert len(fresh["rewards"]) == 2


class TestListing:
    async def test_imports_are_listed_oldest_first_and_filtered(self, client, tenant, imported):
        first = await imported("customers", CUSTOMERS)
        second = await imported("orders", "order_id\n")  # a header without its columns: fails
        waiting = await upload(client, tenant, "customers", "customer_id\nc-9\n")

        listed = await get(client, tenant, "/v1/imports")
        assert [j["id"] for j in listed["data"]] == [first["id"], second["id"], waiting["id"]]
        assert [j["status"] for j in listed["data"]] == ["succeeded", "failed", "queued"]
        kinds = await get(client, tenant, "/v1/imports?kind=customers")
        assert [j["id"] for j in kinds["data"]] == [first["id"], waiting["id"]]
        queued = await get(client, tenant, "/v1/imports?status=queued")
        assert [j["id"] for j in queued["data"]] == [waiting["id"]]
        page = await get(client, tenant, f"/v1/imports?limit=1&starting_after={first['id']}")
        assert ([j["id"] for j in page["data"]], page["has_more"]) == ([second["id"]], True)


class TestErrorReport:
    async def test_bad_lines_are_reported_by_number_and_the_rest_imported(
        self, client, tenant, imported, db
    ):
        body = (
            "order_id,customer_id,email,subtotal,total,currency,occurred_at\n"
            "o-1,c-1,c1@example.com,4999,5999,EUR,2024-03-01T12:00:00Z\n"
            "o-2,c-2,not-an-address,100,100,EUR,2024-03-01\n"
            "o-3,c-3,,12.50,1250,EUR,2024-03-01\n"
            "o-4,c-4,,100,100,XXX,2024-03-01\n"
            "o-5,c-5,,100,100,EUR,yesterday\n"
            "\n"
            ",c-6,,100,100,EUR,2024-03-01\n"
            "o-7,,,100,100,EUR,2024-03-01\n"
            "o-8,c-8,,100,100,EUR\n"
            "o-9,c-9,,100,100,EUR,2024-03-02T10:00:00+01:00\n"
        )
        job = await imported("orders", body)
        assert job["status"] == "succeeded"
        assert job["counts"] == {"read": 9, "created": 2, "unchanged": 0, "failed": 7}
        assert await errors_of(client, tenant, job) == [
            (3, "invalid_email"),
            (4, "invalid_money"),
            (5, "unknown_currency"),
            (6, "invalid_date"),
            (8, "missing_field"),  # line 7 is blank
            (9, "missing_field"),
            (10, "malformed_line"),
        ]
        page = await get(client, tenant, f"/v1/imports/{job['id']}/errors")
        assert "not-an-address" not in json.dumps(page)  # messages name fields, not values
        assert await db.fetchval("SELECT count(*) FROM orders") == 2
        # Paged by line number, and as CSV.
        first = await get(client, tenant, f"/v1/imports/{job['id']}/errors?limit=2")
        assert [e["line"] for e in first["data"]] == [3, 4] and first["has_more"]
        rest = await get(client, tenant, f"/v1/imports/{job['id']}/errors?after_line=4&limit=100")
        assert [e["line"] for e in rest["data"]] == [5, 6, 8, 9, 10] and not rest["has_more"]
        csv = await client.get(f"/v1/imports/{job['id']}/errors.csv", headers=tenant.auth)
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        assert csv.text.splitlines()[:2] == [
            "line,code,message",
            "3,invalid_email,email is not a valid address",
        ]

    async def test_a_bad_header_fails_the_import(self, client, tenant, imported):
        job = await imported("customers", "customer,mail\nc-1,a@example.com\n")
        assert job["status"] == "failed"
        assert "unknown column" in job["failure"]
        assert await errors_of(client, tenant, job) == [(1, "bad_header")]


class TestOrders:
    async def test_past_orders_never_earn_and_make_their_buyers_known(
        self, client, tenant, imported, db
    ):
        program = await create_program(client, tenant, rewards=FIXED)
        code = (await create_advocate(client, tenant, program["id"], "adv-1"))["code"]
        day = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
        body = (
            "order_id,customer_id,subtotal,total,currency,occurred_at\n"
            f"old-1,buyer-1,5000,5000,EUR,{day}\n"
            f"old-2,buyer-2,7000,7500,EUR,{day}\n"
        )
        job = await imported("orders", body)
        assert job["counts"]["created"] == 2
        rows = await db.fetch("SELECT is_import, referral_id FROM orders ORDER BY order_id")
        assert [(r["is_import"], r["referral_id"]) for r in rows] == [(True, None)] * 2
        assert await db.fetchval("SELECT count(*) FROM rewards") == 0
        assert await db.fetchval("SELECT count(*) FROM referrals") == 0
        # The shop retrying one of them through the orders API gets the same order back.
        retry = await client.post(
            "/v1/orders",
            json={
                "order_id": "old-1",
                "customer_id": "buyer-1",
                "subtotal": 5000,
                "total": 5000,
                "currency": "EUR",
                "occurred_at": f"{day}T00:00:00Z",
            },
            headers=tenant.auth,
        )
        assert retry.status_code == 200, retry.text
        assert retry.json()["referred"] is False and retry.json()["notes"] == ["imported_order"]
        # Their buyer comes back referred: not a new customer.
        later = await order(client, tenant, "buyer-2", code)
        assert later["referral"]["rejection_reason"] == "not_new_customer"
        # The same file again changes nothing; the same id with other amounts is a conflict.
        again = await imported("orders", body)
        assert again["counts"] == {"read": 2, "created": 0, "unchanged": 2, "failed": 0}
        changed = body.replace("7000,7500", "7000,9999")
        third = await imported("orders", changed)
        assert third["counts"] == {"read": 2, "created": 0, "unchanged": 1, "failed": 1}
        assert await errors_of(client, tenant, third) == [(3, "order_conflict")]

    async def test_imported_orders_count_in_analytics_as_history(
        self, client, tenant, imported, pool, ids
    ):
        from referral.analytics.service import catch_up

        day = (datetime.now(UTC) - timedelta(days=3)).replace(hour=12)
        body = "\n".join(
            json.dumps(
                {
                    "order_id": f"h-{n}",
                    "email": f"buyer{n}@example.com",
                    "subtotal": 1000,
                    "total": 1000,
                    "currency": "EUR",
                    "occurred_at": day.isoformat(),
                }
            )
            for n in range(50)
        )
        await imported("orders", body, content_type="application/jsonl")
        await catch_up(pool, ids=ids)
        start = (day - timedelta(days=1)).date().isoformat()
        until = (day + timedelta(days=2)).date().isoformat()
        report = await get(
            client, tenant, f"/v1/analytics/impact?from={start}&to={until}&interval=day"
        )
        totals = {t["metric"]: t["value"] for t in report["totals"]}
        # On their own day: orders, revenue and first orders of the shop, none referred.
        assert totals["orders"] == 50 and totals["revenue"] == 50_000
        assert totals["new_customers"] == 50
        assert totals["referred_orders"] == 0 and totals["referred_new_customers"] == 0


class TestAdvocates:
    async def test_advocates_keep_their_codes_and_clashes_are_reported(
        self, client, tenant, imported, db
    ):
        program = await create_program(client, tenant, rewards=FIXED)
        taken = await create_advocate(client, tenant, program["id"], "already-here")
        added = await client.post(
            f"/v1/advocates/{taken['id']}/codes", json={"code": "ANNA10"}, headers=tenant.auth
        )
        assert added.status_code == 201, added.text
        body = (
            "customer_id,email,name,code\n"
            "adv-1,adv1@example.com,Ada,SUMMER24\n"
            "adv-2,,Bo,ANNAIO\n"  # reads like ANNA10 (I is 1, O is 0)
            "adv-3,,,ANNA10\n"  # the very code another advocate holds
            "adv-4,,,A!\n"  # not a vanity code by our rules
            "adv-5,,,\n"
            "adv-6,,,summer-24\n"  # adv-1's code, as typed differently
            "adv-7,not-an-address,,\n"
        )
        job = await imported("advocates", body, program_id=program["id"])
        assert job["program_id"] == program["id"]
        assert job["counts"] == {"read": 7, "created": 2, "unchanged": 0, "failed": 5}
        assert await errors_of(client, tenant, job) == [
            (3, "code_confusable"),
            (4, "code_taken"),
            (5, "vanity_code_length"),
            (7, "code_taken"),
            (8, "invalid_email"),
        ]
        found = await get(client, tenant, "/v1/codes/summer24")
        assert found["code"] == "SUMMER24"
        ada = next(
            a
            for a in (await get(client, tenant, "/v1/advocates?limit=100"))["data"]
            if a["customer_id"] == "adv-1"
        )
        assert ada["vanity_codes"] == ["SUMMER24"] and ada["name"] == "Ada"
        # Her link works with the kept code, and a friend's order through it earns.
        result = await order(client, tenant, "friend-1", "SUMMER24")
        assert result["referred"] and len(result["rewards"]) == 2
        again = await imported("advocates", body, program_id=program["id"])
        assert again["counts"] == {"read": 7, "created": 0, "unchanged": 2, "failed": 5}
        assert await db.fetchval("SELECT count(*) FROM advocates") == 3

    async def test_advocates_need_a_program_of_the_merchant(self, client, tenant, other_tenant):
        problem = await upload(client, tenant, "advocates", "customer_id\na\n", status=422)
        assert problem["code"] == "invalid_import"
        theirs = await create_program(client, other_tenant)
        problem = await upload(
            client, tenant, "advocates", "customer_id\na\n", status=404, program_id=theirs["id"]
        )
        assert problem["code"] == "program_not_found"


class TestUpload:
    async def test_a_file_larger_than_the_limit_is_413(self, client, tenant, db):
        body = b"customer_id\n" + b"c-123456789\n" * (LIMIT // 12 + 1)
        problem = await upload(client, tenant, "customers", body, status=413)
        assert problem["code"] == "payload_too_large"
        assert await db.fetchval("SELECT count(*) FROM imports") == 0
        assert await db.fetchval("SELECT count(*) FROM import_lines") == 0

    @pytest.mark.parametrize("content_type", ["text/plain", "application/xml", ""])
    async def test_other_content_types_are_refused(self, client, tenant, content_type):
        problem = await upload(
            client, tenant, "customers", "customer_id\nc\n", content_type=content_type, status=415
        )
        assert problem["code"] == "unsupported_media_type"

    async def test_bad_kind_empty_file_and_not_utf8_are_refused(self, client, tenant):
        response = await client.post(
            "/v1/imports?kind=coupons",
            content=b"x\n",
            headers={**tenant.auth, "content-type": "text/csv"},
        )
        assert response.status_code == 400, response.text
        assert (await upload(client, tenant, "customers", "\n\n", status=422))["code"] == (
            "empty_import"
        )
        latin = "customer_id\nJosé\n".encode("latin-1")
        assert (await upload(client, tenant, "customers", latin, status=422))["code"] == (
            "invalid_encoding"
        )

    async def test_an_idempotency_key_answers_the_same_import(self, client, tenant, db):
        key = {"idempotency-key": "import-1"}
        first = await upload(client, tenant, "customers", CUSTOMERS, headers=key)
        again = await client.post(
            "/v1/imports?kind=customers",
            content=CUSTOMERS.encode(),
            headers={**tenant.auth, "content-type": "text/csv", **key},
        )
        assert again.status_code == 202 and again.json()["id"] == first["id"]
        assert again.headers["idempotent-replayed"] == "true"
        assert await db.fetchval("SELECT count(*) FROM imports") == 1
        assert await db.fetchval("SELECT count(*) FROM import_lines") == 4
        other = await client.post(
            "/v1/imports?kind=customers",
            content=b"customer_id\nsomeone-else\n",
            headers={**tenant.auth, "content-type": "text/csv", **key},
        )
        assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"

    async def test_the_import_is_audited(self, client, tenant):
        job = await upload(client, tenant, "customers", CUSTOMERS)
        log = await get(client, tenant, f"/v1/audit-log?subject_id={job['id']}")
        assert [e["action"] for e in log["data"]] == ["import.created"]
        assert "one@example.com" not in json.dumps(log)


class TestWorkers:
    async def test_workers_at_once_process_each_line_once(
        self, client, tenant, pool, settings, ids, db
    ):
        """Four workers take batches of three imports at the same time: every line is
        counted once, every row written once, nothing left waiting."""
        files = []
        for f in range(3):
            lines = "\n".join(f"f{f}-c{n}" for n in range(25_000))
            files.append(await upload(client, tenant, "customers", f"customer_id\n{lines}\n"))
        codec = CodeCodec(settings.hashids_salt)
        taken: list[int] = []

        async def worker() -> None:
            while (job := await imports.process_batch(pool, codec=codec, ids=ids)) is not None:
                taken.append(job.id)

        await asyncio.gather(*(worker() for _ in range(4)))
        for f in files:
            job = await get(client, tenant, f"/v1/imports/{f['id']}")
            assert job["status"] == "succeeded"
            assert job["counts"] == {"read": 25_000, "created": 25_000, "unchanged": 0, "failed": 0}
        assert await db.fetchval("SELECT count(*) FROM imported_customers") == 75_000
        assert len(taken) == 9  # three batches of 10,000 lines each, each worked once


class TestDataRights:
    async def test_an_imported_customer_is_exported_and_erased(self, client, tenant, imported, db):
        await imported(
            "customers",
            "customer_id,email\nmia-1,mia@example.com\nsomeone,\n",
        )
        export = await client.get("/v1/customers/mia-1/export", headers=tenant.auth)
        assert export.status_code == 200, export.text
        (row,) = export.json()["imported_as_customer"]
        assert row["customer_id"] == "mia-1" and row["email"] == "mia@example.com"
        erased = await client.post("/v1/customers/mia-1/erase", headers=tenant.auth)
        assert erased.status_code in (200, 201), erased.text
        assert erased.json()["erased"]["imported_customers"] == 1
        left = await db.fetch("SELECT customer_id, email_normalised FROM imported_customers")
        assert [tuple(r) for r in left] == [("someone", None)]
        gone = await client.get("/v1/customers/mia-1/export", headers=tenant.auth)
        assert gone.status_code == 200  # erased before: the export says so, with nothing left
        assert gone.json()["imported_as_customer"] == []
