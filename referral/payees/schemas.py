"""Request and response shapes for payees: where a customer's payouts go, and what they were
paid in a year."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from referral.advocates.schemas import Email

Method = Literal["email", "bank_transfer"]
Year = Annotated[int, Meta(ge=2000, le=2999, examples=[2026])]


class PayeeSet(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Where the customer's payouts go. `email`: by PayPal (or another email rail) to
    `email`. `bank_transfer`: to `iban` in `account_holder`'s name (`bic` optional; an
    `email` given too is kept as the payee's contact)."""

    method: Method
    email: Email | None = None
    iban: (
        Annotated[
            str,
            Meta(
                max_length=50,
                examples=["SE35 5000 0000 0549 1000 0003"],
                description="Spaces allowed; checked (country length and layout, check digits), "
                "else 422 invalid_iban; kept compact",
            ),
        ]
        | None
    ) = None
    account_holder: Annotated[str, Meta(max_length=140, examples=["Anna Svensson"])] | None = None
    bic: Annotated[str, Meta(max_length=20, examples=["ESSESESS"])] | None = None


class Payee(msgspec.Struct, kw_only=True):
    """A payee's payout details as the API shows them: masked (enough for the customer to
    recognise, nothing to pay with); the account holder's name in full."""

    id: str
    customer_id: str
    method: Method
    email: Annotated[str | None, Meta(examples=["a***@example.com"])]
    iban: Annotated[str | None, Meta(examples=["SE35 **** **** **** **** 0003"])]
    account_holder: str | None
    bic: str | None
    updated_at: datetime
    updated_by: Literal["key", "console", "cli", "advocate"]
    object: Literal["payee"] = "payee"


class PaidTotal(msgspec.Struct):
    """What was paid in one currency and kind: the sum of the payee's payout lines that
    stand paid, in batches paid within the year (the merchant's time zone)."""

    currency: str
    kind: Literal["cash", "store_credit"]
    amount: int
    lines: int


class PayeeTotals(msgspec.Struct, kw_only=True):
    customer_id: str
    year: int
    time_zone: str
    totals: list[PaidTotal]
    object: Literal["payee_totals"] = "payee_totals"


class PayeeYearRow(msgspec.Struct, kw_only=True):
    """One payee's total in one currency and kind for the year, with the payout details on
    file (in full for a key with the finance scope, masked for a read-only key)."""

    customer_id: str
    account_holder: str | None
    method: Method | None
    email: str | None
    iban: str | None
    currency: str
    kind: Literal["cash", "store_credit"]
    amount: int
    lines: int


class YearTotals(msgspec.Struct, kw_only=True):
    year: int
    time_zone: str
    masked: bool
    data: list[PayeeYearRow]
    object: Literal["payee_year_totals"] = "payee_year_totals"
