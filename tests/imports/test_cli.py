"""`referral import` as an operator runs it: a file on disk, the same import as the API's
(the same service, staged and worked batch by batch), its summary on stdout, its error
report on stderr or in a file, idempotent when run again."""

from __future__ import annotations

import io
import json

from referral.imports.cli import Progress
from referral.imports.schemas import Import, ImportCounts
from tests.commands import referral
from tests.factories import create_program
from tests.scenarios import get


async def test_customers_from_a_csv_file_and_again(client, tenant, settings, tmp_path, db):
    path = tmp_path / "customers.csv"
    path.write_text(
        "customer_id,email\n" + "".join(f"c-{n},c{n}@example.com\n" for n in range(2500))
    )
    first = json.loads(
        await referral(settings, "import", "customers", str(path), "--key", tenant.secret_key)
    )
    assert first["status"] == "succeeded" and first["kind"] == "customers"
    assert first["counts"] == {"read": 2500, "created": 2500, "unchanged": 0, "failed": 0}
    again = json.loads(
        await referral(settings, "import", "customers", str(path), "--key", tenant.secret_key)
    )
    assert again["counts"] == {"read": 2500, "created": 0, "unchanged": 2500, "failed": 0}
    assert await db.fetchval("SELECT count(*) FROM imported_customers") == 2500
    # The API reads the command line's import like its own, and the audit log names the CLI.
    shown = await get(client, tenant, f"/v1/imports/{first['id']}")
    assert shown["counts"] == first["counts"]
    log = await get(client, tenant, f"/v1/audit-log?subject_id={first['id']}")
    assert [(e["action"], e["actor"]["type"]) for e in log["data"]] == [("import.created", "cli")]


async def test_orders_as_json_lines_with_an_error_report_file(
    client, tenant, settings, tmp_path, db
):
    path = tmp_path / "orders.jsonl"
    lines = [
        {"order_id": "h-1", "customer_id": "a", "subtotal": 100, "total": 100,
         "currency": "EUR", "occurred_at": "2024-01-05T10:00:00Z"},
        {"order_id": "h-2", "customer_id": "b", "subtotal": -1, "total": 100,
         "currency": "EUR", "occurred_at": "2024-01-05T10:00:00Z"},
        "not json",
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(x) if isinstance(x, dict) else x for x in lines) + "\n")
    report = tmp_path / "errors.csv"
    err = await referral(
        settings, "import", "orders", str(path), "--key", tenant.secret_key,
        "--errors", str(report), expect=1,
    )  # fmt: skip
    assert "wrote 2 error(s)" in err
    assert report.read_text().splitlines() == [
        "line,code,message",
        '2,invalid_money,"subtotal is a whole amount in minor units, 0 or more"',
        "3,malformed_line,the line is not one JSON object",
    ]
    assert await db.fetchval("SELECT count(*) FROM orders WHERE is_import") == 1


async def test_advocates_into_a_program_with_errors_on_stderr(client, tenant, settings, tmp_path):
    program = await create_program(client, tenant)
    path = tmp_path / "advocates.csv"
    path.write_text("customer_id,code\nada,ADA2024\nbo,ADA2O24\n")
    err = await referral(
        settings, "import", "advocates", str(path), "--key", tenant.secret_key,
        "--program", program["id"], expect=1,
    )  # fmt: skip
    assert "line 3: code_confusable:" in err
    assert (await get(client, tenant, "/v1/codes/ADA2024"))["code"] == "ADA2024"
    refused = await referral(
        settings, "import", "advocates", str(path), "--key", tenant.secret_key, expect=2
    )
    assert "send program_id" in refused


def test_the_progress_line_is_drawn_on_a_terminal_only():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    job = Import(
        id="imp_x", kind="customers", format="csv", program_id=None, status="running",
        lines=1000, counts=ImportCounts(read=500, created=400, unchanged=100, failed=0),
        failure=None, created_at=None, started_at=None, finished_at=None, livemode=False,
    )  # type: ignore[arg-type]  # fmt: skip
    terminal, pipe = Terminal(), io.StringIO()
    Progress(terminal)(job)
    Progress(pipe)(job)
    assert terminal.getvalue().startswith("\r[###############...............] 500/1,000 lines")
    assert pipe.getvalue() == ""
