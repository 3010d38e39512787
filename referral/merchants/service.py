"""Merchants and their API keys.

A merchant is one tenant in one mode: a shop's live merchant and its test-mode twin share an
account but nothing else, so test data can never leak into live figures. Keys are random
(`secrets`), shown once, stored as SHA-256.

The app caches an authenticated key for `KEY_CACHE_SECONDS`: a revoked key stops working at
once on the instance that revoked it, and within that time on every other instance.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg
import msgspec

from referral.analytics import service as analytics
from referral.audit import service as audit
from referral.lib import money
from referral.lib.errors import Conflict, InvalidInput, NotFound, Unauthorized
from referral.lib.ids import PublicIds
from referral.lib.pagination import Cursor, Page
from referral.merchants import repo
from referral.merchants.schemas import (
    ApiKey,
    ApiKeyCreated,
    CallingKey,
    KeyCreate,
    KeyRoll,
    KeyRolled,
    MerchantUpdate,
)
from referral.merchants.schemas import Merchant as MerchantView

KEY_KINDS = {"secret": "sk", "publishable": "pk"}
KEY_CACHE_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Merchant:
    id: int
    mode: str


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the merchant the key belongs to, what kind of key it is and what it
    may do, or the person in the console, or the command line (no key)."""

    merchant_id: int
    mode: str
    kind: str  # secret | publishable
    key_id: int | None = None  # None for the console and the command line, which need no key
    scopes: frozenset[str] | None = None  # None: unrestricted
    expires_at: datetime | None = None  # a rolled key's end of grace
    actor: str | None = None  # the console's person; None: the key, or the command line
    key_hint: str | None = None  # how the audit log names the key (never the key itself)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class KeyCacheLike(Protocol):
    def forget(self, key_hash: bytes) -> None: ...


def hash_key(raw: str) -> bytes:
    return hashlib.sha256(raw.encode()).digest()


def new_raw_key(kind: str, mode: str) -> str:
    return f"{KEY_KINDS[kind]}_{mode}_{secrets.token_urlsafe(24)}"


async def create_merchant(conn: asyncpg.Connection, *, name: str) -> dict[str, Merchant]:
    """A live merchant and its test twin, in one transaction."""
    account_id = uuid.uuid4()
    async with conn.transaction():
        return {
            mode: Merchant(await repo.insert_merchant(conn, account_id, mode, name), mode)
            for mode in ("live", "test")
        }


async def create_key(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    kind: str,
    label: str = "",
    raw: str | None = None,
    scopes: list[str] | None = None,
) -> str:
    """Create a key and return it; the raw key is never stored. `raw` lets dev reuse one."""
    merchant = await repo.merchant_by_id(conn, merchant_id)
    if merchant is None:
        raise LookupError(f"no merchant {merchant_id}")
    raw = raw or new_raw_key(kind, merchant.mode)
    await repo.insert_key(conn, merchant_id, kind, hash_key(raw), _hint(raw), label, scopes)
    return raw


def _hint(raw: str) -> str:
    return raw[:8] + "…" + raw[-4:]


async def authenticate(conn: asyncpg.Connection, *, raw: str) -> Caller | None:
    row = await repo.key_by_hash(conn, hash_key(raw))
    if row is None:
        return None
    return Caller(
        merchant_id=row.merchant_id,
        mode=row.mode,
        kind=row.kind,
        key_id=row.id,
        scopes=None if row.scopes is None else frozenset(row.scopes),
        expires_at=row.expires_at,
        key_hint=row.key_hint,
    )


# --- the merchant: who am I, and its settings ---


def check_time_zone(name: str) -> None:
    """An IANA zone name, spelled as the tz database does (`Europe/Stockholm`)."""
    if name not in _zone_names():
        raise InvalidInput(
            f"time_zone: {name[:64]!r} is not an IANA time zone name (e.g. Europe/Stockholm, "
            "America/New_York, UTC)",
            code="invalid_time_zone",
            field="time_zone",
        )


@functools.cache
def _zone_names() -> frozenset[str]:
    # Less what are files of the tz database but not zones: the machine's own, a placeholder.
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory", "posixrules"})


