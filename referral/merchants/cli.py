"""The command line's merchant and key commands: `referral merchants list | show | update`
and `referral keys create | list | revoke | roll`.

They call the same services as the HTTP API. A command that needs a merchant takes it as
`--merchant mer_…` or as one of its keys, `--key sk_…` (looked up like the API does); an
id that names no merchant is an error naming the fix, never an empty tenant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
import msgspec

from referral.lib.db import create_pool, migrate
from referral.lib.errors import InvalidInput
from referral.lib.ids import PublicIds
from referral.lib.pagination import Cursor
from referral.merchants import service
from referral.merchants.schemas import ApiKey, KeyCreate, KeyRoll, Merchant, MerchantUpdate
from referral.settings import Settings

T = TypeVar("T")


async def _in_transaction(
    settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    await migrate(settings.direct_database_url)
    pool = await create_pool(
        settings.database_url, pooling=settings.database_pooling, min_size=1, max_size=1
    )
    try:
        async with pool.acquire() as conn, conn.transaction():
            return await work(conn)
    finally:
        await pool.close()


def _ids(settings: Settings) -> PublicIds:
    return PublicIds(settings.hashids_salt)


def _show_merchant(merchant: Merchant) -> str:
    minimums = ", ".join(f"{c} {v}" for c, v in merchant.payout_minimums.items()) or "none"
    return "\n".join(
        [
            f"id               {merchant.id}",
            f"mode             {merchant.mode}",
            f"name             {merchant.name}",
            f"time zone        {merchant.time_zone}",
            f"payout minimums  {minimums} (minor units)",
        ]
    )


def _table(rows: list[tuple[str, ...]]) -> str:
    """Aligned columns; the last one (free text) is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(
            [*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]
        ).rstrip()
        for row in rows
    )


def _show_keys(keys: list[ApiKey]) -> str:
    def when(at: datetime | None) -> str:
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if at else "-"

    rows = [("id", "kind", "hint", "created", "last used", "revoked", "expires", "scopes", "label")]
    for key in keys:
        rows.append(
            (
                key.id,
                key.kind,
                key.hint,
                when(key.created_at),
                when(key.last_used_at),
                when(key.revoked_at),
                when(key.expires_at),
                ",".join(key.scopes) if key.scopes else ("all" if key.kind == "secret" else "-"),
                key.label,
            )
        )
    return _table(rows)


def parse_minimums(values: list[str]) -> dict[str, int | None]:
    """`EUR=5000` sets a minimum (minor units), `EUR=none` removes it."""
    minimums: dict[str, int | None] = {}
    for value in values:
        currency, sep, amount = value.partition("=")
        currency = currency.strip().upper()
        amount = amount.strip()
        if not sep or not currency:
            raise InvalidInput(f"--payout-minimum {value!r}: write CURRENCY=AMOUNT, e.g. EUR=5000")
        if amount.lower() == "none":
            minimums[currency] = None
        elif amount.isascii() and amount.isdigit() and len(amount) <= 14:
            minimums[currency] = int(amount)
        else:
            raise InvalidInput(
                f"--payout-minimum {value!r}: the amount is a whole number of minor units "
                "(EUR=5000 is 50.00 EUR), or `none` to remove the minimum"
            )
    return minimums


async def list_merchants(settings: Settings) -> None:
    async def work(conn: asyncpg.Connection) -> list[Merchant]:
        return await service.list_merchants(conn, ids=_ids(settings))

    merchants = await _in_transaction(settings, work)
    if not merchants:
        print("no merchants yet: create one with `referral merchants create --name …`")
        return
    rows = [("id", "mode", "time zone", "name")]
    rows += [(m.id, m.mode, m.time_zone, m.name) for m in merchants]
    print(_table(rows))


async def show_merchant(settings: Settings, merchant: str | None, key: str | None) -> None:
    ids = _ids(settings)

    async def work(conn: asyncpg.Connection) -> Merchant:
        caller = await service.resolve(conn, ids=ids, merchant=merchant, key=key)
        return await service.get_merchant(conn, ids=ids, caller=caller)

    print(_show_merchant(await _in_transaction(settings, work)))


