"""Recording changes and reading them back.

A service that makes a change a person would ask about later (a program edited, a reward
reversed, a key rolled) calls `record` in the change's own transaction, with the public
shapes of what changed before and after. Which calls must record, and as which action, is
the access table's (`referral/http/access.py`); a test holds every change route to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec
import structlog

from referral.audit import repo
from referral.audit.schemas import AuditActor, AuditEntry
from referral.lib.ids import PublicIds
from referral.lib.pagination import Cursor, Page

if TYPE_CHECKING:  # the merchants service records its key changes here
    from referral.merchants.service import Caller

_encoder = msgspec.json.Encoder(order="sorted")


def _actor(caller: Caller) -> tuple[str, int | None, str]:
    if caller.kind == "share_page":  # the advocate behind a share token, named by their id
        return "advocate", None, (caller.actor or "advocate")[:200]
    if caller.key_id is not None:
        return "key", caller.key_id, caller.key_hint or "key"
    if caller.actor is not None:
        return "console", None, caller.actor[:200]
    return "cli", None, "cli"


def changed_fields(before: Any, after: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The top-level fields that differ between two shapes of one object, as (before,
    after): an edit's audit row says what changed, not everything the object holds."""
    old, new = msgspec.to_builtins(before), msgspec.to_builtins(after)
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return {k: old.get(k) for k in keys}, {k: new.get(k) for k in keys}


def _json(value: Any) -> str | None:
    return None if value is None else _encoder.encode(value).decode()


async def record(
    conn: asyncpg.Connection,
    *,
    caller: Caller,
    action: str,
    subject_type: str,
    subject_id: str,
    before: Any = None,
    after: Any = None,
) -> None:
    """One append-only row for one change. `before`/`after` are structs or dicts as the API
    shows them, with no customer's personal data in them (erasure never touches this log)."""
    actor_type, key_id, actor = _actor(caller)
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    await repo.insert(
        conn,
        caller.merchant_id,
        actor_type=actor_type,
        key_id=key_id,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        before=_json(before),
        after=_json(after),
        request_id=request_id if isinstance(request_id, str) else None,
    )


def _entry(ids: PublicIds, row: repo.AuditRow) -> AuditEntry:
    return AuditEntry(
        id=ids.encode("audit_entry", row.id),
        created_at=row.created_at,
        actor=AuditActor(
            type=row.actor_type,  # type: ignore[arg-type]
            key_id=None if row.key_id is None else ids.encode("key", row.key_id),
            name=row.actor,
        ),
        action=row.action,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        before=None if row.before is None else msgspec.json.decode(row.before),
        after=None if row.after is None else msgspec.json.decode(row.after),
        request_id=row.request_id,
    )


async def list_entries(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    caller: Caller,
    cursor: Cursor,
    action: str | None = None,
    subject_type: str | None = None,
    subject_id: str | None = None,
    key_id: str | None = None,
) -> Page[AuditEntry]:
    rows = await repo.entries(
        conn,
        caller.merchant_id,
        cursor=cursor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        key_id=None if key_id is None else ids.decode("key", key_id),
    )
    rows, more = cursor.split(rows)
    return Page(data=[_entry(ids, row) for row in rows], has_more=more)
