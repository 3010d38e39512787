"""Request and response shapes for payout batches."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

BatchStatus = Literal["open", "exported", "paid", "cancelled"]


class BatchCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
    kind: Literal["cash", "store_credit"] = "cash"
    cutoff: datetime | None = msgspec.field(default=None)
    minimum: Annotated[int, Meta(ge=0, le=10**13)] | None = None


class LineFailure(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=500, examples=["account closed"])]
    actor: Annotated[str, Meta(min_length=1, max_length=200)] = "api"


class MarkPaid(msgspec.Struct, forbid_unknown_fields=True):
    actor: Annotated[str, Meta(min_length=1, max_length=200)] = "api"


class PayoutLine(msgspec.Struct):
    """One payee's line, with where its money goes as frozen when the batch was made (the
    finance API shows it in full: it is what the files pay)."""

    id: str
    payee: str
    payee_email: str | None
    payee_method: Literal["email", "bank_transfer"]
    payee_iban: str | None
    payee_account_holder: str | None
    payee_bic: str | None
    gross: int
    netted: int
    amount: int
    reward_count: int
    status: Literal["open", "paid", "failed"]
    failure_reason: str | None
    reference: str


class PayoutBatch(msgspec.Struct):
    id: str
    currency: str
    kind: str
    status: BatchStatus
    cutoff: datetime
    minimum: int
    total: int
    line_count: int
    reward_count: int
    created_at: datetime
    exported_at: datetime | None
    paid_at: datetime | None
    cancelled_at: datetime | None
    csv: dict[str, str]
    object: str = "payout_batch"


class BatchPreview(msgspec.Struct, kw_only=True):
    """What creating a batch of `currency` and `kind` with this `cutoff` and `minimum` would
    hold now (the same query as the creation): its lines (one per payee), their total and
    rewards, the clawbacks netted off, and the payees under the minimum, who roll over."""

    currency: str
    kind: str
    cutoff: datetime
    minimum: int
    total: int
    line_count: int
    reward_count: int
    netted: int
    rolled_over_count: int
    rolled_over_total: int
    object: str = "payout_batch_preview"


class LinePage(msgspec.Struct, kw_only=True):
    """A page of a batch's lines in payee order, and the batch's lines in each status: how
    many (`statuses`) and their amount (`amounts`)."""

    data: list[PayoutLine]
    has_more: bool
    statuses: dict[str, int]
    amounts: dict[str, int]


class UnpayableLine(msgspec.Struct):
    """A line an export leaves out, and why: `no_email` (the payee has none on file),
    `invalid_email` (not an address money can be sent to: see the advocate's `email`),
    `amount_not_whole_units` (PayPal takes HUF, JPY and TWD in whole units only),
    `paid_by_bank_transfer` / `paid_by_email` (the payee's method is the other file's),
    `no_iban`, `invalid_iban`, `no_account_holder` (a bank transfer cannot be made)."""

    line_id: str
    payee: str
    payee_email: str | None
    amount: int
    reference: str
    reason: Literal[
        "no_email",
        "invalid_email",
        "amount_not_whole_units",
        "paid_by_bank_transfer",
        "paid_by_email",
        "no_iban",
        "invalid_iban",
        "no_account_holder",
    ]


class PaypalExport(msgspec.Struct):
    """What the batch's PayPal file pays, and the lines it cannot (paid another way, or
    failed). The batch itself is not changed by either."""

    batch_id: str
    currency: str
    parts: int
    payable_lines: int
    payable_total: int
    unpayable_lines: int
    unpayable_total: int
    unpayable: list[UnpayableLine]
    object: str = "paypal_export"


class BankExport(msgspec.Struct):
    """What the batch's bank-transfer file pays, and the lines it cannot (paid by PayPal, or
    another way, or failed). The batch itself is not changed by either."""

    batch_id: str
    currency: str
    payable_lines: int
    payable_total: int
    unpayable_lines: int
    unpayable_total: int
    unpayable: list[UnpayableLine]
    object: str = "bank_transfer_export"
