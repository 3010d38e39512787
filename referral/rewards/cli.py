"""The accountant's commands: `referral ledger balances | entries`.

The same services as `GET /v1/ledger/balances` and `GET /v1/ledger/entries.csv`, with the
merchant named by id (--merchant) or by one of its keys (--key), so a finance person needs
database access, not an API key.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from referral.lib import money
from referral.lib.db import create_pool
from referral.lib.ids import PublicIds
from referral.merchants import service as merchants
from referral.payouts import export
from referral.rewards import books
from referral.settings import Settings


@dataclass(frozen=True, slots=True)
class _Runtime:
    """The part of the app's runtime the books use (`books.Context`)."""

    ids: PublicIds


async def balances(
    settings: Settings,
    merchant: str | None,
    key: str | None,
    as_of: str | None,
    program: str | None,
    as_csv: bool,
) -> None:
    runtime = _Runtime(ids=PublicIds(settings.hashids_salt))
    pool = await create_pool(
        settings.database_url, pooling=settings.database_pooling, min_size=1, max_size=1
    )
    try:
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            caller = await merchants.resolve(conn, ids=runtime.ids, merchant=merchant, key=key)
            found = await books.balances(
                conn, runtime=runtime, caller=caller, as_of=as_of, program_id=program
            )
    finally:
        await pool.close()
    if as_csv:
        for chunk in books.balances_csv(found):
            sys.stdout.write(chunk.decode())
        return
    print(f"as of {found.as_of.isoformat()} ({found.program_id or 'every program'})")
    if not found.currencies:
        print("no cash or store credit booked by then")
    for row in found.currencies:
        print(row.currency)
        for figure, amount in books.figures(row).items():
            print(f"  {figure:<20}{money.to_decimal_string(amount, row.currency):>16}")


async def entries(
    settings: Settings,
    merchant: str | None,
    key: str | None,
    from_: str | None,
    until: str | None,
    program: str | None,
    output: Path,
    bom: bool,
) -> None:
    runtime = _Runtime(ids=PublicIds(settings.hashids_salt))
    pool = await create_pool(
        settings.database_url, pooling=settings.database_pooling, min_size=1, max_size=2
    )
    try:
        async with pool.acquire() as conn:
            caller = await merchants.resolve(conn, ids=runtime.ids, merchant=merchant, key=key)
            query, start, end = await books.entries_export(
                conn, runtime=runtime, caller=caller, from_=from_, until=until, program_id=program
            )
        written = 0
        with output.open("wb") as sink:
            async for chunk in export.stream(pool, query=query, bom=bom):
                sink.write(chunk)
                written += len(chunk)
    finally:
        await pool.close()
    print(
        f"wrote {output} ({written} bytes): the entries booked after {start.isoformat()} "
        f"up to {end.isoformat()}"
    )
