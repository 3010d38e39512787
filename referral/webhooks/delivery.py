"""The webhook sender: takes due deliveries, posts them, records every attempt.

`Deliverer` is what a running app keeps (one per process, started in `app.py`): a pooled
`httpx.AsyncClient` that follows no redirect and trusts no proxy from the environment, at
most `webhook_concurrency` requests in flight and `webhook_endpoint_concurrency` per
endpoint. Its loop takes due deliveries (`repo.claim`: FOR UPDATE SKIP LOCKED, leased), sends
each as its own task, and books finished results in batches; it never waits for a slow
endpoint before taking others' work. Any number of processes run it side by side.

`deliver_due(pool, settings=...)` is one whole pass (take everything due, send, book), for
tests and commands: deterministic, no sleeping.

The address is checked after DNS, at every attempt, and the request goes to the address that
was checked (the URL's host rides in `Host` and TLS SNI), so a name that changes its answer
between check and connect cannot reach an internal service.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import msgspec
import structlog

from referral.events import service as events
from referral.lib.ids import PublicIds
from referral.settings import Settings
from referral.webhooks import repo, rules

log = structlog.get_logger("referral.webhooks")

USER_AGENT = "referral-webhooks/1.0 (Standard Webhooks; +https://www.standardwebhooks.com)"
_READ_AT_MOST = 4096


class Body(msgspec.Struct):
    """The event's JSON as `GET /v1/events` shows it; `data` passed through as stored."""

    id: str
    type: str
    data: msgspec.Raw
    created_at: datetime
    object: str = "event"


@dataclass(frozen=True)
class Outcome:
    """What one POST came to."""

    attempted_at: datetime
    status_code: int | None
    error: str | None  # timeout | connection | address_refused | dns | invalid_url
    duration_ms: int
    response: str
    retry_after: str | None = None

    @property
    def succeeded(self) -> bool:
        return rules.succeeded(self.status_code)


@dataclass(frozen=True)
class Result:
    item: repo.Claimed
    message_id: str
    outcome: Outcome


