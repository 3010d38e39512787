"""Payees: where each of a merchant's customers wants their payouts sent, and what they were
paid in a year.

The details are set by the shop's backend (`PUT /v1/payees/{customer_id}`) or by the advocate
on their share page, validated (`rules.check`), and shown masked everywhere but where money
is paid or accounted from (the payout lines and files, frozen when a batch is made; the
yearly totals, for a finance key) and in the customer's own data export. Every change is
audited with the masked details before and after: the audit log outlives an erasure, so it
never holds a whole IBAN, address or name, and names the payee by its own id (`pye_…`), not by
the customer id. Payout batches freeze the details on each line when they are made
(`referral/payouts/repo.py`, `FILL_BATCH`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import structlog

from referral.analytics.periods import csv_safe
from referral.audit import service as audit
from referral.customers.schemas import ExportedPayee, Subject
from referral.lib import money
from referral.lib.errors import InvalidInput, NotFound
from referral.lib.ids import PublicIds
from referral.merchants.service import Caller
from referral.payees import repo, rules
from referral.payees.schemas import (
    PaidTotal,
    Payee,
    PayeeSet,
    PayeeTotals,
    PayeeYearRow,
    YearTotals,
)

log = structlog.get_logger("referral.payees")

CSV_COLUMNS = (
    "year",
    "payee_customer_id",
    "account_holder",
    "payout_method",
    "email",
    "iban",
    "currency",
    "kind",
    "amount",
    "amount_minor",
    "lines",
)
ROWS_PER_CHUNK = 500


def _not_found(customer_id: str) -> NotFound:
    return NotFound(f"no payout details for customer {customer_id[:200]!r}", code="payee_not_found")


def _updated_by(caller: Caller) -> str:
    if caller.kind == "share_page":
        return "advocate"
    if caller.key_id is not None:
        return "key"
    return "console" if caller.actor is not None else "cli"


def _payee(ids: PublicIds, row: repo.PayeeRow) -> Payee:
    return Payee(
        id=ids.encode("payee", row.id),
        customer_id=row.customer_id,
        method=row.method,  # type: ignore[arg-type]
        email=rules.mask_email(row.email),
        iban=rules.mask_iban(row.iban),
        account_holder=row.account_holder,
        bic=row.bic,
        updated_at=row.updated_at,
        updated_by=row.updated_by,  # type: ignore[arg-type]
    )


def _audited(payee: Payee) -> dict[str, Any]:
    """What the audit log keeps of a payee: the method and the masked values, no name."""
    return {
        "method": payee.method,
        "email": payee.email,
        "iban": payee.iban,
        "bic": payee.bic,
        "account_holder": rules.mask_name(payee.account_holder),
    }


async def set_payee(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    caller: Caller,
    customer_id: str,
    data: PayeeSet,
) -> Payee:
    """Replace the customer's payout details (all of them: a field left out is cleared).
    422 `invalid_email`, `invalid_iban`, `invalid_bic`, `missing_account_holder`,
    `invalid_payout_method` for what cannot be paid to."""
    try:
        details = rules.check(
            method=data.method,
            email=data.email,
            iban=data.iban,
            account_holder=data.account_holder,
            bic=data.bic,
        )
    except rules.Invalid as invalid:
        raise InvalidInput(str(invalid), code=invalid.problem) from None
    await repo.lock(conn, caller.merchant_id, customer_id)
    earlier = await repo.get(conn, caller.merchant_id, customer_id)
    row = await repo.upsert(
        conn,
        caller.merchant_id,
        customer_id,
        method=details.method,
        email=details.email,
        iban=details.iban,
        account_holder=details.account_holder,
        bic=details.bic,
        updated_by=_updated_by(caller),
    )
    payee = _payee(ids, row)
    before = None if earlier is None else _audited(_payee(ids, earlier))
    after = _audited(payee)
    await audit.record(
        conn,
        caller=caller,
        action="payee.updated",
        subject_type="payee",
        subject_id=payee.id,
        before=before,
        after=after,
    )
    log.info("payee_set", payee_id=payee.id, method=payee.method, by=row.updated_by)
    return payee


async def get_payee(
    conn: asyncpg.Connection, *, ids: PublicIds, caller: Caller, customer_id: str
) -> Payee:
    row = await repo.get(conn, caller.merchant_id, customer_id)
    if row is None:
        raise _not_found(customer_id)
    return _payee(ids, row)


async def find_payee(
    conn: asyncpg.Connection, *, ids: PublicIds, merchant_id: int, customer_id: str
) -> Payee | None:
    """The payee as the share page shows it to its advocate (masked), or None."""
    row = await repo.get(conn, merchant_id, customer_id)
    return None if row is None else _payee(ids, row)


# --------------------------------------------------------------------------- the totals


def _check_year(year: int) -> None:
    if not 2000 <= year <= 2999:
        raise InvalidInput("year: a year such as 2026", code="invalid_year")


async def totals(
    conn: asyncpg.Connection, *, caller: Caller, customer_id: str, year: int
) -> PayeeTotals:
    """What the customer was paid in `year`, per currency and kind: their payout lines that
    stand paid (a line failed after payment gave its money back), by the day their batch
    was paid, in the merchant's time zone. A customer never paid has no totals (not a 404:
    details on file or not, nothing was paid)."""
    _check_year(year)
    rows = await repo.payee_totals(conn, caller.merchant_id, customer_id, year)
    return PayeeTotals(
        customer_id=customer_id,
        year=year,
        time_zone=await repo.time_zone(conn, caller.merchant_id),
        totals=[
            PaidTotal(currency=r.currency, kind=r.kind, amount=r.amount, lines=r.lines)  # type: ignore[arg-type]
            for r in rows
        ],
    )


def sees_details(caller: Caller) -> bool:
    """Whether the caller gets payout details in full in the yearly totals: a key with the
    finance scope (or an unrestricted one, the console, the CLI). A read-only key reads
    every GET, so it gets them masked: tax forms are finance's."""
    return caller.scopes is None or "finance" in caller.scopes


