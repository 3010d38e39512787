"""Finance's commands: `referral payouts create | export | mark-paid`.

They call the same services as the HTTP API, with the merchant taken from the batch id (or
given with --merchant for create), so a finance person needs database access, not an API key.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from referral.lib.db import create_pool
from referral.lib.ids import PublicIds
from referral.merchants import service as merchants
from referral.merchants.service import Caller
from referral.payouts import export, service
from referral.payouts.schemas import BatchCreate, PaypalExport
from referral.settings import Settings


@dataclass(frozen=True, slots=True)
class _Runtime:
    """The part of the app's runtime the payouts service uses (`service.Context`)."""

    ids: PublicIds
    settings: Settings


def _runtime(settings: Settings) -> _Runtime:
    return _Runtime(ids=PublicIds(settings.hashids_salt), settings=settings)


def _caller(merchant_id: int) -> Caller:
    return Caller(merchant_id=merchant_id, mode="live", kind="secret")


async def create(
    settings: Settings,
    merchant: str | None,
    key: str | None,
    currency: str,
    kind: str,
    cutoff: datetime | None,
) -> None:
    runtime = _runtime(settings)
    pool = await create_pool(
        settings.database_url, pooling=settings.database_pooling, min_size=1, max_size=1
    )  # jsonb codec
    try:
        async with pool.acquire() as conn, conn.transaction():
            batch = await service.create(
                conn,
                runtime=runtime,
                # By id or by key, and checked to exist: a wrong id is an error, not an
                # empty batch in some other tenant.
                caller=await merchants.resolve(conn, ids=runtime.ids, merchant=merchant, key=key),
                data=BatchCreate(currency=currency, kind=kind, cutoff=cutoff),
            )
    finally:
        await pool.close()
    print(
        f"{batch.id}  {batch.line_count} payee(s)  "
        f"{batch.reward_count} reward(s)  total {batch.total} {currency} (minor units)"
    )


async def export_csv(
    settings: Settings, batch: str, output: Path, fmt: str, part: int, rewards: bool, bom: bool
) -> None:
    runtime = _runtime(settings)
    pool = await create_pool(
        settings.database_url, pooling=settings.database_pooling, min_size=1, max_size=2
    )
    try:
        async with pool.acquire() as conn:
            merchant_id = await service.merchant_of_batch(conn, runtime=runtime, batch_id=batch)
            query = await service.export_query(
                conn,
                runtime=runtime,
                caller=_caller(merchant_id),
                batch_id=batch,
                rewards=rewards,
                format=fmt,
                part=part,
            )
            left_out = (
                await service.paypal_export(
                    conn, runtime=runtime, caller=_caller(merchant_id), batch_id=batch
                )
                if fmt == "paypal" and not rewards
                else None
            )
        show = sys.stderr.isatty()
        written = lines = 0
        with output.open("wb") as sink:
            async for chunk in export.stream(pool, query=query, bom=bom):
                sink.write(chunk)
                written += len(chunk)
                lines += chunk.count(b"\n")
                if show:
                    percent = min(100, 100 * lines // max(query.rows, 1))
                    print(
                        f"\r{output}: {percent:3d}%  {written / 1e6:8.1f} MB",
                        end="",
                        file=sys.stderr,
                        flush=True,
                    )
        if show:
            print(file=sys.stderr)
        print(f"wrote {output} ({written} bytes)")
        if left_out is not None:
            _print_left_out(left_out)
    finally:
        await pool.close()


def _print_left_out(paypal: PaypalExport) -> None:
    """The lines the PayPal file leaves out, for finance to pay another way (or fail)."""
    print(
        f"PayPal file: {paypal.payable_lines} line(s), {paypal.payable_total} "
        f"{paypal.currency} (minor units) in {paypal.parts} part(s)"
    )
    if not paypal.unpayable:
        return
    print(
        f"{paypal.unpayable_lines} line(s), {paypal.unpayable_total} {paypal.currency} "
        "(minor units), are not in the file: pay them another way, or fail them"
    )
    for line in paypal.unpayable:
        print(
            f"  {line.reference}  {line.payee}  {line.payee_email or '-'}  "
            f"{line.amount}  {line.reason}"
        )


async def mark_paid(settings: Settings, batch: str, actor: str) -> None:
    runtime = _runtime(settings)
    pool = await create_pool(
        settings.database_url, pooling=settings.database_pooling, min_size=1, max_size=1
    )
    try:
        async with pool.acquire() as conn, conn.transaction():
            merchant_id = await service.merchant_of_batch(conn, runtime=runtime, batch_id=batch)
            paid = await service.mark_paid(
                conn, runtime=runtime, caller=_caller(merchant_id), batch_id=batch, actor=actor
            )
    finally:
        await pool.close()
    print(f"{batch} is {paid.status}: {paid.total} paid to {paid.line_count} payee(s)")
