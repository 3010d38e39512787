"""The audit log's shape as the API shows it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

ActorType = Literal["key", "console", "cli", "advocate"]


class AuditActor(Struct):
    """Who made the change: an API key (its id and hint), a person signed in to the console
    (the name or email they gave), the command line, or an advocate on their own share page
    (their advocate id: only their own payout details)."""

    type: ActorType
    key_id: str | None
    name: Annotated[
        str,
        Meta(description="The key's hint, the console person's name or email, or `cli`"),
    ]


class AuditEntry(Struct):
    """One change, as it was made: append-only, never edited or deleted."""

    id: str
    created_at: datetime
    actor: AuditActor
    action: Annotated[str, Meta(examples=["program.updated"])]
    subject_type: Annotated[str, Meta(examples=["program"])]
    subject_id: Annotated[str, Meta(description="The public id of what changed")]
    before: Annotated[
        dict[str, Any] | None,
        Meta(description="What changed, as it was (null for a creation); never personal data"),
    ]
    after: Annotated[
        dict[str, Any] | None,
        Meta(description="What changed, as it became (null for a deletion)"),
    ]
    request_id: Annotated[
        str | None, Meta(description="The request's id (`X-Request-ID`), to find its log lines")
    ]
    object: Literal["audit_entry"] = "audit_entry"
