"""Webhook endpoints: create, read, change, rotate their secret, test, resend and recover.
Sending the deliveries is `delivery.py`'s; the fan-out from events is the trigger of
sql/0011_webhooks.sql."""

from __future__ import annotations

import hashlib
import secrets as secrets_module
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import asyncpg
import msgspec
import structlog

from referral.audit import service as audit
from referral.lib.errors import Conflict, InvalidInput, NotFound
from referral.lib.ids import PublicIds
from referral.lib.pagination import Cursor, ListQuery, Page
from referral.merchants.service import Caller
from referral.settings import Settings
from referral.webhooks import delivery, repo, rules
from referral.webhooks.schemas import (
    EVENT_TYPES,
    Attempt,
    Endpoint,
    EndpointCreate,
    EndpointCreated,
    EndpointDeleted,
    EndpointUpdate,
    Recovered,
    RecoverRequest,
    Resent,
    SecretRotated,
    WebhookTest,
)

log = structlog.get_logger("referral.webhooks")

ROTATION_OVERLAP = timedelta(hours=24)


@lru_cache(maxsize=8)
def webhook_ids(salt: str) -> rules.WebhookIds:
    return rules.WebhookIds(salt)


def _endpoint_pk(ids: rules.WebhookIds, endpoint_id: str) -> int:
    found = ids.decode("webhook_endpoint", endpoint_id)
    if found is None:
        raise NotFound(
            f"no webhook endpoint with id {endpoint_id[:40]!r}", code="webhook_endpoint_not_found"
        )
    return found


def _check(url: str, event_types: list[str], live: bool) -> None:
    try:
        rules.check_url(url, live=live)
    except rules.UrlProblem as exc:
        raise InvalidInput(str(exc), code="invalid_webhook_url") from None
    if unknown := rules.unknown_patterns(event_types, EVENT_TYPES):
        raise InvalidInput(
            f"no event type matches {', '.join(unknown[:5])}; see the `webhooks` section of "
            "the OpenAPI document",
            code="unknown_event_type",
        )


def _endpoint(ids: rules.WebhookIds, row: repo.EndpointRow, caller: Caller) -> Endpoint:
    return Endpoint(
        id=ids.encode("webhook_endpoint", row.id),
        url=row.url,
        event_types=row.event_types,
        description=row.description,
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        disabled_at=row.disabled_at,
        failing_since=row.failing_since,
        created_at=row.created_at,
        updated_at=row.updated_at,
        livemode=caller.mode == "live",
    )


async def _row(
    conn: asyncpg.Connection,
    ids: rules.WebhookIds,
    caller: Caller,
    endpoint_id: str,
    *,
    lock: bool = False,
) -> repo.EndpointRow:
    row = await repo.get_endpoint(
        conn, caller.merchant_id, _endpoint_pk(ids, endpoint_id), lock=lock
    )
    if row is None:
        raise NotFound(
            f"no webhook endpoint with id {endpoint_id[:40]!r}", code="webhook_endpoint_not_found"
        )
    return row


def _enabled(row: repo.EndpointRow, endpoint_id: str) -> None:
    if not row.enabled:
        raise Conflict(
            f"webhook endpoint {endpoint_id} is disabled ({row.disabled_reason}); enable it "
            "first (PATCH enabled: true)",
            code="webhook_endpoint_disabled",
        )


async def create_endpoint(
    conn: asyncpg.Connection, *, salt: str, caller: Caller, data: EndpointCreate
) -> tuple[EndpointCreated, bool]:
    live = caller.mode == "live"
    _check(data.url, data.event_types, live)
    secret = rules.new_secret()
    row = await repo.insert_endpoint(
        conn,
        caller.merchant_id,
        data.url,
        data.description,
        list(dict.fromkeys(data.event_types)),
        data.enabled,
        secret,
    )
    ids = webhook_ids(salt)
    public_id = ids.encode("webhook_endpoint", row.id)
    log.info("webhook_endpoint_created", endpoint_id=public_id, url=rules.loggable_url(row.url))
    await _audit(conn, caller, "webhook_endpoint.created", public_id, None, row)
    return (
        EndpointCreated(
            id=public_id,
            url=row.url,
            event_types=row.event_types,
            description=row.description,
            enabled=row.enabled,
            created_at=row.created_at,
            livemode=live,
            secret=rules.show_secret(secret),
        ),
        True,
    )


