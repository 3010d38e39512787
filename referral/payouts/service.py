"""Payout batches: approved, unpaid cash or store-credit rewards, per payee, for finance.

A batch is filled in one statement (rewards locked, summed per payee, linked to their line),
so its total is the sum of its lines and a reward is in at most one open or paid batch — a
unique index, not a check. Batch creation per merchant, currency and kind is serialised, so
two creations at once never share a reward. States: open -> exported -> paid, or cancelled;
a line can fail (before or after payment), freeing its rewards for a later batch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import asyncpg
import msgspec

from referral.audit import service as audit
from referral.customers.schemas import ExportedPayout, Subject, Tombstones
from referral.events import service as events
from referral.lib import money
from referral.lib.errors import Conflict, InvalidInput, NotFound
from referral.lib.ids import PublicIds
from referral.lib.pagination import Cursor, Page
from referral.merchants.service import Caller
from referral.payouts import export, repo
from referral.payouts.schemas import (
    BankExport,
    BatchCreate,
    BatchPreview,
    LinePage,
    PayoutBatch,
    PayoutLine,
    PaypalExport,
    UnpayableLine,
)
from referral.rewards import service as rewards
from referral.settings import Settings

LARGE_BATCH = 10_000


class Context(Protocol):
    """What payouts needs of the app's `Runtime`. The CLI passes a lighter one: a whole
    runtime loads the QR renderer (PIL), a fifth of a finance command's start-up."""

    ids: PublicIds
    settings: Settings


def _to_batch(runtime: Context, row: repo.BatchRow) -> PayoutBatch:
    batch_id = runtime.ids.encode("payout", row.id)
    path = f"{runtime.settings.public_base_url}/v1/payout-batches/{batch_id}"
    return PayoutBatch(
        id=batch_id,
        currency=row.currency.strip(),
        kind=row.kind,
        status=row.status,
        cutoff=row.cutoff,
        minimum=row.minimum,
        total=row.total,
        line_count=row.line_count,
        reward_count=row.reward_count,
        created_at=row.created_at,
        exported_at=row.exported_at,
        paid_at=row.paid_at,
        cancelled_at=row.cancelled_at,
        csv={
            "payouts": f"{path}/payouts.csv",
            "paypal": f"{path}/payouts.csv?format=paypal",
            "rewards": f"{path}/rewards.csv",
            "paypal_unpayable": f"{path}/paypal",
            "bank": f"{path}/payouts.csv?format=bank",
            "bank_unpayable": f"{path}/bank-transfers",
        },
    )


def _cutoff(data: BatchCreate) -> datetime:
    if not money.is_currency(data.currency):
        raise InvalidInput(f"unknown currency {data.currency}", code="unknown_currency")
    now = datetime.now(UTC)
    cutoff = data.cutoff or now
    if cutoff.tzinfo is None:
        raise InvalidInput("cutoff needs a time zone", code="invalid_timestamp")
    if cutoff > now:
        raise InvalidInput("cutoff may not be in the future", code="cutoff_in_future")
    return cutoff


async def _minimum(conn: asyncpg.Connection, caller: Caller, data: BatchCreate) -> int:
    if data.minimum is not None:
        return data.minimum
    return await repo.merchant_minimum(conn, caller.merchant_id, data.currency)


async def create(
    conn: asyncpg.Connection, *, runtime: Context, caller: Caller, data: BatchCreate
) -> PayoutBatch:
    cutoff = _cutoff(data)
    await repo.lock_creation(conn, caller.merchant_id, data.currency, data.kind)
    minimum = await _minimum(conn, caller, data)
    batch = await repo.insert_batch(
        conn, caller.merchant_id, data.currency, data.kind, cutoff, minimum
    )
    public_id = runtime.ids.encode("payout", batch.id)
    filled = await repo.fill_batch(
        conn,
        caller.merchant_id,
        batch.id,
        data.currency,
        data.kind,
        cutoff,
        minimum,
        public_id,
    )
    if filled.items >= LARGE_BATCH:
        # Fresh statistics, or the exports of a just-made large batch may get a plan built
        # for an empty table (seen: minutes instead of seconds for a million rows).
        await repo.analyze_batches(conn)
    batch = await repo.set_totals(
        conn, caller.merchant_id, batch.id, filled.total, filled.line_count, filled.reward_count
    )
    await events.emit(
        conn,
        merchant_id=caller.merchant_id,
        type="payout_batch.created",
        data={
            "batch_id": public_id,
            "total": batch.total,
            "currency": data.currency,
            "lines": batch.line_count,
        },
    )
    created = _to_batch(runtime, batch)
    await _audit(conn, caller, "payout_batch.created", None, created)
    return created


