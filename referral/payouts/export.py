"""CSV exports of a payout batch, streamed straight from PostgreSQL with COPY.

Constant memory: COPY writes into a small bounded queue that the HTTP response drains, so a
slow client slows the COPY down instead of filling memory; a client that stops reading for
`STALL_SECONDS` ends the COPY (it would otherwise run on in the server). Lines are frozen at
batch creation, so every export of a batch is byte-identical.

Columns (stable; new ones are only ever appended):
- payouts.csv: batch_id, payee_customer_id, payee_email, amount, amount_minor, currency,
  reward_count, first_reward_at, last_reward_at, reference, payout_method (email |
  bank_transfer), iban, bic, account_holder: every line, with where its money goes as frozen
  when the batch was made (the payee's details, `PUT /v1/payees/{customer_id}`).
- rewards.csv: batch_id, payee_customer_id, reward_id, referral_id, order_id, side,
  line_type (reward | clawback), gross_minor, reversed_minor, net_minor, net, currency,
  earned_at, reference
- payouts.csv?format=paypal: PayPal Payouts' upload layout, no header: email, amount,
  currency, customer id (30 characters, no spaces), note, PAYPAL; 5,000 rows per part.
  Only the lines PayPal can pay: a payee without a valid email (checked strictly, never
  escaped), or an amount PayPal would round (HUF, JPY, TWD in whole units), is left out and
  listed by `GET /v1/payout-batches/{id}/paypal` with its reason; the response says how many
  in `Unpayable-Lines` and links that list (`Link: <…>; rel="describedby"`). The batch is not
  changed: a line left out is paid another way, or failed. A payee who asked for a bank
  transfer is left out as `paid_by_bank_transfer`: the bank file pays them.
- payouts.csv?format=bank: a bank-transfer file with a header: reference, account_holder,
  iban, bic, amount, amount_minor, currency, payee_customer_id, note. Only the lines a bank
  transfer can pay: an IBAN that fails its check digits, or no account holder, or a payee
  paid by email, is left out and listed by `GET /v1/payout-batches/{id}/bank-transfers`
  (`Unpayable-Lines`, `Link` as for PayPal).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Literal

import asyncpg
from litestar.response import Stream

from referral.lib import money
from referral.lib.errors import InvalidInput
from referral.payouts import repo

Format = Literal["standard", "paypal", "bank"]
PAYPAL_ROWS_PER_PART = 5000
PAYPAL_WHOLE_UNITS = frozenset({"HUF", "JPY", "TWD"})
STALL_SECONDS = 60.0
CHUNK_BYTES = 64 * 1024
_BOM = "\ufeff".encode()


class ExportQuery:
    """A COPY query with its arguments, checked before the response starts. `rows`: the
    lines (or rewards) it writes, what a progress display counts towards; `unpayable`: the
    batch's lines this file leaves out (PayPal's only)."""

    def __init__(self, sql: str, args: tuple, header: bool, rows: int, unpayable: int = 0) -> None:
        self.sql, self.args, self.header, self.rows = sql, args, header, rows
        self.unpayable = unpayable


def paypal_divisor(currency: str) -> int:
    """What a line's minor units must divide by for PayPal: HUF and TWD go in whole units."""
    return 10 ** money.exponent(currency) if currency in PAYPAL_WHOLE_UNITS else 1


async def paypal_payable(conn: asyncpg.Connection, *, batch: repo.BatchRow) -> repo.Payable:
    """The lines PayPal can pay, and their total."""
    divisor = paypal_divisor(batch.currency.strip())
    return await repo.paypal_payable(conn, batch.merchant_id, batch.id, divisor)


async def paypal_unpayable(
    conn: asyncpg.Connection, *, batch: repo.BatchRow
) -> list[repo.UnpayableRow]:
    """The lines PayPal cannot pay, each with its reason: `no_email`, `invalid_email`,
    `amount_not_whole_units`."""
    divisor = paypal_divisor(batch.currency.strip())
    return await repo.paypal_unpayable(conn, batch.merchant_id, batch.id, divisor)


async def bank_payable(conn: asyncpg.Connection, *, batch: repo.BatchRow) -> repo.Payable:
    """The lines a bank transfer can pay, and their total."""
    return await repo.bank_payable(conn, batch.merchant_id, batch.id)


