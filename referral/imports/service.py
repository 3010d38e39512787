"""Imports: switching in from another service with a file of advocates, customers or past
orders (CSV or JSON lines), through `POST /v1/imports` or `referral import`.

A file is staged first, as it streams in (`stage`: its lines by COPY, a few thousand at a
time, never the whole file in memory), then queued (`queue`, under the request's
Idempotency-Key), then worked through by the imports worker (`process_batch`): one
transaction per batch of lines, holding the import's row FOR UPDATE SKIP LOCKED, so any
number of workers (instances, the command line) share the queue and no line is processed
twice; a crashed worker's batch is rolled back and taken again. Each batch is parsed and
checked here (`rules.py`), then written set-based by the room that owns the rows (advocates
with their codes, orders as history) or here (the customers the shop had), each write ON
CONFLICT DO NOTHING: the same file imported again creates nothing and says so.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import structlog

from referral.advocates import service as advocates
from referral.audit import service as audit
from referral.codes.codec import CodeCodec
from referral.customers.schemas import ExportedImportedCustomer, Subject, Tombstones
from referral.imports import repo, rules
from referral.imports.repo import JobRow
from referral.imports.schemas import (
    Import,
    ImportCounts,
    ImportErrorPage,
    ImportLineError,
)
from referral.lib.errors import InvalidInput, NotFound, PayloadTooLarge, UnsupportedMediaType
from referral.lib.ids import PublicIds
from referral.lib.pagination import Cursor, Page
from referral.merchants.service import Caller
from referral.orders import service as orders

log = structlog.get_logger("referral.imports")

STAGE_LINES = 5_000  # lines a COPY writes
READ_CHUNK = 1 << 20  # bytes the command line reads at a time
HELD_RETRY_SECONDS = 0.05  # the command line's wait while another worker holds its batch


MEDIA_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/json": "jsonl",  # a one-line file of JSON lines is a JSON document
}


def format_of(content_type: str | None) -> str:
    """The file's format from its Content-Type (parameters such as charset ignored)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise UnsupportedMediaType("send the file as text/csv or application/x-ndjson (JSON lines)")
    return MEDIA_TYPES[media]


@dataclass
class Staged:
    """A file staged under its import (status `receiving` until queued)."""

    job: JobRow
    digest: bytes  # SHA-256 of the file: what an Idempotency-Key replay compares


def _to_import(ids: PublicIds, caller: Caller, job: JobRow) -> Import:
    return Import(
        id=ids.encode("import", job.id),
        kind=job.kind,  # type: ignore[arg-type]
        format=job.format,  # type: ignore[arg-type]
        program_id=ids.encode("program", job.program_id) if job.program_id else None,
        status=job.status,  # type: ignore[arg-type]
        lines=job.lines,
        counts=ImportCounts(
            read=job.lines_read, created=job.created, unchanged=job.unchanged, failed=job.failed
        ),
        failure=job.failure,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        livemode=caller.mode == "live",
    )


# --------------------------------------------------------------------------- staging


