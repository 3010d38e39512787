"""Request and response shapes for referrals: attribution, explain and review."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta


class ReviewAction(msgspec.Struct, forbid_unknown_fields=True):
    """Who decided and why: kept in the referral's review history and its rewards'."""

    actor: Annotated[str, Meta(min_length=1, max_length=200, examples=["risk@shop.example"])]
    note: Annotated[str, Meta(max_length=2000)] | None = None


class Review(msgspec.Struct):
    action: Literal["approve", "reject"]
    actor: str
    note: str | None
    from_status: str
    to_status: str
    created_at: datetime