async def preview(
    conn: asyncpg.Connection, *, runtime: Context, caller: Caller, data: BatchCreate
) -> BatchPreview:
    """What `create` with `data` would put in the batch now, by the same rules and query
    (`repo._PAYEES_DUE`), writing and locking nothing. Creating with the preview's `cutoff`
    holds the same rewards, unless some are reversed or paid meanwhile."""
    cutoff = _cutoff(data)
    minimum = await _minimum(conn, caller, data)
    found = await repo.preview(conn, caller.merchant_id, data.currency, data.kind, cutoff, minimum)
    return BatchPreview(
        currency=data.currency,
        kind=data.kind,
        cutoff=cutoff,
        minimum=minimum,
        **msgspec.structs.asdict(found),
    )


async def balances(
    conn: asyncpg.Connection, *, runtime: Context, caller: Caller
) -> list[BatchPreview]:
    """What is due now, per currency and kind: the preview of a batch made now with the
    merchant's minimum, for each currency and kind with approved money no batch holds (one
    statement for all of them, `repo.BALANCES`, on `preview`'s definition)."""
    cutoff = datetime.now(UTC)
    return [
        BatchPreview(
            currency=due.currency,
            kind=due.kind,
            cutoff=cutoff,
            minimum=minimum,
            **msgspec.structs.asdict(found),
        )
        for due, minimum, found in await repo.balances(conn, caller.merchant_id, cutoff)
    ]


async def _batch(
    conn: asyncpg.Connection, ids: PublicIds, caller: Caller, batch_id: str, *, lock: bool = False
) -> repo.BatchRow:
    row = await repo.get(conn, caller.merchant_id, ids.decode("payout", batch_id), lock=lock)
    if row is None:
        raise NotFound(f"no payout batch with id {batch_id}", code="payout_batch_not_found")
    return row


async def get(
    conn: asyncpg.Connection, *, runtime: Context, caller: Caller, batch_id: str
) -> PayoutBatch:
    return _to_batch(runtime, await _batch(conn, runtime.ids, caller, batch_id))


async def merchant_of_batch(conn: asyncpg.Connection, *, runtime: Context, batch_id: str) -> int:
    """The merchant a batch belongs to, for commands that know only the batch id."""
    merchant_id = await repo.merchant_of_batch(conn, runtime.ids.decode("payout", batch_id))
    if merchant_id is None:
        raise LookupError("no such payout batch")
    return merchant_id


async def lines(
    conn: asyncpg.Connection, *, runtime: Context, caller: Caller, batch_id: str
) -> list[PayoutLine]:
    ids = runtime.ids
    batch = await _batch(conn, ids, caller, batch_id)
    return [_to_line(ids, r) for r in await repo.lines(conn, caller.merchant_id, batch.id)]


def _to_line(ids: PublicIds, r: repo.LineRow) -> PayoutLine:
    return PayoutLine(
        id=ids.encode("payout_line", r.id),
        payee=r.payee_key,
        payee_email=r.payee_email,
        payee_method=r.payee_method,  # type: ignore[arg-type]
        payee_iban=r.payee_iban,
        payee_account_holder=r.payee_account_holder,
        payee_bic=r.payee_bic,
        gross=r.gross,
        netted=r.netted,
        amount=r.amount,
        reward_count=r.reward_count,
        status=r.status,
        failure_reason=r.failure_reason,
        reference=r.reference,
    )