def _merchant(ids: PublicIds, row: repo.SettingsRow, key: CallingKey | None = None) -> MerchantView:
    return MerchantView(
        id=ids.encode("merchant", row.id),
        mode=row.mode,
        livemode=row.mode == "live",
        name=row.name,
        time_zone=row.time_zone,
        payout_minimums=dict(sorted(msgspec.json.decode(row.payout_minimums).items())),
        key=key or CallingKey(id=None, kind="secret", hint=None),
    )


async def _calling_key(conn: asyncpg.Connection, ids: PublicIds, caller: Caller) -> CallingKey:
    row = None
    if caller.key_id is not None:
        row = await repo.key_by_id(conn, caller.merchant_id, caller.key_id)
    if row is None:
        return CallingKey(id=None, kind=caller.kind, hint=None)
    return CallingKey(id=ids.encode("key", row.id), kind=row.kind, hint=row.key_hint)


async def get_merchant(conn: asyncpg.Connection, *, ids: PublicIds, caller: Caller) -> MerchantView:
    """Who am I: the caller's merchant, its settings and the key the call was made with."""
    row = await repo.settings(conn, caller.merchant_id)
    if row is None:  # the key outlived its merchant: nothing to show
        raise NotFound("this key's merchant no longer exists", code="merchant_not_found")
    return _merchant(ids, row, await _calling_key(conn, ids, caller))


async def update_merchant(
    conn: asyncpg.Connection, *, ids: PublicIds, caller: Caller, data: MerchantUpdate
) -> MerchantView:
    """Change the time zone and the payout minimums; what is left out stays as it is."""
    time_zone = None
    if data.time_zone is not msgspec.UNSET:
        check_time_zone(data.time_zone)
        if not await repo.time_zone_known(conn, data.time_zone):
            raise InvalidInput(
                f"time_zone: {data.time_zone!r} is not known to this server's database "
                "(its time zone data is older): pick another name for the same zone",
                code="invalid_time_zone",
                field="time_zone",
            )
        time_zone = data.time_zone
    before = await repo.settings(conn, caller.merchant_id)
    minimums = {} if data.payout_minimums is msgspec.UNSET else data.payout_minimums
    for currency in minimums:
        if not money.is_currency(currency):
            raise InvalidInput(
                f"payout_minimums.{currency}: unknown currency {currency}",
                code="unknown_currency",
                field=f"payout_minimums.{currency}",
            )
    row = await repo.update_settings(
        conn,
        caller.merchant_id,
        time_zone=time_zone,
        set_minimums=msgspec.json.encode(
            {c: v for c, v in minimums.items() if v is not None}
        ).decode(),
        drop_minimums=sorted(c for c, v in minimums.items() if v is None),
    )
    if row is None or before is None:
        raise NotFound("this key's merchant no longer exists", code="merchant_not_found")
    if time_zone is not None and time_zone != before.time_zone:
        # Analytics buckets are the merchant's days: they are counted again in the new zone.
        await analytics.restate(conn, merchant_id=caller.merchant_id)
    changed = _merchant(ids, row, await _calling_key(conn, ids, caller))
    await audit.record(
        conn,
        caller=caller,
        action="merchant.updated",
        subject_type="merchant",
        subject_id=changed.id,
        before=_settings_seen(_merchant(ids, before)),
        after=_settings_seen(changed),
    )
    return changed


def _settings_seen(merchant: MerchantView) -> dict[str, object]:
    return {"time_zone": merchant.time_zone, "payout_minimums": merchant.payout_minimums}


@dataclass(frozen=True, slots=True)
class MerchantName:
    id: int
    name: str
    mode: str


async def named(conn: asyncpg.Connection, *, merchant_id: int) -> MerchantName | None:
    """A merchant's name and mode (the console's header), or None when it is gone."""
    row = await repo.merchant_by_id(conn, merchant_id)
    return None if row is None else MerchantName(row.id, row.name, row.mode)


async def twin(conn: asyncpg.Connection, *, merchant_id: int) -> MerchantName | None:
    """The same account in the other mode: a live merchant's test twin, or its live one."""
    row = await repo.twin(conn, merchant_id)
    return None if row is None else MerchantName(row.id, row.name, row.mode)


async def list_merchants(conn: asyncpg.Connection, *, ids: PublicIds) -> list[MerchantView]:
    """Every merchant of the deployment (the command line; no key names them all)."""
    return [_merchant(ids, row) for row in await repo.all_merchants(conn)]


