"""A customer's data rights: who the person is in the merchant's rows (`Subject`, what every
room's export and erasure is handed), the export document, and what an erasure answers.

Other rooms fill their part of the export with these structs, so the document has one
shape, described once (the export's OpenAPI answer is `CustomerExport`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

CustomerId = Annotated[str, Meta(min_length=1, max_length=200, examples=["cus_42"])]

# What an erased story says, in place of the advocate's words.
ERASED_TEXT = "(erased)"


class Subject(msgspec.Struct, kw_only=True):
    """One person in one merchant, as the rooms find them: by the shop's customer id, and by
    the emails their rows hold (a guest order or referral has only an email). Filled by each
    room's `find_customer`, then handed to its `export_customer` and `erase_customer`."""

    merchant_id: int
    customer_id: str
    emails: list[str] = []  # normalised, as orders, signups and referrals keep them
    typed_emails: list[str] = []  # lower-cased as given (advocates keep the address as typed)
    advocate_ids: list[int] = []
    vanity_codes: list[str] = []  # their codes as printed: they may spell the person's name
    referral_ids: list[int] = []  # referrals in which they are the friend
    order_ids: list[int] = []
    signup_ids: list[int] = []
    signals: int = 0  # fraud signals kept under their customer id
    imported_customer_ids: list[int] = []  # imports that named them an existing customer
    visitor_ids: list[str] = []  # the link's visitor cookie of their clicks as a friend
    story_ids: list[int] = []
    payees: int = 0  # payout details kept under their customer id

    @property
    def found(self) -> bool:
        return bool(
            self.advocate_ids
            or self.referral_ids
            or self.order_ids
            or self.signup_ids
            or self.signals
            or self.payees
            or self.imported_customer_ids
        )

    @property
    def mentions(self) -> list[str]:
        """What free text (a staff note) names them by, lower-cased: their customer id,
        addresses and vanity codes. Values shorter than 3 characters would match any text."""
        values = {self.customer_id, *self.emails, *self.typed_emails, *self.vanity_codes}
        return sorted(v.lower() for v in values if len(v) >= 3)

    @property
    def keys(self) -> list[str]:
        """Every value that names them in a friend or payee key: the customer id, and the
        emails of guest referrals (a friend without a customer id is keyed by email)."""
        return [self.customer_id, *self.emails]


class Tombstones(msgspec.Struct, frozen=True, kw_only=True):
    """What replaces the person's identifiers. One per erasure, so rows that named the same
    person still name one (erased) person: an analytics customer stays one customer, a payee
    one payee. Each email gets its own, as rows keyed by two emails were two customers."""

    customer_id: str  # `erased:era_…`
    emails: list[str]  # `era_….N@erased.invalid`, in the order of `Subject.emails`
    codes: list[str]  # `erased:era_…:N`, in the order of `Subject.vanity_codes`
    visitors: list[str]  # `erased:era_…:vN`, in the order of `Subject.visitor_ids`

    def keys(self, subject: Subject) -> tuple[list[str], list[str]]:
        """(from, to): the tombstone of each of `subject.keys`."""
        return subject.keys, [self.customer_id, *self.emails]


# --------------------------------------------------------------------------- the export


class ExportedCode(msgspec.Struct):
    code: str
    kind: Literal["generated", "vanity"]
    status: Literal["active", "disabled"]
    created_at: datetime


class ExportedAdvocate(msgspec.Struct):
    """The person as an advocate of one program: their profile, contact preference, codes."""

    id: str
    program_id: str
    customer_id: str
    email: str | None
    name: str | None
    contact_preference: str
    created_at: datetime
    suspended_at: datetime | None
    reactivated_at: datetime | None
    first_shared_at: datetime | None
    codes: list[ExportedCode]


class ExportedClick(msgspec.Struct):
    """A click on their link (`own_link`), or theirs on an advocate's link as a friend
    (`as_visitor`): when and from which channel. `bot`: a link preview or crawler."""

    advocate_id: str
    clicked_at: datetime
    channel: str
    bot: bool
    via: Literal["own_link", "as_visitor"]


class ExportedShare(msgspec.Struct):
    advocate_id: str
    story_id: str | None
    channel: str
    shared_at: datetime


class ExportedStory(msgspec.Struct):
    id: str
    advocate_id: str
    reward_id: str
    body: str
    display_name: str | None
    status: str
    slug: str
    created_at: datetime
    published_at: datetime | None


class ExportedDecision(msgspec.Struct):
    """The fraud decision about them as a friend: its outcome and the rules that fired (their
    evidence compares them with the advocate, another person, and stays out)."""

    action: str
    score: int
    rules: list[str]


class ExportedReferral(msgspec.Struct):
    """A referral they made (`as: advocate`: the friend is another person, so none of the
    friend's data), or one that brought them (`as: friend`: how, and what was decided)."""

    id: str
    role: Literal["advocate", "friend"]
    program_id: str
    advocate_id: str
    status: str
    source: str
    rejection_reason: str | None
    friend_customer_id: str | None
    friend_email: str | None
    channel: str | None
    clicked_at: datetime | None
    decision: ExportedDecision | None
    created_at: datetime
    signed_up_at: datetime | None
    converted_at: datetime | None


class ExportedSignup(msgspec.Struct):
    customer_id: str
    email: str | None
    occurred_at: datetime
    referral_id: str | None


