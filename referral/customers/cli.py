"""`referral customers export | erase | retention`: a customer's data rights and the
retention job, from the command line (the merchant named by id or by one of its keys)."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

import msgspec

from referral.customers import service
from referral.lib.db import create_pool
from referral.merchants import service as merchants
from referral.runtime import Runtime
from referral.settings import Settings


async def _runtime(settings: Settings) -> Runtime:
    return Runtime.build(
        settings,
        await create_pool(
            settings.database_url, pooling=settings.database_pooling, min_size=1, max_size=2
        ),
    )


async def export(
    settings: Settings, merchant: str | None, key: str | None, customer_id: str, output: str
) -> None:
    runtime = await _runtime(settings)
    to_file = output != "-"
    try:
        async with runtime.pool.acquire() as conn:
            caller = await merchants.resolve(conn, ids=runtime.ids, merchant=merchant, key=key)
            await service.check_exportable(
                conn, runtime=runtime, caller=caller, customer_id=customer_id
            )
        # A command line's one file: written as the stream arrives, nothing else waits on it.
        opened = Path(output).open("wb") if to_file else nullcontext(sys.stdout.buffer)  # noqa: ASYNC230, SIM115
        with opened as sink:
            async for chunk in service.export(runtime, caller=caller, customer_id=customer_id):
                sink.write(chunk)
            if not to_file:
                sink.write(b"\n")
    finally:
        await runtime.pool.close()
    if to_file:
        print(f"wrote {output}", file=sys.stderr)


async def erase(
    settings: Settings, merchant: str | None, key: str | None, customer_id: str
) -> None:
    runtime = await _runtime(settings)
    try:
        async with runtime.pool.acquire() as conn, conn.transaction():
            caller = await merchants.resolve(conn, ids=runtime.ids, merchant=merchant, key=key)
            erasure, made = await service.erase(
                conn, runtime=runtime, caller=caller, customer_id=customer_id
            )
    finally:
        await runtime.pool.close()
    print(msgspec.json.format(msgspec.json.encode(erasure)).decode())
    if not made:
        print("(erased before, and not seen since: nothing more to erase)", file=sys.stderr)


async def retention(settings: Settings) -> None:
    runtime = await _runtime(settings)
    try:
        run = await service.apply_retention(runtime)
    finally:
        await runtime.pool.close()
    print(msgspec.json.format(msgspec.json.encode(run)).decode())
