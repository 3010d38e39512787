"""The click writer: clicks are buffered in memory and written in batches.

A redirect appends a tuple and returns; a background task flushes the buffer every
`interval` (50 ms by default, within the 100 ms promise) with one COPY into `clicks` and one
statement that records the batch's unique clicks (`unique_clicks`, one per visitor,
advocate and merchant's day) and upserts the grouped `click_rollups` (raw clicks, bot hits,
unique clicks), in one transaction so counts always match rows. On
shutdown the writer is drained, never cancelled mid-COPY (that lost rows in measurements).
If the database is unreachable the batch is kept and retried; past `max_buffer` clicks the
oldest are dropped and counted, so an outage cannot exhaust memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from referral.analytics import service as analytics
from referral.lib import metrics
from referral.links import repo

log = structlog.get_logger("referral.clicks")
_HOUR = timedelta(hours=1)

# In the order of `repo.CLICK_COLUMNS`.
Click = tuple[
    uuid.UUID | str,  # a UUID or its 32 hex digits
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
        # Turns start every `interval` (not `interval` after the previous write ended), so a
        # click waits at most one interval plus one write.
        loop = asyncio.get_running_loop()
        turn = loop.time()
        while not self._stopping.is_set():
            turn += self._interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(turn - loop.time(), 0.0))
            turn = max(turn, loop.time() - self._interval)  # after a slow write: no burst
            await self.flush()

    async def flush(self) -> int:
        if not self._buffer:
            return 0
        batch, self._buffer = self._buffer, []
        flushed = metrics.timed_flush()
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await repo.copy_clicks(conn, batch)
                columns, humans = _rollup_columns(batch)
                firsts = await repo.add_rollups(conn, columns)
                await analytics.record_clicks(
                    conn,
                    columns=_analytics_columns(batch),
                    firsts=[humans[i - 1] + 1 for i in firsts],
                )
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
            flushed(len(self._buffer))
            return 0
        self.last_error = None
        self.written += len(batch)
        flushed(len(self._buffer))
        return len(batch)


def _analytics_columns(batch: list[Click]) -> tuple[list, ...]:
    """Per click: merchant, program, advocate, channel, story, time, bot flag and visitor."""
    return (
        [c[2] for c in batch],
        [c[3] for c in batch],
        [c[4] for c in batch],
        [c[6] for c in batch],
        [c[12] for c in batch],
        [c[1] for c in batch],
        [c[13] for c in batch],
        [c[7] for c in batch],
    )


def _rollup_columns(batch: list[Click]) -> tuple[tuple[list, ...], list[int]]:
    """The batch counted per (merchant, program, advocate, channel, hour): clicks and bot
    hits; and each human click's merchant, advocate, visitor, time and rollup row, from
    which the statement finds the unique clicks. As the columns `repo.add_rollups` takes,
    with the 0-based position in the batch of each human click."""
    counts: dict[tuple, list[int]] = {}
    humans: list[Click] = []
    positions: list[int] = []
    slots: list[int] = []
    utc_hour = utc_hour_end = None  # clicks are in UTC and a batch mostly shares one hour
    for position, c in enumerate(batch):
        at = c[1]
        if utc_hour is not None and at.tzinfo is UTC and utc_hour <= at < utc_hour_end:
            hour = utc_hour
        else:
            hour = at.replace(minute=0, second=0, microsecond=0)
            if at.tzinfo is UTC:
                utc_hour, utc_hour_end = hour, hour + _HOUR
        key = (c[2], c[3], c[4], c[6], hour)
        n = counts.get(key)
        if n is None:
            counts[key] = n = [0, 0, len(counts) + 1]
        if c[13]:
            n[1] += 1
        else:
            n[0] += 1
            humans.append(c)
            positions.append(position)
            slots.append(n[2])
    columns = (
        [k[0] for k in counts],
        [k[1] for k in counts],
        [k[2] for k in counts],
        [k[3] for k in counts],
        [k[4] for k in counts],
        [n[0] for n in counts.values()],
        [n[1] for n in counts.values()],
        [c[2] for c in humans],
        [c[4] for c in humans],
        [c[7] for c in humans],
        [c[1] for c in humans],
        slots,
    )
    return columns, positions
