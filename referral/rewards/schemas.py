"""Response shapes for rewards and their history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from referral.coupons.schemas import CouponStatus

RewardStatus = Literal["pending", "in_review", "approved", "paid", "reversed"]


class Transition(msgspec.Struct):
    from_status: str | None
    to_status: str
    amount: int
    delta: int
    reason: str
    actor: str
    note: str | None
    at: datetime


class Reward(msgspec.Struct):
    id: str
    referral_id: str | None
    advocate_id: str
    side: Literal["advocate", "friend"]
    payee: str
    kind: Literal["cash", "store_credit", "coupon", "points"]
    amount: int
    original_amount: int
    currency: str | None
    status: RewardStatus
    hold_until: datetime
    earned_at: datetime
    milestone: int | None
    coupon_code: str | None
    created_at: datetime
    approved_at: datetime | None
    paid_at: datetime | None
    reversed_at: datetime | None
    history: list[Transition]
    coupon_status: CouponStatus | None = None
    coupon_expires_at: datetime | None = None
    rules_version: Annotated[
        int | None,
        Meta(
            description="The program's rules version it was granted under (null: granted "
            "before versions were kept)"
        ),
    ] = None
    object: str = "reward"


class RewardSummary(msgspec.Struct):
    id: str
    side: str
    kind: str
    amount: int
    currency: str | None
    status: str
    coupon_code: str | None = None
    coupon_status: CouponStatus | None = None


class RewardAction(msgspec.Struct, forbid_unknown_fields=True):
    """Who did it and why: kept in the reward's history."""

    actor: Annotated[str, Meta(min_length=1, max_length=200, examples=["finance@shop.example"])]
    note: Annotated[str, Meta(max_length=2000)] | None = None


# --- the books ---------------------------------------------------------------------------


class LedgerAccounts(msgspec.Struct):
    """The ledger's own accounts as of the moment: sums of the entries booked up to then,
    signed as booked (a receivable is negative while payees owe money back). The entries
    export of a range sums, per currency and account, to the change of these."""

    pending: int
    payable: int
    paid: int
    receivable: int


class CurrencyBalances(msgspec.Struct):
    """One currency's books as of the moment, in minor units (definitions: getLedgerBalances)."""

    currency: str
    pending: int
    in_review: int
    payable: int
    owed: int
    paid: int
    reversed: int
    receivable: int
    recovered: int
    accounts: LedgerAccounts


class LedgerBalances(msgspec.Struct):
    as_of: datetime
    program_id: str | None
    currencies: list[CurrencyBalances]
    object: str = "ledger_balances"
