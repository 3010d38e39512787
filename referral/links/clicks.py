"""The click writer: clicks are buffered in memory and written in batches.

A redirect appends a tuple and returns; a background task flushes the buffer every
`interval` (50 ms by default, within the 100 ms promise) with one COPY into `clicks` and one
grouped upsert into `click_rollups`, in one transaction so counts always match rows. On
shutdown the writer is drained, never cancelled mid-COPY (that lost rows in measurements).
If the database is unreachable the batch is kept and retried; past `max_buffer` clicks the
oldest are dropped and counted, so an outage cannot exhaust memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from datetime import datetime

import asyncpg
import structlog

log = structlog.get_logger("referral.clicks")

CLICK_COLUMNS = (
    "id",
    "clicked_at",
    "merchant_id",
    "program_id",
    "advocate_id",
    "code",
    "channel",
    "visitor_id",
    "ip_hash",
    "ip_net_hash",
    "user_agent",
    "referer_host",
    "story_id",
    "is_bot",
)

Click = tuple[
    uuid.UUID,
    datetime,
    int,
    int,
    int,
    str,
    str,
    str,
    bytes | None,
    bytes | None,
    str | None,
    str | None,
    int | None,
    bool,
]

ADD_ROLLUPS = """
INSERT INTO click_rollups AS r (merchant_id, program_id, advocate_id, channel, hour, clicks, bot_hits)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::timestamptz[],
                     $6::bigint[], $7::bigint[])
ORDER BY 1, 3, 4, 5  -- a fixed lock order: concurrent writers never deadlock
ON CONFLICT (merchant_id, advocate_id, channel, hour) DO UPDATE
SET clicks = r.clicks + excluded.clicks, bot_hits = r.bot_hits + excluded.bot_hits
"""


class ClickWriter:
    def __init__(
        self, pool: asyncpg.Pool, *, interval: float = 0.05, max_buffer: int = 200_000
    ) -> None:
        self._pool = pool
        self._interval = interval
        self._max_buffer = max_buffer
        self._buffer: list[Click] = []
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.dropped = 0
        self.last_error: str | None = None

    def record(self, click: Click) -> None:
        self._buffer.append(click)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="click-writer")

    async def stop(self) -> None:
        """Stop taking turns, then write everything still buffered."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        for _ in range(3):
            if not self._buffer:
                break
            await self.flush()
        if self._buffer:
            log.error("clicks_lost_on_shutdown", count=len(self._buffer))

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            await self.flush()

    async def flush(self) -> int:
        if not self._buffer:
            return 0
        batch, self._buffer = self._buffer, []
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.copy_records_to_table("clicks", records=batch, columns=CLICK_COLUMNS)
                await conn.execute(ADD_ROLLUPS, *_rollup_columns(batch))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Keep the batch (older clicks first) and try again next turn.
            self._buffer[:0] = batch
            overflow = len(self._buffer) - self._max_buffer
            if overflow > 0:
                del self._buffer[:overflow]
                self.dropped += overflow
            if self.last_error != type(exc).__name__:
                log.warning("click_flush_failed", error=type(exc).__name__, pending=self.pending)
            self.last_error = type(exc).__name__
            return 0
        self.last_error = None
        self.written += len(batch)
        return len(batch)


def _rollup_columns(batch: list[Click]) -> tuple[list, ...]:
    clicks: Counter[tuple] = Counter()
    bots: Counter[tuple] = Counter()
    for c in batch:
        key = (c[2], c[3], c[4], c[6], c[1].replace(minute=0, second=0, microsecond=0))
        (bots if c[13] else clicks)[key] += 1
    keys = list(clicks.keys() | bots.keys())
    return (
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        [k[3] for k in keys],
        [k[4] for k in keys],
        [clicks[k] for k in keys],
        [bots[k] for k in keys],
    )
