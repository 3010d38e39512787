"""Per-key token buckets, in process: how many requests a client may make, and when it may
try again.

A bucket holds up to `burst` tokens and refills at `per_minute`; a request takes one token
or is refused with the seconds until one is back. Nothing is shared between processes: with
N instances (or granian workers) a client gets up to N times the limit, which is enough to
stop guessing and flooding from one address, and costs no database or network round trip.
Memory is bounded: past `max_keys` clients, the least recently seen are forgotten (they
start again with a full bucket).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import msgspec


class Limit(msgspec.Struct, frozen=True):
    """`per_minute` requests on average, `burst` at once; `per_minute` 0 means no limit."""

    per_minute: int
    burst: int

    @classmethod
    def parse(cls, text: str) -> Limit:
        """`"60/20"`: 60 a minute, bursts of 20; `"60"`: bursts as large as the rate; `"0"`:
        off."""
        rate, _, burst = text.strip().partition("/")
        per_minute = int(rate)
        limit = cls(per_minute=per_minute, burst=int(burst) if burst else per_minute)
        if limit.per_minute < 0 or (limit.per_minute and limit.burst < 1):
            raise ValueError(f"a rate limit is `per_minute/burst`, both positive: {text!r}")
        return limit

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0


class TokenBuckets:
    def __init__(
        self,
        limit: Limit,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self._per_second = limit.per_minute / 60
        self._burst = float(limit.burst)
        self._max_keys = max_keys
        self._clock = clock
        # key -> (tokens, when counted); in order of last use, oldest first.
        self._buckets: dict[object, tuple[float, float]] = {}

    def take(self, key: object) -> float:
        """0.0 if `key` may go ahead (a token is taken), else the seconds until it may."""
        if not self.limit.enabled:
            return 0.0
        now = self._clock()
        buckets = self._buckets
        held = buckets.pop(key, None)
        if held is None:
            tokens = self._burst
        else:
            tokens = min(self._burst, held[0] + (now - held[1]) * self._per_second)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self._per_second
        buckets[key] = (tokens, now)
        while len(buckets) > self._max_keys:
            del buckets[next(iter(buckets))]
        return wait


def retry_after(wait: float) -> str:
    """`Retry-After` in whole seconds, never 0 (0 would invite an instant retry)."""
    return str(max(1, math.ceil(wait)))