async def lines_page(
    conn: asyncpg.Connection,
    *,
    runtime: Context,
    caller: Caller,
    batch_id: str,
    cursor: Cursor,
    status: str | None = None,
) -> LinePage:
    """A page of the batch's lines in payee order (as the CSV has them), of one `status`
    (open, paid, failed) or all; `cursor.after_id` a line of the previous page."""
    ids = runtime.ids
    batch = await _batch(conn, ids, caller, batch_id)
    rows = await repo.lines_page(
        conn,
        caller.merchant_id,
        batch.id,
        after_id=cursor.after_id,
        status=status,
        limit=cursor.fetch,
    )
    rows, more = cursor.split(rows)
    statuses = await repo.line_statuses(conn, caller.merchant_id, batch.id)
    return LinePage(
        data=[_to_line(ids, r) for r in rows],
        has_more=more,
        statuses={status: n for status, (n, _) in statuses.items()},
        amounts={status: amount for status, (_, amount) in statuses.items()},
    )


async def export_query(
    conn: asyncpg.Connection,
    *,
    runtime: Context,
    caller: Caller,
    batch_id: str,
    rewards: bool = False,
    format: export.Format = "standard",
    part: int = 1,
) -> export.ExportQuery:
    """The COPY of payouts.csv (or its PayPal `part`), or of rewards.csv, checked before
    anything is sent."""
    batch = await _batch(conn, runtime.ids, caller, batch_id)
    if rewards:
        return export.rewards_query(batch, batch_id)
    payable = None
    if format == "paypal":
        payable = await export.paypal_payable(conn, batch=batch)
    elif format == "bank":
        payable = await export.bank_payable(conn, batch=batch)
    return export.payouts_query(batch, batch_id, format, part, payable)