async def merchant_ids(conn: asyncpg.Connection) -> list[int]:
    """Every merchant's internal id, for the jobs that visit each (retention)."""
    return [row.id for row in await repo.all_merchants(conn)]


async def resolve(
    conn: asyncpg.Connection, *, ids: PublicIds, merchant: str | None, key: str | None
) -> Caller:
    """The merchant a command names, by id (`mer_…`) or by one of its keys (`sk_…`), checked
    to exist: a wrong id is an error, never an empty tenant."""
    if key:
        caller = await authenticate(conn, raw=key.strip())
        if caller is None:
            raise Unauthorized(
                "this API key is not valid (unknown or revoked): check it, or name the "
                "merchant with --merchant (see `referral merchants list`)",
                code="invalid_api_key",
            )
        return Caller(merchant_id=caller.merchant_id, mode=caller.mode, kind="secret")
    if not merchant:
        raise InvalidInput("name the merchant with --merchant mer_… or --key sk_…")
    unknown = NotFound(
        f"no merchant {merchant[:40]}: run `referral merchants list` to see the ids",
        code="merchant_not_found",
    )
    try:
        merchant_id = ids.decode("merchant", merchant.strip())
    except NotFound:
        raise unknown from None
    row = await repo.merchant_by_id(conn, merchant_id)
    if row is None:
        raise unknown
    return Caller(merchant_id=row.id, mode=row.mode, kind="secret")


# --- API keys ---


def _key(ids: PublicIds, mode: str, row: repo.ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=ids.encode("key", row.id),
        kind=row.kind,  # type: ignore[arg-type]
        label=row.label,
        hint=row.key_hint,
        livemode=mode == "live",
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        scopes=row.scopes,  # type: ignore[arg-type]
        expires_at=row.expires_at,
        replaced_by=None if row.replaced_by is None else ids.encode("key", row.replaced_by),
    )


async def _record_key_change(
    conn: asyncpg.Connection, caller: Caller, action: str, before: ApiKey | None, after: ApiKey
) -> None:
    """A key's audit row: what it may do and whether it works, not its use (nor its secret)."""

    def seen(key: ApiKey) -> dict[str, object]:
        return {
            "kind": key.kind,
            "label": key.label,
            "hint": key.hint,
            "scopes": key.scopes,
            "revoked_at": key.revoked_at,
            "expires_at": key.expires_at,
            "replaced_by": key.replaced_by,
        }

    await audit.record(
        conn,
        caller=caller,
        action=action,
        subject_type="api_key",
        subject_id=after.id,
        before=None if before is None else seen(before),
        after=seen(after),
    )


def _created(key: ApiKey, secret: str) -> ApiKeyCreated:
    return ApiKeyCreated(**msgspec.structs.asdict(key), secret=secret)


async def add_key(
    conn: asyncpg.Connection, *, ids: PublicIds, caller: Caller, data: KeyCreate
) -> tuple[ApiKeyCreated, bool]:
    """A new key of the caller's merchant, shown with its secret this once."""
    if data.kind == "publishable" and data.scopes is not None:
        raise InvalidInput(
            "scopes: a publishable key reads public data only and takes no scopes",
            code="publishable_key_scopes",
            field="scopes",
        )
    scopes = None if data.scopes is None else sorted(set(data.scopes), key=_SCOPE_ORDER.index)
    raw = new_raw_key(data.kind, caller.mode)
    key_id = await repo.insert_key(
        conn, caller.merchant_id, data.kind, hash_key(raw), _hint(raw), data.label, scopes
    )
    row = await repo.key_by_id(conn, caller.merchant_id, key_id)
    assert row is not None  # inserted just now, in this transaction
    key = _key(ids, caller.mode, row)
    await _record_key_change(conn, caller, "api_key.created", None, key)
    return _created(key, raw), True


_SCOPE_ORDER = ["checkout", "finance", "read", "admin"]


async def _managed_key(
    conn: asyncpg.Connection, ids: PublicIds, caller: Caller, key_id: str
) -> repo.ApiKeyRow:
    """One of the caller's merchant's keys, with the merchant locked: key changes of one
    merchant happen one at a time, so two cannot both pass the "last admin key" check."""
    internal = ids.decode("key", key_id)
    await repo.lock_merchant(conn, caller.merchant_id)
    row = await repo.key_by_id(conn, caller.merchant_id, internal)
    if row is None:
        raise NotFound(f"no key with id {key_id[:40]!r}", code="key_not_found")
    return row