async def update_merchant(
    settings: Settings,
    merchant: str | None,
    key: str | None,
    time_zone: str | None,
    minimums: list[str],
) -> None:
    ids = _ids(settings)
    if time_zone is None and not minimums:
        raise InvalidInput("nothing to change: give --time-zone and/or --payout-minimum")
    body: dict[str, object] = {}
    if time_zone is not None:
        body["time_zone"] = time_zone
    if minimums:
        body["payout_minimums"] = parse_minimums(minimums)
    changes = _checked(body, MerchantUpdate)

    async def work(conn: asyncpg.Connection) -> Merchant:
        caller = await service.resolve(conn, ids=ids, merchant=merchant, key=key)
        return await service.update_merchant(conn, ids=ids, caller=caller, data=changes)

    print(_show_merchant(await _in_transaction(settings, work)))


def _checked(body: dict[str, object], into: type[T]) -> T:
    """The API's checks, for the same request."""
    try:
        return msgspec.convert(body, into)
    except msgspec.ValidationError as exc:
        raise InvalidInput(str(exc).replace("`$.", "`")) from None


async def create_key(
    settings: Settings,
    merchant: str | None,
    key: str | None,
    kind: str,
    label: str,
    scopes: list[str] | None = None,
) -> str:
    ids = _ids(settings)
    body: dict[str, object] = {"kind": kind, "label": label}
    if scopes:
        body["scopes"] = scopes
    data = _checked(body, KeyCreate)

    async def work(conn: asyncpg.Connection) -> str:
        caller = await service.resolve(conn, ids=ids, merchant=merchant, key=key)
        created, _ = await service.add_key(conn, ids=ids, caller=caller, data=data)
        assert created.secret is not None  # a new key always has its secret
        return created.secret

    return await _in_transaction(settings, work)


def parse_duration(value: str) -> int:
    """`90s`, `15m`, `24h`, `7d` or plain seconds, as seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = value.strip().lower()
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    if not (number.isascii() and number.isdigit()) or len(number) > 9:
        raise InvalidInput(f"--grace {value!r}: write a duration such as 0, 90s, 15m, 24h or 7d")
    return int(number) * units[unit]


async def roll_key(
    settings: Settings, key_id: str, merchant: str | None, key: str | None, grace: str
) -> tuple[str, ApiKey]:
    """A new key for `key_id` (printed once); the old one works for `grace`."""
    ids = _ids(settings)
    data = _checked({"grace_period_seconds": parse_duration(grace)}, KeyRoll)

    async def work(conn: asyncpg.Connection) -> tuple[str, ApiKey]:
        owner = await _owner(conn, ids, key_id, merchant, key)
        rolled = await service.roll_key(conn, ids=ids, caller=owner, key_id=key_id, data=data)
        assert rolled.key.secret is not None  # a new key always has its secret
        return rolled.key.secret, rolled.replaced

    return await _in_transaction(settings, work)


async def _owner(
    conn: asyncpg.Connection, ids: PublicIds, key_id: str, merchant: str | None, key: str | None
) -> service.Caller:
    """The merchant of `key_id`; `--merchant`/`--key`, when given, must name the same one."""
    owner = await service.merchant_of_key(conn, ids=ids, key_id=key_id)
    if merchant or key:
        named = await service.resolve(conn, ids=ids, merchant=merchant, key=key)
        if named.merchant_id != owner.merchant_id:
            raise InvalidInput(
                f"{key_id} is not a key of that merchant: run `referral keys list` for its keys"
            )
    return owner


async def list_keys(settings: Settings, merchant: str | None, key: str | None) -> None:
    ids = _ids(settings)

    async def work(conn: asyncpg.Connection) -> list[ApiKey]:
        caller = await service.resolve(conn, ids=ids, merchant=merchant, key=key)
        keys: list[ApiKey] = []
        after = None
        while True:
            page = await service.list_keys(
                conn, ids=ids, caller=caller, cursor=Cursor(limit=100, after_id=after)
            )
            keys += page.data
            if not page.has_more:
                return keys
            after = ids.decode("key", page.data[-1].id)

    print(_show_keys(await _in_transaction(settings, work)))


async def revoke_key(
    settings: Settings, key_id: str, merchant: str | None, key: str | None
) -> None:
    """Revoke a key by its id; `--merchant`/`--key`, when given, must be its merchant's."""
    ids = _ids(settings)

    async def work(conn: asyncpg.Connection) -> ApiKey:
        owner = await _owner(conn, ids, key_id, merchant, key)
        return await service.revoke_key(conn, ids=ids, caller=owner, key_id=key_id)

    revoked = await _in_transaction(settings, work)
    print(f"{revoked.id} ({revoked.kind}, {revoked.hint}) is revoked")
    print(f"running servers refuse it within {service.KEY_CACHE_SECONDS} seconds (their key cache)")