async def paypal_export(
    conn: asyncpg.Connection, *, runtime: Context, caller: Caller, batch_id: str
) -> PaypalExport:
    """What the PayPal file of the batch pays, and the lines it leaves out with the reason:
    finance pays everyone else from the file and handles these apart."""
    batch = await _batch(conn, runtime.ids, caller, batch_id)
    payable = await export.paypal_payable(conn, batch=batch)
    unpayable = await export.paypal_unpayable(conn, batch=batch)
    return PaypalExport(
        batch_id=batch_id,
        currency=batch.currency.strip(),
        parts=max(1, -(-payable.lines // export.PAYPAL_ROWS_PER_PART)),
        payable_lines=payable.lines,
        payable_total=payable.total,
        unpayable_lines=len(unpayable),
        unpayable_total=sum(r.amount for r in unpayable),
        unpayable=_unpayable(runtime.ids, unpayable),
    )


async def bank_export(
    conn: asyncpg.Connection, *, runtime: Context, caller: Caller, batch_id: str
) -> BankExport:
    """What the batch's bank-transfer file pays, and the lines it leaves out with the
    reason (paid by PayPal instead, or no valid IBAN or account holder)."""
    batch = await _batch(conn, runtime.ids, caller, batch_id)
    payable = await export.bank_payable(conn, batch=batch)
    unpayable = await export.bank_unpayable(conn, batch=batch)
    return BankExport(
        batch_id=batch_id,
        currency=batch.currency.strip(),
        payable_lines=payable.lines,
        payable_total=payable.total,
        unpayable_lines=len(unpayable),
        unpayable_total=sum(r.amount for r in unpayable),
        unpayable=_unpayable(runtime.ids, unpayable),
    )


def _unpayable(ids: PublicIds, rows: list[repo.UnpayableRow]) -> list[UnpayableLine]:
    return [
        UnpayableLine(
            line_id=ids.encode("payout_line", r.id),
            payee=r.payee_key,
            payee_email=r.payee_email,
            amount=r.amount,
            reference=r.reference,
            reason=r.reason,  # type: ignore[arg-type]
        )
        for r in rows
    ]


async def mark_exported(
    conn: asyncpg.Connection, *, runtime: Context, caller: Caller, batch_id: str
) -> PayoutBatch:
    batch = await _batch(conn, runtime.ids, caller, batch_id, lock=True)
    if batch.status in ("exported", "paid"):
        return _to_batch(runtime, batch)
    if batch.status != "open":
        raise Conflict(f"the batch is {batch.status}", code="payout_batch_state_conflict")
    before = _to_batch(runtime, batch)
    batch = await repo.set_status(conn, caller.merchant_id, batch.id, "exported")
    await events.emit(
        conn,
        merchant_id=caller.merchant_id,
        type="payout_batch.exported",
        data={"batch_id": batch_id},
    )
    return await _audit(conn, caller, "payout_batch.exported", before, _to_batch(runtime, batch))


async def mark_paid(
    conn: asyncpg.Connection, *, runtime: Context, caller: Caller, batch_id: str, actor: str
) -> PayoutBatch:
    """Idempotent: a batch already paid is answered as it is, and pays nothing again."""
    batch = await _batch(conn, runtime.ids, caller, batch_id, lock=True)
    if batch.status == "paid":
        return _to_batch(runtime, batch)
    if batch.status == "cancelled":
        raise Conflict("the batch is cancelled", code="payout_batch_state_conflict")
    # The lines are what finance paid: a reward refunded or reversed since the batch was
    # made is paid its frozen amount anyway, and the difference is owed back (receivable).
    items = await repo.reward_items(conn, caller.merchant_id, batch.id)
    await rewards.transition_many(
        conn,
        merchant_id=caller.merchant_id,
        reward_ids=[i.reward_id for i in items],
        expected="approved",
        to="paid",
        reason="payout_paid",
        actor=actor,
        note=f"batch {batch_id}",
        paid=[i.amount for i in items],
    )
    await repo.set_lines_paid(conn, caller.merchant_id, batch.id)
    before = _to_batch(runtime, batch)
    batch = await repo.set_status(conn, caller.merchant_id, batch.id, "paid")
    await events.emit(
        conn,
        merchant_id=caller.merchant_id,
        type="payout_batch.paid",
        data={"batch_id": batch_id, "total": batch.total, "actor": actor},
    )
    return await _audit(conn, caller, "payout_batch.paid", before, _to_batch(runtime, batch))


async def cancel(
    conn: asyncpg.Connection, *, runtime: Context, caller: Caller, batch_id: str
) -> PayoutBatch:
    """Before payment only: every reward returns to the pool for a later batch."""
    batch = await _batch(conn, runtime.ids, caller, batch_id, lock=True)
    if batch.status == "cancelled":
        return _to_batch(runtime, batch)
    if batch.status == "paid":
        raise Conflict(
            "a paid batch cannot be cancelled; fail its lines instead",
            code="payout_batch_state_conflict",
        )
    await repo.deactivate_items(conn, caller.merchant_id, batch.id)
    before = _to_batch(runtime, batch)
    batch = await repo.set_status(conn, caller.merchant_id, batch.id, "cancelled")
    await events.emit(
        conn,
        merchant_id=caller.merchant_id,
        type="payout_batch.cancelled",
        data={"batch_id": batch_id},
    )
    return await _audit(conn, caller, "payout_batch.cancelled", before, _to_batch(runtime, batch))


async def fail_line(
    conn: asyncpg.Connection,
    *,
    runtime: Context,
    caller: Caller,
    batch_id: str,
    line_id: str,
    reason: str,
    actor: str,
) -> PayoutBatch:
    """A payee could not be paid (closed account, bad email). Its rewards and netted
    receivables are freed for a later batch; after payment, the paid entries are reversed."""
    batch = await _batch(conn, runtime.ids, caller, batch_id, lock=True)
    if batch.status == "cancelled":
        raise Conflict("the batch is cancelled", code="payout_batch_state_conflict")
    line = await repo.line(
        conn, caller.merchant_id, batch.id, runtime.ids.decode("payout_line", line_id)
    )
    if line is None:
        raise NotFound(f"no line {line_id} in this batch", code="payout_line_not_found")
    if line.status == "failed":
        return _to_batch(runtime, batch)
    if line.status == "paid":
        items = await repo.reward_items(conn, caller.merchant_id, batch.id, line.id)
        await rewards.transition_many(
            conn,
            merchant_id=caller.merchant_id,
            reward_ids=[i.reward_id for i in items],
            expected="paid",
            to="approved",
            reason="payout_failed",
            actor=actor,
            note=reason,
            paid=[i.amount for i in items],
        )
    await repo.deactivate_items(conn, caller.merchant_id, batch.id, line.id)
    await repo.fail_line(conn, caller.merchant_id, line.id, reason)
    await events.emit(
        conn,
        merchant_id=caller.merchant_id,
        type="payout_line.failed",
        data={
            "batch_id": batch_id,
            "line_id": line_id,
            "amount": line.amount,
            "reason": reason,
            "actor": actor,
        },
    )
    await audit.record(
        conn,
        caller=caller,
        action="payout_line.failed",
        subject_type="payout_line",
        subject_id=line_id,
        before={"status": line.status, "batch_id": batch_id, "amount": line.amount},
        after={"status": "failed", "batch_id": batch_id, "amount": line.amount, "reason": reason},
    )
    return _to_batch(runtime, batch)


async def _audit(
    conn: asyncpg.Connection,
    caller: Caller,
    action: str,
    before: PayoutBatch | None,
    after: PayoutBatch,
) -> PayoutBatch:
    """A batch's audit row: its state and totals (its lines name payees: not kept here)."""

    def state(batch: PayoutBatch) -> dict[str, object]:
        return {
            "status": batch.status,
            "currency": batch.currency,
            "kind": batch.kind,
            "total": batch.total,
            "line_count": batch.line_count,
            "reward_count": batch.reward_count,
        }

    await audit.record(
        conn,
        caller=caller,
        action=action,
        subject_type="payout_batch",
        subject_id=after.id,
        before=None if before is None else state(before),
        after=state(after),
    )
    return after


async def list_batches(
    conn: asyncpg.Connection,
    *,
    runtime: Context,
    caller: Caller,
    status: str | None,
    cursor: Cursor,
    newest_first: bool = False,
) -> Page[PayoutBatch]:
    """Oldest first (the API's order), or `newest_first` (the console's)."""
    rows = await repo.list_page(
        conn, caller.merchant_id, status=status, cursor=cursor, newest_first=newest_first
    )
    rows, more = cursor.split(rows)
    return Page(data=[_to_batch(runtime, r) for r in rows], has_more=more)


# --- for the books (referral/rewards/books.py) ------------------------------------------


async def netted_receivables(
    conn: asyncpg.Connection, *, merchant_id: int, as_of: datetime, program_id: int | None
) -> dict[str, int]:
    """Per currency, the receivable entries (money owed back after payment) that payouts had
    netted off by `as_of`: in a line of a batch paid by then, the line not failed by then.
    Negative, as the entries are: a clawback of 300 netted off is -300."""
    return await repo.netted_as_of(conn, merchant_id, as_of, program_id)


async def batch_public_ids(
    conn: asyncpg.Connection, *, ids: PublicIds, merchant_id: int, until: datetime
) -> tuple[list[int], list[str]]:
    """Every batch made up to `until`: internal ids and, in the same order, their public
    ids, so an export written by COPY can name them."""
    internal = await repo.batch_ids(conn, merchant_id, until)
    return internal, [ids.encode("payout", i) for i in internal]


# --- a customer's data rights (referral/customers/) ---------------------------------------


async def export_customer(
    conn: asyncpg.Connection, *, ids: PublicIds, subject: Subject
) -> list[ExportedPayout]:
    """Their payout lines: what each batch paid them, and to which address."""
    return [
        ExportedPayout(
            batch_id=ids.encode("payout", r.batch_id),
            line_id=ids.encode("payout_line", r.id),
            payee_email=r.payee_email,
            payee_method=r.payee_method,  # type: ignore[arg-type]
            payee_iban=r.payee_iban,
            payee_account_holder=r.payee_account_holder,
            payee_bic=r.payee_bic,
            amount=r.amount,
            currency=r.currency.strip(),
            status=r.status,
            reference=r.reference,
            batch_created_at=r.batch_created_at,
            batch_paid_at=r.batch_paid_at,
        )
        for r in await repo.customer_lines(conn, subject.merchant_id, subject.keys)
    ]


async def erase_customer(
    conn: asyncpg.Connection, *, subject: Subject, tombstones: Tombstones
) -> int:
    """Their lines with a tombstone for the payee and no address. Amounts, statuses and
    references stay: a batch's totals, and its files' other lines, are as they were."""
    keys_from, keys_to = tombstones.keys(subject)
    return await repo.erase_lines(conn, subject.merchant_id, keys_from, keys_to)