async def bank_unpayable(
    conn: asyncpg.Connection, *, batch: repo.BatchRow
) -> list[repo.UnpayableRow]:
    """The lines the bank file leaves out, each with its reason: `paid_by_email`, `no_iban`,
    `invalid_iban`, `no_account_holder`."""
    return await repo.bank_unpayable(conn, batch.merchant_id, batch.id)


def payouts_query(
    batch: repo.BatchRow,
    batch_public_id: str,
    fmt: Format,
    part: int,
    payable: repo.Payable | None = None,
) -> ExportQuery:
    """`payable`: for the PayPal and bank layouts, what `paypal_payable()` or
    `bank_payable()` found."""
    currency = batch.currency.strip()
    exponent = money.exponent(currency)
    if fmt == "bank":
        if payable is None:
            raise ValueError("the bank layout needs the batch's payable lines")
        return ExportQuery(
            repo.PAYOUTS_BANK,
            (batch.merchant_id, batch.id, batch_public_id, exponent),
            header=True,
            rows=payable.lines,
            unpayable=batch.line_count - payable.lines,
        )
    if fmt == "paypal":
        if payable is None:
            raise ValueError("the PayPal layout needs the batch's payable lines")
        whole = currency in PAYPAL_WHOLE_UNITS
        parts = max(1, -(-payable.lines // PAYPAL_ROWS_PER_PART))
        if not 1 <= part <= parts:
            raise InvalidInput(
                f"this batch has {parts} PayPal part(s); ask for part 1-{parts}",
                code="invalid_part",
            )
        decimals, divisor = (0, 10**exponent) if whole else (exponent, 1)
        return ExportQuery(
            repo.PAYOUTS_PAYPAL,
            (
                batch.merchant_id,
                batch.id,
                batch_public_id,
                decimals,
                divisor,
                (part - 1) * PAYPAL_ROWS_PER_PART,
            ),
            header=False,
            rows=min(PAYPAL_ROWS_PER_PART, payable.lines - (part - 1) * PAYPAL_ROWS_PER_PART),
            unpayable=batch.line_count - payable.lines,
        )
    return ExportQuery(
        repo.PAYOUTS_CSV,
        (batch.merchant_id, batch.id, batch_public_id, exponent),
        header=True,
        rows=batch.line_count,
    )


def rewards_query(batch: repo.BatchRow, batch_public_id: str) -> ExportQuery:
    exponent = money.exponent(batch.currency.strip())
    return ExportQuery(
        repo.REWARDS_CSV,
        (batch.merchant_id, batch.id, batch_public_id, exponent),
        header=True,
        rows=batch.reward_count,
    )


async def stream(
    pool: asyncpg.Pool,
    *,
    query: ExportQuery,
    bom: bool = False,
    chunks_in_flight: int = 8,
    chunk_bytes: int = CHUNK_BYTES,
) -> AsyncIterator[bytes]:
    """Yield the CSV in chunks of about `chunk_bytes` as COPY produces it."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=chunks_in_flight)
    pending = bytearray()

    async def put(item: bytes | None) -> None:
        try:
            queue.put_nowait(item)  # the common case, without a wait_for task per chunk
        except asyncio.QueueFull:
            await asyncio.wait_for(queue.put(item), STALL_SECONDS)

    async def sink(chunk: bytes | bytearray | memoryview) -> None:
        # asyncpg hands over ~10 KiB at a time: a response chunk for each costs the server
        # ~1.5x the CPU of ~64 KiB ones.
        pending.extend(chunk)
        if len(pending) >= chunk_bytes:
            data = bytes(pending)
            pending.clear()
            await put(data)

    async def produce() -> None:
        try:
            async with pool.acquire() as conn:
                await repo.copy_csv(conn, query.sql, query.args, output=sink, header=query.header)
            if pending:
                await put(bytes(pending))
        finally:
            with contextlib.suppress(TimeoutError):
                await put(None)

    producer = asyncio.create_task(produce())
    try:
        if bom:
            yield _BOM
        while (chunk := await queue.get()) is not None:
            yield chunk
        await producer  # surface a COPY error instead of a silently short file
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer


def download(
    pool: asyncpg.Pool,
    *,
    query: ExportQuery,
    filename: str,
    bom: bool = False,
    headers: dict[str, str] | None = None,
) -> Stream:
    """The export as an HTTP download, streamed as COPY writes it (the API's and the
    console's: one file, byte for byte)."""
    return Stream(
        stream(pool, query=query, bom=bom),
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="{filename}"',
            "cache-control": "no-store",
            **(headers or {}),
        },
    )