async def _resolve(host: str, port: int) -> list[str]:
    """The addresses `host` stands for now (an address literal needs no lookup)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def new_client(settings: Settings, connections: int | None = None) -> httpx.AsyncClient:
    """A pooled client that follows no redirect and takes no proxy from the environment.
    The sender keeps one per endpoint (`connections` = its concurrency): httpcore's pool
    looks at every connection for every request, which costs more than the request itself
    once one pool holds dozens of connections."""
    connections = connections or settings.webhook_endpoint_concurrency
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(settings.webhook_timeout_seconds),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        headers={"user-agent": USER_AGENT},
    )


async def post(
    client: httpx.AsyncClient,
    *,
    url: str,
    live: bool,
    message_id: str,
    body: bytes,
    secrets: Sequence[bytes],
    time_limit: float,
) -> Outcome:
    """One signed POST to `url` (after checking where its name points). Never raises."""
    started = time.monotonic()
    attempted_at = datetime.now(UTC)

    def done(status: int | None, error: str | None, text: str = "", after: str | None = None):
        elapsed = int((time.monotonic() - started) * 1000)
        return Outcome(attempted_at, status, error, elapsed, text, after)

    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        if not host or parts.scheme not in ("http", "https"):
            return done(None, "invalid_url")
    except ValueError:
        return done(None, "invalid_url")
    try:
        async with asyncio.timeout(time_limit):
            try:
                addresses = await _resolve(host, port)
            except OSError:
                return done(None, "dns")
            refused = [a for a in addresses if rules.address_refusal(a, live=live)]
            if refused or not addresses:
                reason = rules.address_refusal(refused[0], live=live) if refused else "none"
                return done(None, "address_refused", f"{host} resolves to a {reason} address")
            address = addresses[0]
            netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
            target = urlunsplit(parts._replace(netloc=netloc))
            timestamp = int(time.time())
            headers = {
                "host": parts.netloc.rpartition("@")[2],
                "content-type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": rules.signature_header(secrets, message_id, timestamp, body),
            }
            extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
            request = client.build_request(
                "POST", target, content=body, headers=headers, extensions=extensions
            )
            response = await client.send(request, stream=True)
            try:
                read = bytearray()
                async for chunk in response.aiter_raw():
                    read += chunk
                    if len(read) >= _READ_AT_MOST:
                        break
            finally:
                await response.aclose()
            return done(
                response.status_code,
                None,
                rules.excerpt(bytes(read)),
                response.headers.get("retry-after"),
            )
    except TimeoutError:
        return done(None, "timeout")
    except httpx.TimeoutException:
        return done(None, "timeout")
    except (httpx.HTTPError, OSError, ValueError) as exc:
        return done(None, "connection", type(exc).__name__)


@dataclass
class Deliverer:
    pool: asyncpg.Pool
    settings: Settings
    ids: PublicIds = field(init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _per_endpoint: dict[int, int] = field(default_factory=dict)
    _gates: dict[int, asyncio.Semaphore] = field(default_factory=dict)
    _clients: dict[int, httpx.AsyncClient] = field(default_factory=dict)
    _results: list[Result] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ids = PublicIds(self.settings.hashids_salt)
        self.wids = rules.WebhookIds(self.settings.hashids_salt)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)

    def _client(self, endpoint_id: int) -> httpx.AsyncClient:
        client = self._clients.get(endpoint_id)
        if client is None:
            if len(self._clients) >= 1000:  # endpoints seen lately; the rest reconnect
                idle = [e for e in self._clients if e not in self._per_endpoint]
                for e in idle[:500]:
                    asyncio.get_running_loop().create_task(self._clients.pop(e).aclose())
            client = self._clients[endpoint_id] = new_client(self.settings)
        return client

    async def __aenter__(self) -> Deliverer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ taking work

    async def start_due(self, now: datetime | None = None) -> int:
        """Take what is due (within the concurrency bounds) and start sending it."""
        s = self.settings
        free = s.webhook_concurrency - len(self._tasks)
        if free <= 0:
            return 0
        busy = [e for e, n in self._per_endpoint.items() if n >= s.webhook_endpoint_concurrency]
        at = now or datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            claimed = await repo.claim(
                conn,
                now=at,
                per_endpoint=s.webhook_endpoint_concurrency,
                limit=free,
                busy=busy,
                lease_until=at + timedelta(seconds=s.webhook_lease_seconds),
            )
            if not claimed:
                return 0
            pairs = sorted({(c.merchant_id, c.endpoint_id) for c in claimed})
            secrets = await repo.live_secrets_of(conn, pairs, datetime.now(UTC))
        deadline = time.monotonic() + s.webhook_lease_seconds
        for item in claimed:
            self._per_endpoint[item.endpoint_id] = self._per_endpoint.get(item.endpoint_id, 0) + 1
            task = asyncio.create_task(
                self._send(item, secrets.get(item.endpoint_id, []), deadline)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(claimed)

    async def _send(self, item: repo.Claimed, secrets: list[bytes], deadline: float) -> None:
        s = self.settings
        gate = self._gates.get(item.endpoint_id)
        if gate is None:
            gate = self._gates[item.endpoint_id] = asyncio.Semaphore(s.webhook_endpoint_concurrency)
        try:
            async with gate:  # at most webhook_endpoint_concurrency in flight per endpoint
                await self._send_now(item, secrets, deadline)
        finally:
            left = self._per_endpoint.get(item.endpoint_id, 1) - 1
            if left:
                self._per_endpoint[item.endpoint_id] = left
            else:
                self._per_endpoint.pop(item.endpoint_id, None)
                self._gates.pop(item.endpoint_id, None)

    async def _send_now(self, item: repo.Claimed, secrets: list[bytes], deadline: float) -> None:
        s = self.settings
        if time.monotonic() + s.webhook_timeout_seconds > deadline:
            return  # the lease ends before an answer could come: another take sends it
        message_id = self.ids.encode("event", item.event_id)
        body = msgspec.json.encode(
            Body(
                id=message_id,
                type=item.type,
                data=msgspec.Raw(item.data.encode()),
                created_at=item.created_at,
            )
        )
        outcome = await post(
            self._client(item.endpoint_id),
            url=item.url,
            live=item.live,
            message_id=message_id,
            body=body,
            secrets=secrets,
            time_limit=s.webhook_timeout_seconds,
        )
        self._results.append(Result(item, message_id, outcome))

    # ------------------------------------------------------------------ booking results

    async def flush(self, now: datetime | None = None) -> int:
        """Book the finished attempts in one transaction. On failure they stay for the next
        flush (the leases keep the deliveries from being taken again meanwhile)."""
        if not self._results:
            return 0
        results, self._results = self._results, []
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await book(conn, results=results, ids=self.wids, now=now)
        except BaseException:
            self._results = results + self._results
            raise
        return len(results)

    # ------------------------------------------------------------------ the loops

    async def drain(self, now: datetime | None = None) -> int:
        """One whole pass: send everything due now and book it. Returns the attempts made."""
        made = 0
        while True:
            started = await self.start_due(now)
            if self._tasks:
                await asyncio.wait(set(self._tasks))
            made += await self.flush(now)
            if not started:
                return made

    async def run(self) -> None:
        """Forever: book results, take due work, then wait until half the slots are free
        again or the interval passed (so takes and bookings go in batches, never one
        transaction per delivery), or, with nothing in flight, the interval."""
        interval = self.settings.webhook_interval_seconds
        half = max(1, self.settings.webhook_concurrency // 2)
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.flush()
                started = await self.start_due()
            except Exception as exc:  # the next turn tries again; leases keep the work safe
                log.warning("webhook_pass_failed", error=type(exc).__name__)
                started = 0
            if not self._tasks:
                if not started:
                    await asyncio.sleep(interval)
                continue
            deadline = loop.time() + interval
            while len(self._tasks) > half and (left := deadline - loop.time()) > 0:
                await asyncio.wait(
                    set(self._tasks), timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
            if not started and self._tasks and len(self._tasks) <= half:
                # Nothing was due: wait for a result (to book) or the interval.
                await asyncio.wait(
                    set(self._tasks),
                    timeout=max(0.0, deadline - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )


async def book(
    conn: asyncpg.Connection,
    *,
    results: Sequence[Result],
    ids: rules.WebhookIds,
    now: datetime | None = None,
) -> None:
    """Record attempts, move each delivery on its schedule, and keep endpoint health: a
    success stops the failure clock, a 410 disables at once, 5 days of failures disable."""
    at = now or datetime.now(UTC)
    attempts = []
    deliveries = []
    succeeded: set[tuple[int, int]] = set()
    failed: set[tuple[int, int]] = set()
    gone: set[tuple[int, int]] = set()
    for r in results:
        item, outcome = r.item, r.outcome
        pair = (item.merchant_id, item.endpoint_id)
        attempts.append(
            repo.AttemptIn(
                merchant_id=item.merchant_id,
                endpoint_id=item.endpoint_id,
                delivery_id=item.id,
                event_id=item.event_id,
                message_id=r.message_id,
                event_type=item.type,
                attempted_at=now or outcome.attempted_at,
                succeeded=outcome.succeeded,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
                response=outcome.response,
            )
        )
        if outcome.succeeded:
            succeeded.add(pair)
            deliveries.append((item.merchant_id, item.id, item.claim, "succeeded", None))
            continue
        failed.add(pair)
        if rules.gone(outcome.status_code):
            gone.add(pair)
            deliveries.append((item.merchant_id, item.id, item.claim, "failed", None))
            continue
        wait = rules.retry_after(outcome.retry_after, at)
        due = rules.next_attempt(item.attempts, at, wait_at_least=wait)
        status = "pending" if due else "failed"
        deliveries.append((item.merchant_id, item.id, item.claim, status, due))
    await repo.insert_attempts(conn, attempts)
    await repo.endpoints_succeeded(conn, sorted(succeeded))
    await repo.endpoints_failed(conn, sorted(failed - succeeded), at)
    disabled = await repo.disable(
        conn, sorted(gone), reason="gone", failing_before=at, at=at
    ) + await repo.disable(
        conn,
        sorted(failed - succeeded - gone),
        reason="failing",
        failing_before=at - rules.FAILING_DISABLES_AFTER,
        at=at,
    )
    await repo.record_deliveries(conn, deliveries)
    for endpoint in disabled:
        await announce_disabled(
            conn,
            ids=ids,
            endpoint=endpoint,
            reason="gone" if (endpoint.merchant_id, endpoint.id) in gone else "failing",
        )


async def announce_disabled(
    conn: asyncpg.Connection, *, ids: rules.WebhookIds, endpoint: repo.Disabled, reason: str
) -> None:
    """Keep what the endpoint would have got as failed (recoverable), and say so."""
    await repo.fail_pending(conn, endpoint.merchant_id, endpoint.id)
    public_id = ids.encode("webhook_endpoint", endpoint.id)
    await events.emit(
        conn,
        merchant_id=endpoint.merchant_id,
        type="webhook_endpoint.disabled",
        data={
            "endpoint_id": public_id,
            "reason": reason,
            "failing_since": endpoint.failing_since.isoformat().replace("+00:00", "Z")
            if endpoint.failing_since
            else None,
        },
    )
    log.warning("webhook_endpoint_disabled", endpoint_id=public_id, reason=reason)


async def deliver_due(
    pool: asyncpg.Pool, *, settings: Settings, now: datetime | None = None
) -> int:
    """Send every delivery due at `now` (default: now) and book the attempts; the number of
    attempts made. One deterministic pass for tests and commands."""
    async with Deliverer(pool, settings) as deliverer:
        return await deliverer.drain(now)