async def stage(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    caller: Caller,
    kind: str,
    fmt: str,
    program_id: str | None,
    chunks: AsyncIterable[bytes],
    max_bytes: int,
) -> Staged:
    """Stream the file into its import's staged lines. Refused whole: a file larger than
    `max_bytes` (413), not UTF-8, or empty; advocates without their program, others with one."""
    if kind not in rules.KINDS:
        raise InvalidInput(f"kind is one of {', '.join(rules.KINDS)}", code="invalid_import")
    program = None
    if kind == "advocates":
        if program_id is None:
            raise InvalidInput(
                "advocates are imported into a program: send program_id", code="invalid_import"
            )
        program = ids.decode("program", program_id)
        await advocates.check_program(
            conn, merchant_id=caller.merchant_id, program_id=program, public_id=program_id
        )
    elif program_id is not None:
        raise InvalidInput("program_id is for advocates only", code="invalid_import")
    job = await repo.insert_import(conn, caller.merchant_id, kind, fmt, program)
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    size, number, staged = 0, 0, 0
    columns: list[str] | None = None
    pending: list[tuple[int, str]] = []
    rest = ""

    async def flush() -> None:
        await repo.stage_lines(conn, caller.merchant_id, job.id, pending)
        pending.clear()

    def take(line: str) -> None:
        nonlocal number, staged, columns
        number += 1
        line = line.rstrip("\r")
        if not line.strip():
            return
        if fmt == "csv" and columns is None:
            columns = rules.parse_header(line)
            return
        staged += 1
        pending.append((number, line.replace("\x00", "\ufffd")))

    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(f"an import file is at most {max_bytes:,} bytes")
            digest.update(chunk)
            text = rest + decoder.decode(chunk)
            *lines, rest = text.split("\n")
            for line in lines:
                take(line)
            if len(pending) >= STAGE_LINES:
                await flush()
        rest += decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InvalidInput("the file must be UTF-8", code="invalid_encoding") from None
    if rest:
        take(rest)
    if pending:
        await flush()
    if staged == 0 and columns is None:
        raise InvalidInput("the file holds no lines", code="empty_import")
    await repo.set_staged(conn, caller.merchant_id, job.id, staged, size, columns)
    job = await repo.get(conn, caller.merchant_id, job.id)
    assert job is not None
    return Staged(job=job, digest=digest.digest())


async def queue(
    conn: asyncpg.Connection, *, ids: PublicIds, caller: Caller, staged: Staged
) -> Import:
    """Hand the staged file to the workers (202: it is worked through in the background)."""
    await repo.queue(conn, caller.merchant_id, staged.job.id)
    job = await repo.get(conn, caller.merchant_id, staged.job.id)
    assert job is not None
    shown = _to_import(ids, caller, job)
    await audit.record(
        conn,
        caller=caller,
        action="import.created",
        subject_type="import",
        subject_id=shown.id,
        after={"kind": job.kind, "format": job.format, "lines": job.lines, "bytes": job.bytes},
    )
    log.info("import_queued", import_id=shown.id, kind=job.kind, lines=job.lines)
    return shown


async def discard(conn: asyncpg.Connection, *, caller: Caller, staged: Staged) -> None:
    """A staged file that was never queued (its Idempotency-Key answered an earlier call)."""
    await repo.discard(conn, caller.merchant_id, staged.job.id)


# --------------------------------------------------------------------------- reading


async def _job(conn: asyncpg.Connection, ids: PublicIds, caller: Caller, import_id: str) -> JobRow:
    job = await repo.get(conn, caller.merchant_id, ids.decode("import", import_id))
    if job is None:
        raise NotFound(f"no import with id {import_id}", code="import_not_found")
    return job


async def get(
    conn: asyncpg.Connection, *, ids: PublicIds, caller: Caller, import_id: str
) -> Import:
    return _to_import(ids, caller, await _job(conn, ids, caller, import_id))


async def list_imports(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    caller: Caller,
    kind: str | None,
    status: str | None,
    cursor: Cursor,
) -> Page[Import]:
    rows = await repo.list_page(conn, caller.merchant_id, kind=kind, status=status, cursor=cursor)
    rows, more = cursor.split(rows)
    return Page(data=[_to_import(ids, caller, r) for r in rows], has_more=more)


async def errors(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    caller: Caller,
    import_id: str,
    after_line: int,
    limit: int,
) -> ImportErrorPage:
    """The error report, by line number: `after_line` is the last line of the page before."""
    job = await _job(conn, ids, caller, import_id)
    rows = await repo.errors(conn, caller.merchant_id, job.id, after_line, limit + 1)
    return ImportErrorPage(
        data=[
            ImportLineError(line=r.line_no, code=r.code, message=r.message) for r in rows[:limit]
        ],
        has_more=len(rows) > limit,
    )


async def error_report(
    conn: asyncpg.Connection, *, ids: PublicIds, caller: Caller, import_id: str
) -> AsyncIterator[ImportLineError]:
    """Every kept error of the import, in line order (at most `rules.MAX_ERRORS`)."""
    job = await _job(conn, ids, caller, import_id)
    after = 0
    while True:
        rows = await repo.errors(conn, caller.merchant_id, job.id, after, 1000)
        for r in rows:
            yield ImportLineError(line=r.line_no, code=r.code, message=r.message)
        if len(rows) < 1000:
            return
        after = rows[-1].line_no


