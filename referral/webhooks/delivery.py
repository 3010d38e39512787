"""The webhook sender: takes due deliveries, posts them, records every attempt.

`Deliverer` is what a running app keeps (one per process, started in `app.py`): one pooled
`aiohttp.ClientSession` that follows no redirect and trusts no proxy from the environment, at
most `webhook_concurrency` requests in flight and `webhook_endpoint_concurrency` per
endpoint. (aiohttp rather than httpx: its C parser and flat pool cost about 0.2 ms of CPU per
delivery where httpx took about 3 ms, which capped one worker near 300 deliveries/s.)

Its loop takes due deliveries (`repo.claim`: FOR UPDATE SKIP LOCKED, leased), sends each as
its own task, and books finished results in batches; it never waits for a slow
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

import aiohttp
import asyncpg
import msgspec
import structlog

from referral.events import service as events
from referral.lib.ids import PublicIds
from referral.settings import Settings
from referral.webhooks import repo, rules

log = structlog.get_logger("referral.webhooks")

# Deliveries taken ahead: each endpoint may have up to this many times its concurrency taken
# into the process (waiting at its gate), so that one take and one booking serve dozens of
# deliveries, not one each. Bounded by the lease: the last of them still starts in time,
# AHEAD * timeout (60 s) <= lease - timeout (75 s) at the defaults.
AHEAD = 4

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


def new_client(settings: Settings, connections: int | None = None) -> aiohttp.ClientSession:
    """A pooled session that follows no redirect and takes no proxy from the environment.
    Its pool is keyed by address, port, TLS and SNI name, so two endpoints behind one
    address never share a TLS connection made for the other's name."""
    connector = aiohttp.TCPConnector(
        limit=connections or settings.webhook_concurrency,
        limit_per_host=0,  # per endpoint is bounded by the sender's own gates
        use_dns_cache=False,  # every request goes to an address checked just before
    )
    return aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        timeout=aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds),
        headers={"User-Agent": USER_AGENT},
        cookie_jar=aiohttp.DummyCookieJar(),  # a receiver's cookies never ride to another
        raise_for_status=False,
    )


async def post(
    client: aiohttp.ClientSession,
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
                "Host": parts.netloc.rpartition("@")[2],
                "Content-Type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": rules.signature_header(secrets, message_id, timestamp, body),
            }
            async with client.post(
                target,
                data=body,
                headers=headers,
                allow_redirects=False,
                server_hostname=host if parts.scheme == "https" else None,
            ) as response:
                read = bytearray()
                while len(read) < _READ_AT_MOST:
                    chunk = await response.content.readany()
                    if not chunk:
                        break
                    read += chunk
                return done(
                    response.status,
                    None,
                    rules.excerpt(bytes(read[:_READ_AT_MOST])),
                    response.headers.get("Retry-After"),
                )
    except TimeoutError:
        return done(None, "timeout")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return done(None, "connection", type(exc).__name__)


@dataclass
class Deliverer:
    pool: asyncpg.Pool
    settings: Settings
    ids: PublicIds = field(init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _per_endpoint: dict[int, int] = field(default_factory=dict)
    _gates: dict[int, asyncio.Semaphore] = field(default_factory=dict)
    _session: aiohttp.ClientSession | None = None
    _results: list[Result] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ids = PublicIds(self.settings.hashids_salt)
        self.wids = rules.WebhookIds(self.settings.hashids_salt)
        # In flight in all: taken-ahead work waits here, not inside an attempt's time limit.
        self._in_flight = asyncio.Semaphore(self.settings.webhook_concurrency)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made in the running loop, on first use
            self._session = new_client(self.settings)
        return self._session

    async def __aenter__(self) -> Deliverer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ taking work

    async def start_due(self, now: datetime | None = None) -> int:
        """Take what is due (within the concurrency bounds) and start sending it."""
        s = self.settings
        free = s.webhook_concurrency * AHEAD - len(self._tasks)
        if free <= 0:
            return 0
        # Half the backlog per take and endpoint, and no take for an endpoint holding more:
        # at most AHEAD * its concurrency taken at once.
        per_endpoint = max(1, s.webhook_endpoint_concurrency * AHEAD // 2)
        busy = [e for e, n in self._per_endpoint.items() if n > per_endpoint]
        at = now or datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            claimed = await repo.claim(
                conn,
                now=at,
                per_endpoint=per_endpoint,
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
            async with gate, self._in_flight:  # per endpoint, then in all
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
            self._client(),
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
        """Forever: book results, take due work, then wait until half of what is in flight
        has finished or the interval passed, so takes and bookings go in batches (never one
        transaction per delivery) while a lone event is booked as soon as it is answered."""
        interval = self.settings.webhook_interval_seconds
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
            settled = len(self._tasks) // 2
            deadline = loop.time() + interval
            while len(self._tasks) > settled and (left := deadline - loop.time()) > 0:
                await asyncio.wait(
                    set(self._tasks), timeout=left, return_when=asyncio.FIRST_COMPLETED
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