class ExportedOrder(msgspec.Struct):
    order_id: str
    customer_id: str | None
    email: str | None
    subtotal: int
    total: int
    refunded: int
    currency: str
    status: str
    occurred_at: datetime
    metadata: dict[str, Any]
    referral_id: str | None


class ExportedImportedCustomer(msgspec.Struct):
    """That an import (switching in from another service) named them an existing customer."""

    customer_id: str | None
    email: str | None
    import_id: str
    imported_at: datetime


class ExportedLedgerEntry(msgspec.Struct):
    account: str
    amount: int
    currency: str
    booked_at: datetime


class ExportedCoupon(msgspec.Struct):
    code: str
    status: str
    amount: int
    currency: str
    expires_at: datetime
    created_at: datetime


class ExportedReward(msgspec.Struct):
    """A reward that pays them, with its ledger entries (money in minor units) and coupon."""

    id: str
    referral_id: str | None
    side: Literal["advocate", "friend"]
    kind: str
    status: str
    amount: int
    currency: str | None
    milestone: int | None
    earned_at: datetime
    created_at: datetime
    approved_at: datetime | None
    paid_at: datetime | None
    reversed_at: datetime | None
    ledger_entries: list[ExportedLedgerEntry]
    coupon: ExportedCoupon | None


class ExportedPayee(msgspec.Struct):
    """Where they asked their payouts to be sent, in full (it is theirs), and when."""

    customer_id: str
    method: Literal["email", "bank_transfer"]
    email: str | None
    iban: str | None
    account_holder: str | None
    bic: str | None
    created_at: datetime
    updated_at: datetime


class ExportedPayout(msgspec.Struct):
    """Their line in a payout batch: what it paid them and where to (the details frozen on
    the line when its batch was made)."""

    batch_id: str
    line_id: str
    payee_email: str | None
    payee_method: Literal["email", "bank_transfer"]
    payee_iban: str | None
    payee_account_holder: str | None
    payee_bic: str | None
    amount: int
    currency: str
    status: str
    reference: str
    batch_created_at: datetime
    batch_paid_at: datetime | None


class ExportedSignal(msgspec.Struct):
    kind: Literal["ip", "ip_ua", "visitor", "payment", "address"]
    value: Annotated[str, Meta(description="Hex of the keyed hash (HMAC-SHA-256)")]
    first_seen_at: datetime
    last_seen_at: datetime


class ExportedSignals(msgspec.Struct):
    note: str
    signals: list[ExportedSignal]


class ExportedErasure(msgspec.Struct):
    id: str
    erased_at: datetime


class CustomerExport(msgspec.Struct):
    """Everything the service holds about one person in this merchant, as advocate and as
    friend. Streamed: written part by part as it is read."""

    object: Literal["customer_export"]
    customer_id: str
    livemode: bool
    generated_at: datetime
    emails: Annotated[
        list[str], Meta(description="The addresses their rows hold, normalised as compared")
    ]
    advocates: list[ExportedAdvocate]
    clicks: list[ExportedClick]
    shares: list[ExportedShare]
    stories: list[ExportedStory]
    referrals: list[ExportedReferral]
    signups: list[ExportedSignup]
    orders: list[ExportedOrder]
    rewards: list[ExportedReward]
    payees: list[ExportedPayee]
    payouts: list[ExportedPayout]
    fraud_signals: ExportedSignals
    imported_as_customer: list[ExportedImportedCustomer]
    erasures: Annotated[
        list[ExportedErasure],
        Meta(description="Earlier erasures of this customer id: what they erased is gone"),
    ]


# --------------------------------------------------------------------------- the erasure


class ErasedCounts(msgspec.Struct, kw_only=True):
    """Rows whose personal data was replaced (or, for signals, unique clicks and stored
    answers, deleted), per kind."""

    advocates: int = 0
    codes: int = 0
    clicks: int = 0
    shares: int = 0
    stories: int = 0
    referrals: int = 0
    signups: int = 0
    orders: int = 0
    rewards: int = 0
    ledger_entries: int = 0
    payout_lines: int = 0
    payees: int = 0
    fraud_signals: int = 0
    events: int = 0
    webhook_attempts: int = 0
    idempotency_keys: int = 0
    imported_customers: int = 0


class CustomerErasure(msgspec.Struct):
    """One erasure: what it replaced and whose advocates it was (their ids stay, with
    tombstones for the person's data). Asking again for a customer erased since answers
    this same erasure; one who came back (a new order, signup or advocate) is a new person,
    and erasing them is a new erasure."""

    id: str
    erased_at: datetime
    advocate_ids: list[str]
    erased: ErasedCounts
    livemode: bool
    object: Literal["customer_erasure"] = "customer_erasure"


class RetentionRun(msgspec.Struct, kw_only=True):
    """What one run of the retention job did."""

    ran: bool  # False: another instance holds the job
    clicks_kept_from: datetime
    partitions_dropped: list[str] = []
    clicks_deleted: int = 0  # rows before `clicks_kept_from` outside a monthly partition
    waiting_for_rollups: list[str] = []  # merchants whose old clicks are not yet booked
    fraud_signals_expired: int = 0
    signals_seen_before: datetime | None = None
    webhook_attempts_deleted: int = 0
    webhook_deliveries_deleted: int = 0
    webhooks_sent_before: datetime | None = None