async def get_endpoint(
    conn: asyncpg.Connection, *, salt: str, caller: Caller, endpoint_id: str
) -> Endpoint:
    ids = webhook_ids(salt)
    return _endpoint(ids, await _row(conn, ids, caller, endpoint_id), caller)


async def list_endpoints(
    conn: asyncpg.Connection, *, salt: str, caller: Caller, listing: ListQuery
) -> Page[Endpoint]:
    ids = webhook_ids(salt)
    cursor = _cursor(ids, "webhook_endpoint", listing)
    rows, more = cursor.split(await repo.list_endpoints(conn, caller.merchant_id, cursor))
    return Page(data=[_endpoint(ids, r, caller) for r in rows], has_more=more)


def _cursor(ids: rules.WebhookIds, kind: str, listing: ListQuery) -> Cursor:
    after = None
    if listing.starting_after:
        after = ids.decode(kind, listing.starting_after)
        if after is None:
            raise NotFound(
                f"no {kind.replace('_', ' ')} with id {listing.starting_after[:40]!r}",
                code=f"{kind}_not_found",
            )
    return Cursor(
        limit=listing.limit,
        after_id=after,
        created_from=listing.created_from,
        created_before=listing.created_before,
    )


async def update_endpoint(
    conn: asyncpg.Connection, *, salt: str, caller: Caller, endpoint_id: str, data: EndpointUpdate
) -> Endpoint:
    ids = webhook_ids(salt)
    row = await _row(conn, ids, caller, endpoint_id, lock=True)
    url = row.url if data.url is msgspec.UNSET else data.url
    types = row.event_types if data.event_types is msgspec.UNSET else data.event_types
    enabled = row.enabled if data.enabled is msgspec.UNSET else data.enabled
    description = row.description if data.description is msgspec.UNSET else data.description
    _check(url, types, caller.mode == "live")
    updated = await repo.update_endpoint(
        conn,
        caller.merchant_id,
        row.id,
        url=url,
        description=description,
        event_types=list(dict.fromkeys(types)),
        enabled=enabled,
    )
    if row.enabled and not enabled:
        await repo.fail_pending(conn, caller.merchant_id, row.id)  # kept, recoverable
    log.info("webhook_endpoint_updated", endpoint_id=endpoint_id, enabled=enabled)
    await _audit(conn, caller, "webhook_endpoint.updated", endpoint_id, row, updated)
    return _endpoint(ids, updated, caller)


def _audited_endpoint(row: repo.EndpointRow) -> dict[str, object]:
    """An endpoint as the audit log keeps it: its URL's origin and a digest of the whole
    (paths and queries may carry the shop's tokens; the digest still shows they changed)."""
    return {
        "url": rules.loggable_url(row.url),
        "url_digest": hashlib.sha256(row.url.encode()).hexdigest()[:12],
        "event_types": row.event_types,
        "description": row.description,
        "enabled": row.enabled,
    }


async def _audit(
    conn: asyncpg.Connection,
    caller: Caller,
    action: str,
    endpoint_id: str,
    before: repo.EndpointRow | None,
    after: repo.EndpointRow | None,
) -> None:
    if before is not None and after is not None:
        was, now = audit.changed_fields(_audited_endpoint(before), _audited_endpoint(after))
    else:
        was = None if before is None else _audited_endpoint(before)
        now = None if after is None else _audited_endpoint(after)
    await audit.record(
        conn,
        caller=caller,
        action=action,
        subject_type="webhook_endpoint",
        subject_id=endpoint_id,
        before=was,
        after=now,
    )


async def delete_endpoint(
    conn: asyncpg.Connection, *, salt: str, caller: Caller, endpoint_id: str
) -> EndpointDeleted:
    ids = webhook_ids(salt)
    row = await _row(conn, ids, caller, endpoint_id, lock=True)
    if not await repo.delete_endpoint(conn, caller.merchant_id, row.id):
        raise NotFound(
            f"no webhook endpoint with id {endpoint_id[:40]!r}", code="webhook_endpoint_not_found"
        )
    log.info("webhook_endpoint_deleted", endpoint_id=endpoint_id)
    await _audit(conn, caller, "webhook_endpoint.deleted", endpoint_id, row, None)
    return EndpointDeleted(id=endpoint_id)