async def _would_strand(conn: asyncpg.Connection, caller: Caller, row: repo.ApiKeyRow) -> bool:
    """Whether ending this key leaves no key that can manage keys (unrestricted or admin)."""
    manages = row.kind == "secret" and (row.scopes is None or "admin" in row.scopes)
    lasting = row.revoked_at is None and row.expires_at is None
    return (
        manages
        and lasting
        and not await repo.other_lasting_admin_keys(conn, caller.merchant_id, row.id)
    )


async def list_keys(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    caller: Caller,
    kind: str | None = None,
    cursor: Cursor,
) -> Page[ApiKey]:
    rows = await repo.list_keys(conn, caller.merchant_id, kind=kind, cursor=cursor)
    rows, more = cursor.split(rows)
    return Page(data=[_key(ids, caller.mode, r) for r in rows], has_more=more)


async def revoke_key(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    caller: Caller,
    key_id: str,
    cache: KeyCacheLike | None = None,
) -> ApiKey:
    """Revoke one of the merchant's keys (again: no change). The merchant's last lasting key
    that can manage keys cannot be revoked: nothing could then manage the merchant."""
    row = await _managed_key(conn, ids, caller, key_id)
    if row.revoked_at is not None:
        return _key(ids, caller.mode, row)
    if await _would_strand(conn, caller, row):
        raise Conflict(
            "this is the merchant's last active secret key that can manage keys (unrestricted "
            "or admin): create another (`referral keys create --kind secret`) before revoking "
            "this one",
            code="last_secret_key",
        )
    revoked = await repo.revoke_key(conn, caller.merchant_id, row.id)
    if revoked is None:  # revoked meanwhile outside the API (in SQL): show it as it is now
        revoked = await repo.key_by_id(conn, caller.merchant_id, row.id) or row
    if cache is not None:
        cache.forget(revoked.key_hash)
    key = _key(ids, caller.mode, revoked)
    await _record_key_change(conn, caller, "api_key.revoked", _key(ids, caller.mode, row), key)
    return key


async def roll_key(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    caller: Caller,
    key_id: str,
    data: KeyRoll,
    cache: KeyCacheLike | None = None,
) -> KeyRolled:
    """A new key with the old one's kind, label and scopes; the old one works for the grace
    period, then is refused like a revoked key. A key is rolled once: roll its successor."""
    row = await _managed_key(conn, ids, caller, key_id)
    if row.revoked_at is not None:
        raise Conflict("this key is revoked: create a new key instead", code="key_revoked")
    if row.replaced_by is not None:
        successor = ids.encode("key", row.replaced_by)
        raise Conflict(
            f"this key was already rolled (replaced by {successor}): roll that one",
            code="key_already_rolled",
        )
    raw = new_raw_key(row.kind, caller.mode)
    new_id = await repo.insert_key(
        conn, caller.merchant_id, row.kind, hash_key(raw), _hint(raw), row.label, row.scopes
    )
    old = await repo.roll_key(
        conn,
        caller.merchant_id,
        row.id,
        successor=new_id,
        grace_seconds=data.grace_period_seconds,
    )
    new = await repo.key_by_id(conn, caller.merchant_id, new_id)
    assert new is not None  # inserted just now, in this transaction
    if cache is not None and data.grace_period_seconds == 0:
        cache.forget(old.key_hash)
    rolled = KeyRolled(
        key=_created(_key(ids, caller.mode, new), raw), replaced=_key(ids, caller.mode, old)
    )
    before = _key(ids, caller.mode, row)
    await _record_key_change(conn, caller, "api_key.rolled", before, rolled.replaced)
    return rolled


async def merchant_of_key(conn: asyncpg.Connection, *, ids: PublicIds, key_id: str) -> Caller:
    """The merchant a key id belongs to, for the command line, which knows only the id."""
    unknown = NotFound(
        f"no key {key_id[:40]}: run `referral keys list --merchant mer_…` to see the ids",
        code="key_not_found",
    )
    try:
        internal = ids.decode("key", key_id.strip())
    except NotFound:
        raise unknown from None
    merchant_id = await repo.merchant_of_key(conn, internal)
    row = None if merchant_id is None else await repo.merchant_by_id(conn, merchant_id)
    if row is None:
        raise unknown
    return Caller(merchant_id=row.id, mode=row.mode, kind="secret")
