"""The fraud decision seam.

Attribution calls `decide()` inside the order's transaction, after eligibility. The
decision can only add to eligibility: allow, review (rewards held in `in_review` until a
person decides) or block (the referral is rejected). The full rule engine replaces the
body of `decide()`; its callers and the stored shape stay the same.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Action = Literal["allow", "review", "block"]


class Reason(msgspec.Struct):
    rule: str
    action: Action
    detail: str


class Decision(msgspec.Struct):
    action: Action
    score: int
    reasons: list[Reason]
    policy: str = "default"


class Context(msgspec.Struct, kw_only=True):
    """What a rule may look at; hashes and counts only, never raw IPs."""

    merchant_id: int
    program_id: int
    advocate_id: int
    friend_customer_id: str | None
    friend_email: str | None
    ip_hash: bytes | None = None
    user_agent: str | None = None
    visitor_id: str | None = None
    payment_fingerprint: str | None = None
    shipping_address: str | None = None
    policy: dict[str, Any] = {}


async def decide(conn: Any, context: Context) -> Decision:
    """No fraud rules yet: every eligible referral is allowed."""
    return Decision(action="allow", score=0, reasons=[])