async def rotate_secret(
    conn: asyncpg.Connection, *, salt: str, caller: Caller, endpoint_id: str
) -> SecretRotated:
    """A new secret; the current one signs beside it for 24 hours."""
    ids = webhook_ids(salt)
    row = await _row(conn, ids, caller, endpoint_id, lock=True)
    secret = rules.new_secret()
    until = datetime.now(UTC) + ROTATION_OVERLAP
    await repo.rotate_secret(conn, caller.merchant_id, row.id, secret, until)
    log.info("webhook_secret_rotated", endpoint_id=endpoint_id)
    await audit.record(
        conn,
        caller=caller,
        action="webhook_endpoint.secret_rotated",
        subject_type="webhook_endpoint",
        subject_id=endpoint_id,
        after={"previous_secret_expires_at": until},
    )
    return SecretRotated(
        endpoint_id=endpoint_id, secret=rules.show_secret(secret), previous_expires_at=until
    )


def _attempt(
    ids: rules.WebhookIds, events: PublicIds, endpoint_id: str, row: repo.AttemptRow
) -> Attempt:
    return Attempt(
        id=ids.encode("webhook_attempt", row.id),
        endpoint_id=endpoint_id or ids.encode("webhook_endpoint", row.endpoint_id),
        event_id=events.encode("event", row.event_id) if row.event_id else None,
        webhook_id=row.message_id,
        event_type=row.event_type,
        attempted_at=row.attempted_at,
        succeeded=row.succeeded,
        status_code=row.status_code,
        error=row.error,
        duration_ms=row.duration_ms,
        response=row.response,
    )


async def send_test(
    conn: asyncpg.Connection, *, settings: Settings, caller: Caller, endpoint_id: str
) -> Attempt:
    """Send a `webhook.test` now (not through the outbox: only this endpoint gets it) and
    answer how it went. Checked, signed and recorded like every delivery."""
    ids = webhook_ids(settings.hashids_salt)
    row = await _row(conn, ids, caller, endpoint_id)
    _enabled(row, endpoint_id)
    now = datetime.now(UTC)
    message_id = "evt_test_" + secrets_module.token_hex(8)
    payload = WebhookTest(
        endpoint_id=endpoint_id, message="A test from referral: this endpoint receives webhooks."
    )
    body = msgspec.json.encode(
        delivery.Body(
            id=message_id,
            type="webhook.test",
            data=msgspec.Raw(msgspec.json.encode(payload)),
            created_at=now,
        )
    )
    async with delivery.new_client(settings) as client:
        outcome = await delivery.post(
            client,
            url=row.url,
            live=caller.mode == "live",
            message_id=message_id,
            body=body,
            secrets=await repo.live_secrets(conn, caller.merchant_id, row.id, now),
            time_limit=settings.webhook_timeout_seconds,
        )
    attempt = repo.AttemptIn(
        merchant_id=caller.merchant_id,
        endpoint_id=row.id,
        delivery_id=None,
        event_id=None,
        message_id=message_id,
        event_type="webhook.test",
        attempted_at=outcome.attempted_at,
        succeeded=outcome.succeeded,
        status_code=outcome.status_code,
        error=outcome.error,
        duration_ms=outcome.duration_ms,
        response=outcome.response,
    )
    (attempt_pk,) = await repo.insert_attempts(conn, [attempt])
    return _attempt(
        ids,
        PublicIds(settings.hashids_salt),
        endpoint_id,
        repo.AttemptRow(
            id=attempt_pk,
            **{f: getattr(attempt, f) for f in repo.AttemptRow.__struct_fields__ if f != "id"},
        ),
    )


