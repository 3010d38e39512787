"""Prometheus metrics (prometheus-client), cheap enough for the redirect's hot path: one
histogram observation per request, on a child looked up once per (method, route, status).

With several server workers (`referral serve --workers N`) every worker writes its figures to
files in PROMETHEUS_MULTIPROC_DIR (set by `serve` before the workers start) and `/metrics`,
whichever worker answers, sums them all. Routes are labelled by their template
(`/r/{code}`), never by the path, so a label never holds a code, an id or an email."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
CONTENT_TYPE = CONTENT_TYPE_LATEST

REQUEST_SECONDS = Histogram(
    "referral_http_request_duration_seconds",
    "Time to answer a request, by method, route template and status (its count: requests)",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CLICK_BUFFER = Gauge(
    "referral_click_buffer_clicks",
    "Clicks recorded and not yet written, as of the writer's last flush",
    multiprocess_mode="livesum",
)
CLICK_FLUSH_SECONDS = Histogram(
    "referral_click_flush_duration_seconds",
    "Time to write one flush of clicks (COPY and the counters)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
POOL_CONNECTIONS = Gauge(
    "referral_db_pool_connections",
    "Database pool connections by state: in_use, idle, waiting (requests waiting for one)",
    ["state"],
    multiprocess_mode="livesum",
)

_children: dict[tuple[str, str, int], Callable[[float], None]] = {}
# A client chooses the method: any other is one label, or each made-up one would be a series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    observe = _children.get(key)
    if observe is None:
        label = method if method in _METHODS else "other"
        observe = REQUEST_SECONDS.labels(label, route, str(status)).observe
        _children[key] = observe
    observe(seconds)


class PoolWaiting:
    """How many callers wait for a pool connection now (asyncpg does not say)."""

    def __init__(self) -> None:
        self.count = 0


pool_waiting = PoolWaiting()


def sample_pool(size: int, idle: int) -> None:
    POOL_CONNECTIONS.labels("in_use").set(size - idle)
    POOL_CONNECTIONS.labels("idle").set(idle)
    POOL_CONNECTIONS.labels("waiting").set(pool_waiting.count)


def timed_flush() -> Callable[[int], None]:
    """Call at a flush's start; call what it returns with the clicks still buffered."""
    started = time.perf_counter()

    def done(buffered: int) -> None:
        CLICK_FLUSH_SECONDS.observe(time.perf_counter() - started)
        CLICK_BUFFER.set(buffered)

    return done


def exposition(read_now: Iterable[Metric] = ()) -> bytes:
    """Every figure in the text format: this process's (or, with several workers, all of
    theirs, summed) and `read_now` (figures just asked of the database, say)."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry
    extra = CollectorRegistry()
    extra.register(_Now(list(read_now)))
    return generate_latest(registry) + generate_latest(extra)


class _Now:
    """A collector of figures read for this scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families
