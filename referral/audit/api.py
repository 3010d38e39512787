"""`GET /v1/audit-log`: every change made with a key, in the console or on the command line."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.params import QueryParameter

from referral.audit import service
from referral.audit.schemas import AuditEntry
from referral.http.deps import CallerDep, Conn, Listing, RuntimeDep
from referral.lib import problem_docs
from referral.lib.pagination import Page

Action = Annotated[
    str | None,
    QueryParameter(
        description="One action (`reward.reversed`) or a whole category (`reward`)",
        pattern=r"^[a-z_]{1,40}(\.[a-z_]{1,40})?$",
    ),
]
SubjectType = Annotated[
    str | None, QueryParameter(description="`program`, `reward`, …", pattern=r"^[a-z_]{1,40}$")
]
SubjectId = Annotated[
    str | None,
    QueryParameter(description="The public id of what changed", min_length=1, max_length=64),
]
KeyId = Annotated[
    str | None,
    QueryParameter(description="Only changes made with this key (`key_…`)", max_length=64),
]


@get(
    "/v1/audit-log",
    operation_id="listAuditLog",
    responses=problem_docs.responses(
        "listAuditLog", {404: ("key_not_found", "audit_entry_not_found")}
    ),
    tags=["merchant"],
    summary="The audit log: who changed what, and when",
    description="Every change made with a key, in the console or on the command line "
    "(programs, fraud policies, reviews, manual reward actions, payout batches, keys, "
    "webhooks, erasures, the merchant's settings), oldest first, with its state before and "
    "after as this API shows it. The checkout's own facts (orders, signups, refunds) are "
    "not here: they are the events. Append-only: nothing in the service edits or deletes an "
    "entry.",
)
async def list_audit_log(
    conn: Conn,
    caller: CallerDep,
    runtime: RuntimeDep,
    listing: Listing,
    action: Action = None,
    subject_type: SubjectType = None,
    subject_id: SubjectId = None,
    key_id: KeyId = None,
) -> Page[AuditEntry]:
    return await service.list_entries(
        conn,
        ids=runtime.ids,
        caller=caller,
        cursor=listing.cursor(runtime.ids, "audit_entry"),
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        key_id=key_id,
    )