async def check_year(conn: asyncpg.Connection, *, caller: Caller, year: int) -> str:
    """Before a stream starts: the year checked, and the merchant's time zone."""
    _check_year(year)
    return await repo.time_zone(conn, caller.merchant_id)


async def _year_rows(
    pool: asyncpg.Pool, caller: Caller, year: int, masked: bool
) -> AsyncIterator[PayeeYearRow]:
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        async for r in repo.year_totals(conn, caller.merchant_id, year):
            yield PayeeYearRow(
                customer_id=r.customer_id,
                account_holder=r.account_holder,
                method=r.method,  # type: ignore[arg-type]
                email=rules.mask_email(r.email) if masked else r.email,
                iban=rules.mask_iban(r.iban) if masked else r.iban,
                currency=r.currency,
                kind=r.kind,  # type: ignore[arg-type]
                amount=r.amount,
                lines=r.lines,
            )


async def year_totals(
    pool: asyncpg.Pool, *, caller: Caller, year: int, time_zone: str
) -> YearTotals:
    """Every payee paid in `year`, per currency and kind (as `totals`), as JSON."""
    masked = not sees_details(caller)
    return YearTotals(
        year=year,
        time_zone=time_zone,
        masked=masked,
        data=[r async for r in _year_rows(pool, caller, year, masked)],
    )


def _safe(text: str | None) -> str:
    """Free text a spreadsheet will not run (the analytics CSVs' rule). Emails and IBANs are
    validated when set (none can start a formula), so they are written as they are."""
    return "" if text is None else csv_safe(text)


async def year_totals_csv(pool: asyncpg.Pool, *, caller: Caller, year: int) -> AsyncIterator[bytes]:
    """The same rows as CSV (`CSV_COLUMNS`), streamed from a cursor in chunks."""
    masked = not sees_details(caller)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    n = 0
    async for r in _year_rows(pool, caller, year, masked):
        writer.writerow(
            (
                year,
                _safe(r.customer_id),
                _safe(r.account_holder),
                r.method or "",
                r.email or "",
                r.iban or "",
                r.currency,
                r.kind,
                money.to_decimal_string(r.amount, r.currency),
                r.amount,
                r.lines,
            )
        )
        n += 1
        if n % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


# ------------------------------------------------------- a customer's data rights


async def find_customer(conn: asyncpg.Connection, *, subject: Subject) -> None:
    """Payout details kept under their customer id make them someone this merchant holds."""
    rows = await repo.customer_rows(conn, subject.merchant_id, [subject.customer_id])
    subject.payees = len(rows)


async def export_customer(conn: asyncpg.Connection, *, subject: Subject) -> list[ExportedPayee]:
    """Their payout details, in full: the export is for the person themselves."""
    return [
        ExportedPayee(
            customer_id=r.customer_id,
            method=r.method,  # type: ignore[arg-type]
            email=r.email,
            iban=r.iban,
            account_holder=r.account_holder,
            bic=r.bic,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for r in await repo.customer_rows(conn, subject.merchant_id, subject.keys)
    ]


async def erase_customer(conn: asyncpg.Connection, *, subject: Subject) -> int:
    """Their payout details deleted: nothing money stands on (the lines keep their amounts;
    the payouts room clears the copies frozen on them)."""
    return await repo.erase(conn, subject.merchant_id, subject.keys)
