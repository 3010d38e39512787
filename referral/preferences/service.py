"""The preference centre: how a customer wants to be contacted (channels), about what
(topics), and their birthday; set by the shop's backend or by the advocate on their share
page. Every consent given or withdrawn is kept with its time and who gave it; every
advocate-side event carries the preferences as they stand."""

from __future__ import annotations

import asyncpg

from referral.customers.schemas import Subject, Tombstones
from referral.lib.errors import NotFound
from referral.merchants.service import Caller
from referral.preferences import repo, rules
from referral.preferences.schemas import Consent, Preferences, PreferencesSet


def _by(caller: Caller) -> str:
    return "advocate" if caller.kind == "share_page" else "key"


async def get(conn: asyncpg.Connection, *, merchant_id: int, customer_id: str) -> Preferences:
    """Their preferences (a customer who never set any: no channel, no topic)."""
    row = await repo.get(conn, merchant_id, customer_id)
    consents = await repo.consents(conn, merchant_id, customer_id) if row else []
    return Preferences(
        customer_id=customer_id,
        channels=row.channels if row else [],
        topics=row.topics if row else [],
        birthday=row.birthday if row else None,
        updated_at=row.updated_at if row else None,
        consents=[Consent(consent=c.consent, given=c.given, by=c.by, at=c.at) for c in consents],
    )


async def get_set(conn: asyncpg.Connection, *, merchant_id: int, customer_id: str) -> Preferences:
    """Their preferences as set (404 when neither the shop nor they ever set any)."""
    if await repo.get(conn, merchant_id, customer_id) is None:
        raise NotFound("no preferences were set for this customer", code="preferences_not_found")
    return await get(conn, merchant_id=merchant_id, customer_id=customer_id)


async def set_preferences(
    conn: asyncpg.Connection, *, caller: Caller, customer_id: str, data: PreferencesSet
) -> Preferences:
    """Replace them; each consent given or withdrawn is added to the record."""
    before = await repo.get(conn, caller.merchant_id, customer_id, lock=True)
    old = rules.consents(before.channels, before.topics) if before else set()
    channels, topics = sorted(set(data.channels)), sorted(set(data.topics))
    await repo.upsert(
        conn, caller.merchant_id, customer_id, channels, topics, data.birthday, _by(caller)
    )
    await repo.insert_consents(
        conn,
        caller.merchant_id,
        customer_id,
        rules.changes(old, rules.consents(channels, topics)),
        _by(caller),
    )
    return await get(conn, merchant_id=caller.merchant_id, customer_id=customer_id)


async def for_event(
    conn: asyncpg.Connection, *, merchant_id: int, customer_id: str
) -> dict[str, list[str]]:
    """What an event about the customer carries: their channels and topics now."""
    row = await repo.get(conn, merchant_id, customer_id)
    return {"channels": row.channels if row else [], "topics": row.topics if row else []}


async def birthdays(
    conn: asyncpg.Connection, *, merchant_id: int, month: int, day: int
) -> list[repo.PreferencesRow]:
    return await repo.birthdays(conn, merchant_id, month, day)


# --- a customer's data rights (referral/customers/) ---------------------------------------


async def erase_customer(
    conn: asyncpg.Connection, *, subject: Subject, tombstones: Tombstones
) -> None:
    """Their rows name the erasure's tombstone from now on; every number stays."""
    await repo.erase(conn, subject.merchant_id, subject.customer_id, tombstones.customer_id)
