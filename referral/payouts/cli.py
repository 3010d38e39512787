"""Finance's commands: `referral payouts create | export | mark-paid`.

They call the same services as the HTTP API, with the merchant taken from the batch id (or
given with --merchant for create), so a finance person needs database access, not an API key.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import asyncpg

from referral.lib.db import create_pool
from referral.lib.ids import PublicIds
from referral.merchants.service import Caller
from referral.payouts import export, service
from referral.payouts.schemas import BatchCreate
from referral.settings import Settings


def _caller(merchant_id: int) -> Caller:
    return Caller(merchant_id=merchant_id, mode="live", kind="secret")


async def _merchant_of_batch(conn: asyncpg.Connection, batch_id: int) -> int:
    merchant_id = await conn.fetchval(
        "SELECT merchant_id FROM payout_batches WHERE id = $1", batch_id
    )
    if merchant_id is None:
        raise LookupError("no such payout batch")
    return merchant_id


async def create(
    settings: Settings, merchant: str, currency: str, kind: str, cutoff: datetime | None
) -> None:
    ids = PublicIds(settings.hashids_salt)
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)  # jsonb codec
    try:
        async with pool.acquire() as conn, conn.transaction():
            row = await service.create(
                conn,
                ids,
                _caller(ids.decode("merchant", merchant)),
                BatchCreate(currency=currency, kind=kind, cutoff=cutoff),
            )
    finally:
        await pool.close()
    print(
        f"{ids.encode('payout', row['id'])}  {row['line_count']} payee(s)  "
        f"{row['reward_count']} reward(s)  total {row['total']} {currency} (minor units)"
    )


async def export_csv(
    settings: Settings, batch: str, output: Path, fmt: str, part: int, rewards: bool, bom: bool
) -> None:
    ids = PublicIds(settings.hashids_salt)
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            merchant_id = await _merchant_of_batch(conn, ids.decode("payout", batch))
            row = await service.get(conn, ids, _caller(merchant_id), batch)
            if fmt == "paypal":
                await export.check_paypal(conn, row)
        query = (
            export.rewards_query(row, batch)
            if rewards
            else export.payouts_query(row, batch, fmt, part)
        )
        expected = row["reward_count"] if rewards else row["line_count"]
        show = sys.stderr.isatty()
        written = lines = 0
        with output.open("wb") as sink:
            async for chunk in export.stream(pool, query, bom=bom):
                sink.write(chunk)
                written += len(chunk)
                lines += chunk.count(b"\n")
                if show:
                    percent = min(100, 100 * lines // max(expected, 1))
                    print(
                        f"\r{output}: {percent:3d}%  {written / 1e6:8.1f} MB",
                        end="",
                        file=sys.stderr,
                        flush=True,
                    )
        if show:
            print(file=sys.stderr)
        print(f"wrote {output} ({written} bytes)")
    finally:
        await pool.close()


async def mark_paid(settings: Settings, batch: str, actor: str) -> None:
    ids = PublicIds(settings.hashids_salt)
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            merchant_id = await _merchant_of_batch(conn, ids.decode("payout", batch))
            row = await service.mark_paid(conn, ids, _caller(merchant_id), batch, actor)
    finally:
        await pool.close()
    print(f"{batch} is {row['status']}: {row['total']} paid to {row['line_count']} payee(s)")
