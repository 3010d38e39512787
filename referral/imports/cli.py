"""`referral import advocates|customers|orders FILE`: the same import as `POST /v1/imports`,
from a file on disk (or `-` for standard input), read a megabyte at a time (constant memory
whatever its size), worked through here batch by batch with a progress line on a terminal,
and its error report printed (or written with `--errors FILE`)."""

from __future__ import annotations

import asyncio
import csv
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from referral.imports import service
from referral.imports.schemas import Import
from referral.lib.db import create_pool
from referral.merchants import service as merchants
from referral.runtime import Runtime
from referral.settings import Settings

SHOWN_ERRORS = 20  # errors printed when no --errors file is asked for


def format_of_path(path: str, given: str | None) -> str:
    if given:
        return given
    return "jsonl" if path.endswith((".jsonl", ".ndjson", ".json")) else "csv"


async def _chunks(source: BinaryIO) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(source.read, service.READ_CHUNK):
        yield chunk


class Progress:
    """A carriage-return progress line on a terminal; nothing otherwise."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._started = time.monotonic()

    def __call__(self, job: Import) -> None:
        if not self._tty:
            return
        done, total = job.counts.read, max(job.lines, 1)
        width = 30
        filled = width * done // total
        rate = done / max(time.monotonic() - self._started, 1e-3)
        self._stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{job.lines:,} lines "
            f"{rate:,.0f}/s  created {job.counts.created:,} unchanged {job.counts.unchanged:,} "
            f"failed {job.counts.failed:,}"
        )
        self._stream.flush()

    def done(self) -> None:
        if self._tty:
            self._stream.write("\n")


async def run(
    settings: Settings,
    merchant: str | None,
    key: str | None,
    kind: str,
    path: str,
    fmt: str | None,
    program: str | None,
    errors_path: str | None,
) -> int:
    """Import the file; 0 when every line was imported, 1 when some were refused (or the
    file failed)."""
    pool = await create_pool(
        settings.database_url, pooling=settings.database_pooling, min_size=1, max_size=2
    )
    runtime = Runtime.build(settings, pool)
    progress = Progress(sys.stderr)
    try:
        async with pool.acquire() as conn:
            caller = await merchants.resolve(conn, ids=runtime.ids, merchant=merchant, key=key)
        source = sys.stdin.buffer if path == "-" else Path(path).open("rb")  # noqa: ASYNC230, SIM115
        with source:
            job = await service.import_file(
                pool,
                codec=runtime.codec,
                ids=runtime.ids,
                caller=caller,
                kind=kind,
                fmt=format_of_path(path, fmt),
                program_id=program,
                chunks=_chunks(source),
                max_bytes=sys.maxsize,
                progress=progress,
            )
        progress.done()
        async with pool.acquire() as conn:
            report = [
                e
                async for e in service.error_report(
                    conn, ids=runtime.ids, caller=caller, import_id=job.id
                )
            ]
    finally:
        await pool.close()
    print(msgspec.json.format(msgspec.json.encode(job)).decode())
    if errors_path:
        with Path(errors_path).open("w", newline="") as out:  # noqa: ASYNC230
            writer = csv.writer(out)
            writer.writerow(["line", "code", "message"])
            writer.writerows([e.line, e.code, e.message] for e in report)
        print(f"wrote {len(report)} error(s) to {errors_path}", file=sys.stderr)
    else:
        for e in report[:SHOWN_ERRORS]:
            print(f"line {e.line}: {e.code}: {e.message}", file=sys.stderr)
        if len(report) > SHOWN_ERRORS:
            print(
                f"… and {len(report) - SHOWN_ERRORS} more (--errors FILE writes them all)",
                file=sys.stderr,
            )
    return 0 if job.status == "succeeded" and job.counts.failed == 0 else 1