# --------------------------------------------------------------------------- the worker


@dataclass
class _Batch:
    """One batch's outcome: counts and the error report's new lines."""

    created: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str, str]] = field(default_factory=list)

    def refuse(self, line_no: int, error: rules.LineError) -> None:
        self.errors.append((line_no, error.code, error.message))


async def process_batch(
    pool: asyncpg.Pool,
    *,
    codec: CodeCodec,
    ids: PublicIds,
    merchant_id: int | None = None,
    import_id: int | None = None,
    now: datetime | None = None,
) -> JobRow | None:
    """Work one batch of the oldest waiting import (or of the one named), in a transaction
    of its own; the import as it stands after it, or None when there was nothing to take
    (no import waiting, or every waiting one held by another worker)."""
    async with pool.acquire() as conn, conn.transaction():
        if import_id is not None and merchant_id is not None:
            job = await repo.take(conn, merchant_id, import_id)
        else:
            job = await repo.next_waiting(conn)
        if job is None:
            return None
        await _work(conn, codec, job, now or datetime.now(UTC))
        return await repo.get(conn, job.merchant_id, job.id)


async def run_due(pool: asyncpg.Pool, *, codec: CodeCodec, ids: PublicIds) -> int:
    """Every waiting import to its end (the tests' and the command line's worker); the
    batches worked."""
    worked = 0
    while await process_batch(pool, codec=codec, ids=ids) is not None:
        worked += 1
    return worked


async def _work(conn: asyncpg.Connection, codec: CodeCodec, job: JobRow, now: datetime) -> None:
    merchant_id = job.merchant_id
    if job.format == "csv":
        problem = rules.header_problem(job.kind, job.columns or [])
        if problem is not None:
            await repo.insert_errors(conn, merchant_id, job.id, [(1, "bad_header", problem)])
            await repo.finish(conn, merchant_id, job.id, "failed", f"bad CSV header: {problem}")
            log.info("import_failed", import_id=job.id, reason="bad_header")
            return
    lines = await repo.batch(conn, merchant_id, job.id, job.next_line, rules.BATCH_LINES)
    if lines:
        outcome = await _apply(conn, codec, job, lines, now)
        room = max(0, rules.MAX_ERRORS - job.failed)
        await repo.insert_errors(conn, merchant_id, job.id, outcome.errors[:room])
        await repo.advance(
            conn,
            merchant_id,
            job.id,
            next_line=lines[-1][0] + 1,
            read=len(lines),
            created=outcome.created,
            unchanged=outcome.unchanged,
            failed=len(outcome.errors),
        )
    if len(lines) < rules.BATCH_LINES:
        await repo.finish(conn, merchant_id, job.id, "succeeded", None)
        log.info("import_finished", import_id=job.id, kind=job.kind)


def _parsed(job: JobRow, lines: list[tuple[int, str]], batch: _Batch, parse) -> list:
    """(line number, value) of each line `parse` reads; the rest refused into `batch`."""
    good = []
    for line_no, raw in lines:
        try:
            good.append((line_no, parse(rules.fields_of(raw, job.format, job.columns))))
        except rules.LineError as error:
            batch.refuse(line_no, error)
    return good