async def resend(
    conn: asyncpg.Connection,
    *,
    salt: str,
    events: PublicIds,
    caller: Caller,
    endpoint_id: str,
    event_id: str,
) -> Resent:
    """Deliver the event to the endpoint again, now, under the same webhook-id."""
    ids = webhook_ids(salt)
    row = await _row(conn, ids, caller, endpoint_id)
    _enabled(row, endpoint_id)
    event_pk = events.decode("event", event_id)
    if not await repo.event_exists(conn, caller.merchant_id, event_pk):
        raise NotFound(f"no event with id {event_id[:40]!r}", code="event_not_found")
    await repo.resend(conn, caller.merchant_id, row.id, event_pk)
    log.info("webhook_resent", endpoint_id=endpoint_id, event_id=event_id)
    await audit.record(
        conn,
        caller=caller,
        action="webhook_event.resent",
        subject_type="event",
        subject_id=event_id,
        after={"endpoint_id": endpoint_id},
    )
    return Resent(endpoint_id=endpoint_id, event_id=event_id)


async def recover(
    conn: asyncpg.Connection, *, salt: str, caller: Caller, endpoint_id: str, data: RecoverRequest
) -> Recovered:
    """After an outage: every failed delivery of the window is due again now."""
    ids = webhook_ids(salt)
    row = await _row(conn, ids, caller, endpoint_id)
    _enabled(row, endpoint_id)
    until = data.until or datetime.now(UTC)
    if data.since.tzinfo is None or until.tzinfo is None:
        raise InvalidInput("give times with a time zone", code="invalid_time_range")
    if data.since >= until:
        raise InvalidInput("`since` must be before `until`", code="invalid_time_range")
    count = await repo.recover(conn, caller.merchant_id, row.id, data.since, until)
    log.info("webhook_recovered", endpoint_id=endpoint_id, deliveries=count)
    await audit.record(
        conn,
        caller=caller,
        action="webhook_endpoint.recovered",
        subject_type="webhook_endpoint",
        subject_id=endpoint_id,
        after={"since": data.since, "until": until, "deliveries": count},
    )
    return Recovered(endpoint_id=endpoint_id, since=data.since, until=until, deliveries=count)


async def list_attempts(
    conn: asyncpg.Connection,
    *,
    salt: str,
    events: PublicIds,
    caller: Caller,
    listing: ListQuery,
    endpoint_id: str | None = None,
    event_id: str | None = None,
) -> Page[Attempt]:
    """Attempts of one endpoint, or of one event (to every endpoint), oldest first."""
    ids = webhook_ids(salt)
    endpoint_pk = None
    if endpoint_id is not None:
        endpoint_pk = (await _row(conn, ids, caller, endpoint_id)).id
    event_pk = None
    if event_id is not None:
        event_pk = events.decode("event", event_id)
        if not await repo.event_exists(conn, caller.merchant_id, event_pk):
            raise NotFound(f"no event with id {event_id[:40]!r}", code="event_not_found")
    cursor = _cursor(ids, "webhook_attempt", listing)
    rows, more = cursor.split(
        await repo.list_attempts(
            conn, caller.merchant_id, cursor, endpoint_id=endpoint_pk, event_id=event_pk
        )
    )
    return Page(data=[_attempt(ids, events, endpoint_id or "", r) for r in rows], has_more=more)


async def forget_before(
    conn: asyncpg.Connection, *, merchant_id: int, before: datetime
) -> tuple[int, int]:
    """The retention job's part here: attempts made before `before`, and deliveries that
    finished before it, go (the events themselves stay in the outbox; a resend makes a new
    delivery). Answers (attempts, deliveries) deleted."""
    return await repo.forget_before(conn, merchant_id, before)


async def outbox_lag_seconds(conn: asyncpg.Connection) -> float:
    """How long the most overdue delivery has been due and not sent (0: none)."""
    oldest = await repo.oldest_undelivered(conn)
    return 0.0 if oldest is None else max(0.0, (datetime.now(UTC) - oldest).total_seconds())


async def erase_customer(
    conn: asyncpg.Connection, *, merchant_id: int, event_ids: list[int], emails: list[str]
) -> int:
    """Receivers' answers that may echo an erased person (referral/customers/): those to
    the events an erasure scrubbed, and those holding one of the person's `emails`."""
    return await repo.scrub_attempts(conn, merchant_id, event_ids, [e.lower() for e in emails])
