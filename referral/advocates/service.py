"""Advocates: a customer who refers, with their code, link, share links and QR codes.

An advocate exists once per program and customer; asking for one creates it if needed, so
a shop can call this on every page view of its "refer a friend" page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import asyncpg
import structlog

from referral.advocates import repo
from referral.advocates.schemas import (
    Advocate,
    AdvocateImported,
    AdvocateUpsert,
    CodeInfo,
    ImportedAdvocate,
    QrLinks,
)
from referral.audit import service as audit
from referral.codes.codec import CodeCodec, VanityCodeError, lookup_key
from referral.customers.schemas import ExportedAdvocate, ExportedCode, Subject, Tombstones
from referral.events import service as events
from referral.experiments import service as experiments
from referral.fraud import service as fraud
from referral.fraud.signals import parse_ip
from referral.lib.emails import normalise_email, payout_email_problem
from referral.lib.errors import Conflict, InvalidInput, NotFound
from referral.lib.pagination import Cursor, Page
from referral.merchants.service import Caller
from referral.programs import rules as lifecycle
from referral.runtime import Runtime

log = structlog.get_logger("referral.advocates")

SHARE_CHANNELS = ("whatsapp", "email", "sms", "x", "facebook", "linkedin", "copy")


def links_for(base_url: str, code: str) -> tuple[str, dict[str, str], QrLinks]:
    link = f"{base_url}/r/{quote(code)}"
    share = {channel: f"{link}?ch={channel}" for channel in SHARE_CHANNELS}
    return link, share, QrLinks(png=f"{link}/qr.png", svg=f"{link}/qr.svg")


def _to_advocate(runtime: Runtime, caller: Caller, row: repo.AdvocateRow) -> Advocate:
    code = runtime.codec.generate(row.id)
    link, share, qr = links_for(runtime.settings.public_base_url, code)
    return Advocate(
        id=runtime.ids.encode("advocate", row.id),
        program_id=runtime.ids.encode("program", row.program_id),
        customer_id=row.customer_id,
        email=row.email,
        name=row.name,
        code=code,
        vanity_codes=list(row.vanity_codes),
        link=link,
        share_links=share,
        qr=qr,
        clicks=row.clicks,
        unique_clicks=row.unique_clicks,
        contact_preference=row.contact_preference,
        suspended_at=row.suspended_at,
        created_at=row.created_at,
        livemode=caller.mode == "live",
    )


async def upsert(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, data: AdvocateUpsert
) -> tuple[Advocate, bool]:
    """(advocate, created). Concurrent calls for one customer all get the same advocate."""
    if data.email is not None and payout_email_problem(data.email) is not None:
        # Payouts are sent to this address: it is checked as strictly as the exports check
        # it, so a payee never reaches a batch with an address no file can pay.
        raise InvalidInput(
            "email is not an address payouts can be sent to (letters, digits and "
            "!#$%&'*+/=?^_`{|}~- in dotted parts starting with a letter, digit or _, "
            "then @ and a domain such as example.com)",
            code="invalid_email",
            field="email",
        )
    program_id = runtime.ids.decode("program", data.program_id)
    await check_program(
        conn, merchant_id=caller.merchant_id, program_id=program_id, public_id=data.program_id
    )
    row = await repo.upsert(
        conn,
        caller.merchant_id,
        program_id,
        data.customer_id,
        data.email,
        data.name,
    )
    advocate_id = row.id
    code = runtime.codec.generate(advocate_id)
    await repo.insert_code(
        conn, code, code, caller.merchant_id, program_id, advocate_id, "generated"
    )
    ip_hash = runtime.ip_hasher.hashes(parse_ip(data.ip))[0]
    seen = runtime.signals.signals(
        ip_hash=ip_hash,
        user_agent=data.user_agent,
        visitor_ids=[data.visitor_id or ""],
        payment_fingerprint=None,
        address=None,
    )
    await fraud.remember(
        conn,
        merchant_id=caller.merchant_id,
        customer_id=data.customer_id,
        signals=seen,
        at=datetime.now(UTC),
    )
    # Their code is served: a customer the program holds out is told so instead (409,
    # counted; nothing of this call is kept), anyone else is exposed to its experiment.
    await experiments.invited(
        conn,
        runtime=runtime,
        merchant_id=caller.merchant_id,
        program_id=program_id,
        advocate_id=advocate_id,
        customer_id=data.customer_id,
        via="advocate",
    )
    advocate = await repo.get(conn, caller.merchant_id, advocate_id)
    return _to_advocate(runtime, caller, advocate), row.created


async def check_program(
    conn: asyncpg.Connection, *, merchant_id: int, program_id: int, public_id: str
) -> None:
    """The program takes new advocates: it exists and is not archived."""
    status = await repo.program_status(conn, merchant_id, program_id)
    if status is None:
        raise NotFound(f"no program with id {public_id}", code="program_not_found")
    if status == "archived":
        raise Conflict(
            "this program is archived and takes no new advocates", code="program_archived"
        )


async def import_advocates(
    conn: asyncpg.Connection,
    *,
    codec: CodeCodec,
    merchant_id: int,
    program_id: int,
    advocates: list[ImportedAdvocate],
) -> list[AdvocateImported]:
    """Advocates from the service the shop switched from, a batch in a few statements, each
    with its generated code and the code it shared there kept as a vanity code. An advocate
    already here is kept as it is (an import again changes nothing); a code another
    advocate holds, as it is or as one reads like it (the lookup key folds O/0 and I/L/1),
    refuses its line. Per advocate given, in order: what it did."""
    owners = await repo.code_owners(conn, [a.code_key for a in advocates if a.code_key])
    before = await repo.advocates_of(
        conn, merchant_id, program_id, sorted({a.customer_id for a in advocates})
    )
    outcomes: list[AdvocateImported | None] = []
    claimed: dict[str, tuple[str, str]] = {}  # code key -> (customer id, code) in this batch
    for a in advocates:
        clash = None
        if a.code_key:
            owner = owners.get(a.code_key)
            if owner is not None and (owner.merchant_id, owner.advocate_id) != (
                merchant_id,
                before.get(a.customer_id),
            ):
                clash = owner.code
            elif a.code_key in claimed and claimed[a.code_key][0] != a.customer_id:
                clash = claimed[a.code_key][1]
            claimed.setdefault(a.code_key, (a.customer_id, a.code or ""))
        outcomes.append(None if clash is None else _code_clash(a.code or "", clash))
    accepted = [a for a, o in zip(advocates, outcomes, strict=True) if o is None]
    made = await repo.import_advocates(
        conn,
        merchant_id,
        program_id,
        [a.customer_id for a in accepted],
        [a.email for a in accepted],
        [a.name for a in accepted],
    )
    ids = {**before, **made}
    codes = [(i, codec.generate(i)) for i in made.values()]
    generated = [(code, code, i, "generated") for i, code in codes]
    vanity = [
        (a.code_key, a.code, ids[a.customer_id], "vanity")
        for a in accepted
        if a.code_key and a.code and owners.get(a.code_key) is None
    ]
    inserted = await repo.insert_codes(conn, merchant_id, program_id, generated + vanity)
    granted = inserted | {k for k, o in owners.items() if o.merchant_id == merchant_id}
    answer = []
    for a, outcome in zip(advocates, outcomes, strict=True):
        if outcome is not None:
            answer.append(outcome)
        elif a.code_key and a.code_key not in granted:
            # Taken between the look-up and the insert (another import, another call).
            answer.append(_code_clash(a.code or "", ""))
        else:
            new = a.customer_id in made or a.code_key in inserted
            made.pop(a.customer_id, None)  # a second line of one customer creates nothing
            inserted.discard(a.code_key or "")
            answer.append(AdvocateImported(created=new))
    if made_count := len(generated):
        log.info("advocates_imported", merchant_id=merchant_id, created=made_count)
    return answer


def _code_clash(code: str, taken: str) -> AdvocateImported:
    if code != taken and lookup_key(code) == lookup_key(taken):
        return AdvocateImported(
            error=(
                "code_confusable",
                "code reads like another advocate's code (O and 0, I, L and 1 are one)",
            )
        )
    return AdvocateImported(error=("code_taken", "code belongs to another advocate"))


async def get(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, advocate_id: str
) -> Advocate:
    row = await repo.get(conn, caller.merchant_id, runtime.ids.decode("advocate", advocate_id))
    if row is None:
        raise NotFound(f"no advocate with id {advocate_id}", code="advocate_not_found")
    return _to_advocate(runtime, caller, row)


async def set_contact_preference(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, advocate_id: str, preference: str
) -> Advocate:
    internal_id = runtime.ids.decode("advocate", advocate_id)
    if not await repo.set_contact_preference(conn, caller.merchant_id, internal_id, preference):
        raise NotFound(f"no advocate with id {advocate_id}", code="advocate_not_found")
    return await get(conn, runtime=runtime, caller=caller, advocate_id=advocate_id)


async def add_vanity_code(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, advocate_id: str, code: str
) -> tuple[Advocate, bool]:
    """(advocate, created). Adding a code the advocate already has changes nothing."""
    advocate = await get(conn, runtime=runtime, caller=caller, advocate_id=advocate_id)
    try:
        vanity = runtime.codec.check_vanity(code)
    except VanityCodeError as exc:
        raise InvalidInput(str(exc), code=exc.code) from None
    internal_id = runtime.ids.decode("advocate", advocate_id)
    key = lookup_key(vanity)
    created = await repo.insert_code(
        conn,
        key,
        vanity,
        caller.merchant_id,
        runtime.ids.decode("program", advocate.program_id),
        internal_id,
        "vanity",
    )
    if not created:
        owner = await repo.code_owner(conn, key)
        if owner is None or (owner.merchant_id, owner.advocate_id) != (
            caller.merchant_id,
            internal_id,
        ):
            raise Conflict(
                f"the code {vanity} (or one that reads like it) is taken", code="code_taken"
            )
        return advocate, False
    await audit.record(
        conn,
        caller=caller,
        action="advocate.code_added",
        subject_type="advocate",
        subject_id=advocate_id,
        after={"code_kind": "vanity"},  # not the code: it may spell the person's name
    )
    return await get(conn, runtime=runtime, caller=caller, advocate_id=advocate_id), True


async def list_advocates(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    program_id: str | None,
    cursor: Cursor,
) -> Page[Advocate]:
    rows = await repo.list_page(
        conn,
        caller.merchant_id,
        program_id=runtime.ids.decode("program", program_id) if program_id else None,
        cursor=cursor,
    )
    rows, more = cursor.split(rows)
    return Page(data=[_to_advocate(runtime, caller, r) for r in rows], has_more=more)


async def search(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, text: str, limit: int = 50
) -> list[Advocate]:
    """Advocates whose customer id, email or one of whose codes is `text` (a support
    person's search box: exact, emails in any case, codes as misread)."""
    text = text.strip()[:254]
    if not text:
        return []
    rows = await repo.search(conn, caller.merchant_id, text, lookup_key(text)[:40], limit)
    return [_to_advocate(runtime, caller, r) for r in rows]


async def names(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, advocate_ids: list[str]
) -> dict[str, str]:
    """What a list shows for each advocate: their name, else the shop's customer id."""
    internal = {runtime.ids.decode("advocate", a): a for a in advocate_ids}
    found = await repo.names(conn, caller.merchant_id, list(internal))
    return {internal[i]: name for i, name in found.items()}


async def code_info(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, code: str
) -> CodeInfo:
    row = await repo.code_info(conn, lookup_key(code)[:40], caller.merchant_id)
    if row is None:
        raise NotFound("no such referral code", code="code_not_found")
    state = lifecycle.state(row.program_status, row.starts_at, row.ends_at, datetime.now(UTC))
    return CodeInfo(
        code=row.code,
        program_id=runtime.ids.encode("program", row.program_id),
        active=row.code_active and state == "running",
        program_state=state,
    )


async def suspend_codes(
    conn: asyncpg.Connection, *, merchant_id: int, advocate_id: int, public_id: str, reason: str
) -> list[str]:
    """Disable every active code of the advocate (the fraud policy's consequence of too many
    rejected referrals); the codes it disabled, none if already suspended."""
    suspended = await repo.suspend_codes(conn, merchant_id, advocate_id)
    if suspended:
        await events.emit(
            conn,
            merchant_id=merchant_id,
            type="advocate.codes_suspended",
            data={"advocate_id": public_id, "codes": suspended, "reason": reason},
        )
        log.warning("advocate_codes_suspended", advocate_id=advocate_id)
    return suspended


async def reactivate(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    advocate_id: str,
    actor: str,
    note: str | None,
) -> Advocate:
    """Lift a suspension: the codes work again, and only rejections from now on count
    towards the limit. A no-op for an advocate who is not suspended."""
    advocate = await get(conn, runtime=runtime, caller=caller, advocate_id=advocate_id)
    codes = await repo.reactivate(
        conn, caller.merchant_id, runtime.ids.decode("advocate", advocate_id)
    )
    if advocate.suspended_at is None:
        return advocate
    await events.emit(
        conn,
        merchant_id=caller.merchant_id,
        type="advocate.codes_reactivated",
        data={"advocate_id": advocate_id, "codes": codes, "actor": actor, "note": note},
    )
    log.info("advocate_reactivated", advocate_id=advocate_id, codes=len(codes))
    await audit.record(
        conn,
        caller=caller,
        action="advocate.reactivated",
        subject_type="advocate",
        subject_id=advocate_id,
        before={"suspended_at": advocate.suspended_at},
        after={"suspended_at": None, "codes_reactivated": len(codes)},
    )
    return await get(conn, runtime=runtime, caller=caller, advocate_id=advocate_id)


# --- a customer's data rights (referral/customers/) ---------------------------------------


async def find_customer(conn: asyncpg.Connection, *, subject: Subject) -> None:
    """Their advocates (one per program), the addresses they gave and their vanity codes."""
    rows = await repo.customer_advocates(conn, subject.merchant_id, subject.customer_id)
    codes = await repo.customer_codes(conn, subject.merchant_id, [r.id for r in rows])
    typed = {r.email.lower() for r in rows if r.email}
    subject.advocate_ids = [r.id for r in rows]
    subject.typed_emails = sorted(set(subject.typed_emails) | typed)
    subject.emails = sorted(set(subject.emails) | {e for e in map(normalise_email, typed) if e})
    subject.vanity_codes = sorted({c.code for c in codes if c.kind == "vanity"})


async def export_customer(
    conn: asyncpg.Connection, *, runtime: Runtime, subject: Subject
) -> list[ExportedAdvocate]:
    rows = await repo.customer_advocates(conn, subject.merchant_id, subject.customer_id)
    codes = await repo.customer_codes(conn, subject.merchant_id, [r.id for r in rows])
    return [
        ExportedAdvocate(
            id=runtime.ids.encode("advocate", r.id),
            program_id=runtime.ids.encode("program", r.program_id),
            customer_id=r.customer_id,
            email=r.email,
            name=r.name,
            contact_preference=r.contact_preference,
            created_at=r.created_at,
            suspended_at=r.suspended_at,
            reactivated_at=r.reactivated_at,
            first_shared_at=r.first_shared_at,
            codes=[
                ExportedCode(code=c.code, kind=c.kind, status=c.status, created_at=c.created_at)
                for c in codes
                if c.advocate_id == r.id
            ],
        )
        for r in rows
    ]


async def erase_customer(
    conn: asyncpg.Connection, *, subject: Subject, tombstones: Tombstones
) -> tuple[int, int]:
    """(advocates, codes): the profiles' personal data replaced, every code disabled (the
    links stop working) and vanity codes replaced. The advocates stay, so their referrals,
    rewards and analytics keep their advocate."""
    if not subject.advocate_ids:
        return 0, 0
    advocates = await repo.erase_advocates(
        conn, subject.merchant_id, subject.advocate_ids, tombstones.customer_id
    )
    codes = await repo.erase_codes(
        conn, subject.merchant_id, subject.advocate_ids, subject.vanity_codes, tombstones.codes
    )
    return advocates, codes