async def _apply(
    conn: asyncpg.Connection,
    codec: CodeCodec,
    job: JobRow,
    lines: list[tuple[int, str]],
    now: datetime,
) -> _Batch:
    batch = _Batch()
    merchant_id = job.merchant_id
    if job.kind == "customers":
        good = _parsed(job, lines, batch, rules.customer)
        created = await repo.insert_customers(
            conn,
            merchant_id,
            job.id,
            [c.customer_id for _, c in good],
            [c.email for _, c in good],
        )
        batch.created, batch.unchanged = created, len(good) - created
    elif job.kind == "orders":
        good = _parsed(job, lines, batch, lambda f: rules.order(f, now))
        done = await orders.import_orders(
            conn, merchant_id=merchant_id, orders=[o for _, o in good]
        )
        for (line_no, _), outcome in zip(good, done.outcomes, strict=True):
            if outcome == "conflict":
                batch.refuse(
                    line_no,
                    rules.LineError(
                        "order_conflict",
                        "order_id was recorded before with other amounts or another customer",
                    ),
                )
            elif outcome == "created":
                batch.created += 1
            else:
                batch.unchanged += 1
    else:
        assert job.program_id is not None
        good = _parsed(job, lines, batch, lambda f: rules.advocate(f, codec))
        done = await advocates.import_advocates(
            conn,
            codec=codec,
            merchant_id=merchant_id,
            program_id=job.program_id,
            advocates=[a for _, a in good],
        )
        for (line_no, _), made in zip(good, done, strict=True):
            if made.error is not None:
                batch.refuse(line_no, rules.LineError(*made.error))
            elif made.created:
                batch.created += 1
            else:
                batch.unchanged += 1
    batch.errors.sort()
    return batch


# --------------------------------------------------------------------------- the CLI path


async def import_file(
    pool: asyncpg.Pool,
    *,
    codec: CodeCodec,
    ids: PublicIds,
    caller: Caller,
    kind: str,
    fmt: str,
    program_id: str | None,
    chunks: AsyncIterable[bytes],
    max_bytes: int,
    progress=None,
) -> Import:
    """What `referral import` does: stage and queue the file (one transaction), then work
    its batches here, calling `progress(import)` after each. Another worker (a running
    server) may take some of them meanwhile: each batch is worked once, by whoever holds it."""
    async with pool.acquire() as conn, conn.transaction():
        staged = await stage(
            conn,
            ids=ids,
            caller=caller,
            kind=kind,
            fmt=fmt,
            program_id=program_id,
            chunks=chunks,
            max_bytes=max_bytes,
        )
        shown = await queue(conn, ids=ids, caller=caller, staged=staged)
    if progress is not None:
        progress(shown)
    while True:
        job = await process_batch(
            pool, codec=codec, ids=ids, merchant_id=caller.merchant_id, import_id=staged.job.id
        )
        if job is None:
            async with pool.acquire() as conn:
                current = await repo.get(conn, caller.merchant_id, staged.job.id)
            assert current is not None
            if current.status in ("succeeded", "failed"):
                return _to_import(ids, caller, current)
            job = current  # a server's worker holds its batch this moment: look again soon
            await asyncio.sleep(HELD_RETRY_SECONDS)
        if progress is not None:
            progress(_to_import(ids, caller, job))
        if job.status in ("succeeded", "failed"):
            return _to_import(ids, caller, job)


# --------------------------------------------------------------------------- data rights


async def find_customer(conn: asyncpg.Connection, *, subject: Subject) -> None:
    """Imported as an existing customer, by customer id or by one of their addresses."""
    found = await repo.known_customer(
        conn, subject.merchant_id, subject.customer_id, subject.emails
    )
    subject.imported_customer_ids = [k.id for k in found]
    emails = {k.email_normalised for k in found if k.email_normalised}
    subject.emails = sorted(set(subject.emails) | emails)


async def export_customer(
    conn: asyncpg.Connection, *, ids: PublicIds, subject: Subject
) -> list[ExportedImportedCustomer]:
    found = await repo.known_customer(
        conn, subject.merchant_id, subject.customer_id, subject.emails
    )
    return [
        ExportedImportedCustomer(
            customer_id=k.customer_id,
            email=k.email_normalised,
            import_id=ids.encode("import", k.import_id),
            imported_at=k.created_at,
        )
        for k in found
    ]


async def erase_customer(
    conn: asyncpg.Connection, *, subject: Subject, tombstones: Tombstones
) -> int:
    """Forgotten: the import's record that they were a customer is deleted (their orders,
    under tombstones, still say they bought)."""
    if not subject.imported_customer_ids:
        return 0
    return await repo.erase_known_customer(conn, subject.merchant_id, subject.imported_customer_ids)
