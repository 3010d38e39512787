"""Webhook endpoints and attempts as the API shows them, and the event catalogue: every event
type with the struct of its payload. The OpenAPI `webhooks` section is generated from
`CATALOGUE` (referral/openapi.py), and tests hold the payloads the outbox really carries to
these structs, so the document and the deliveries cannot drift apart."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from referral.points.schemas import Redemption

# --------------------------------------------------------------------------- payloads

# msgspec's JSON Schema of a datetime leaves out its format; the catalogue states it.
Timestamp = Annotated[datetime, Meta(extra_json_schema={"format": "date-time"})]


class ReferralSettled(msgspec.Struct):
    """A referral reached its outcome: `converted`, `in_review` or `rejected` (`reason`
    says why, e.g. `self_referral`, `fraud_blocked`)."""

    referral_id: str
    advocate_id: str
    reason: str | None


class ReferralReviewed(msgspec.Struct):
    """A person approved or rejected a referral held for review."""

    referral_id: str
    advocate_id: str
    status: str
    actor: str


class ContactPreferences(msgspec.Struct):
    """The customer's preference centre as it stands: the channels they may be contacted on
    (email, sms; none: empty) and the topics (rewards, offers)."""

    channels: list[str]
    topics: list[str]


class RewardChanged(msgspec.Struct):
    """A reward was created or changed state or amount. `contact_preference` (email, sms,
    none) says how to tell the advocate about their own money; null for a friend's.
    `preferences`: the advocate's preference centre (advocate-side events)."""

    reward_id: str
    referral_id: str | None
    side: str
    kind: str
    status: str
    amount: int
    currency: str
    contact_preference: str | None
    advocate_id: str | UnsetType = UNSET
    reason: str | UnsetType = UNSET
    preferences: ContactPreferences | None | UnsetType = UNSET


class OrderRefunded(msgspec.Struct):
    order_id: str
    refund_id: str
    amount: int
    currency: str


class OrderCancelled(msgspec.Struct):
    order_id: str


class StoryChanged(msgspec.Struct):
    """`actor` (on a published or hidden story): who changed it (the console's person, `api`
    through the API)."""

    story_id: str
    advocate_id: str
    reward_id: str
    status: str
    actor: str | UnsetType = UNSET  # unset on a new story and on events before it was kept


class ProgramUpdated(msgspec.Struct):
    """`changed`: the settings that changed (field names of the program), `actor`: who."""

    program_id: str
    changed: list[str]
    actor: str


class ProgramStateChanged(msgspec.Struct, omit_defaults=True):
    """A program paused, resumed or ended: its `state` now (`running`, `scheduled`,
    `paused`, `ended`), `actor`: who, `note`: why if they said; `ended_at` once ended."""

    program_id: str
    state: str
    actor: str
    note: str | None = None
    ended_at: datetime | None = None


class FraudPolicyChanged(msgspec.Struct):
    """`actor`: who saved it (the console's person, `api` through the API)."""

    program_id: str
    version: int
    policy: dict[str, Any]
    actor: str | UnsetType = UNSET  # unset on versions saved before it was recorded


class CodesSuspended(msgspec.Struct):
    advocate_id: str
    codes: list[str]
    reason: str


class CodesReactivated(msgspec.Struct):
    advocate_id: str
    codes: list[str]
    actor: str
    note: str | None


class PayoutBatchCreated(msgspec.Struct):
    batch_id: str
    total: int
    currency: str
    lines: int


class PayoutBatchChanged(msgspec.Struct):
    batch_id: str


class PayoutBatchPaid(msgspec.Struct):
    batch_id: str
    total: int
    actor: str


class PayoutLineFailed(msgspec.Struct):
    batch_id: str
    line_id: str
    amount: int
    reason: str
    actor: str


class EndpointDisabled(msgspec.Struct):
    """An endpoint stopped receiving: `gone` (it answered 410) or `failing` (every attempt
    failed for 5 days). Its deliveries since are kept as failed: `recover` sends them."""

    endpoint_id: str
    reason: str
    failing_since: Timestamp | None


class CustomerErasedCounts(msgspec.Struct):
    advocates: int
    codes: int
    clicks: int
    shares: int
    stories: int
    referrals: int
    signups: int
    orders: int
    rewards: int
    ledger_entries: int
    payout_lines: int
    fraud_signals: int
    events: int
    webhook_attempts: int
    idempotency_keys: int


class CustomerErased(msgspec.Struct):
    """A customer's personal data was erased (`POST /v1/customers/{customer_id}/erase`).
    Says who by the advocates' ids only: the customer id and addresses are gone, here too.
    Rows the shop keeps about them (its CRM, its mailing list) are the shop's to erase."""

    erasure_id: str
    advocate_ids: list[str]
    erased: CustomerErasedCounts


class CouponPoolLow(msgspec.Struct):
    """A coupon pool runs low: fewer codes left than its `low_below`, or than `low_days` of
    use at the last seven days' rate. Recorded once, until a refill lifts it."""

    pool_id: str
    available: int
    used_last_7_days: int


class WebhookTest(msgspec.Struct):
    """Sent by `POST /v1/webhook-endpoints/{endpoint_id}/test`, never by a change."""

    endpoint_id: str
    message: str


class PointsRedemptionChanged(Redemption, kw_only=True):
    """Points turned into a coupon or store credit, or that redemption cancelled (its
    points back on the customer's balance): the redemption as the API shows it, with the
    customer's preference centre."""

    preferences: ContactPreferences


class PointsExpiring(msgspec.Struct):
    """`points` of the customer's balance expire at `expires_at`, 30 days or less from now:
    the moment for a last-chance message. Sent once per lot (or per last-activity expiry)."""

    customer_id: str
    program_id: str
    points: int
    expires_at: Timestamp
    preferences: ContactPreferences


class LevelChanged(msgspec.Struct):
    """The customer's level in the program changed (`from` null: their first level above
    the first). `qualifying`: their activity in the rolling 12 months by `qualifier`."""

    customer_id: str
    program_id: str
    to: str
    qualifier: str
    qualifying: int
    rules_version: int
    preferences: ContactPreferences
    from_: str | None = msgspec.field(name="from", default=None)


# type -> (payload struct, what happened)
CATALOGUE: dict[str, tuple[type[msgspec.Struct], str]] = {
    "referral.converted": (ReferralSettled, "A referred friend converted"),
    "referral.in_review": (ReferralSettled, "A referral is held for review"),
    "referral.rejected": (ReferralSettled, "A referral was rejected"),
    "referral.review_approved": (ReferralReviewed, "A reviewed referral was approved"),
    "referral.review_rejected": (ReferralReviewed, "A reviewed referral was rejected"),
    "reward.created": (RewardChanged, "A reward was granted"),
    "reward.pending": (RewardChanged, "A reward is pending its hold"),
    "reward.in_review": (RewardChanged, "A reward is held for review"),
    "reward.approved": (RewardChanged, "A reward was approved"),
    "reward.paid": (RewardChanged, "A reward was paid"),
    "reward.reversed": (RewardChanged, "A reward was reversed"),
    "reward.adjusted": (RewardChanged, "A reward's amount changed"),
    "order.refunded": (OrderRefunded, "An order was refunded, in part or in full"),
    "order.cancelled": (OrderCancelled, "An order was cancelled"),
    "story.pending": (StoryChanged, "A story waits for moderation"),
    "story.published": (StoryChanged, "A story was published"),
    "story.hidden": (StoryChanged, "A story was hidden"),
    "program.updated": (ProgramUpdated, "A program's settings changed (who, and which)"),
    "program.paused": (ProgramStateChanged, "A program was paused: no new referrals"),
    "program.resumed": (ProgramStateChanged, "A paused program makes referrals again"),
    "program.ended": (ProgramStateChanged, "A program ended for good"),
    "program.fraud_policy_changed": (FraudPolicyChanged, "A program's fraud policy changed"),
    "advocate.codes_suspended": (CodesSuspended, "An advocate's codes were suspended"),
    "advocate.codes_reactivated": (CodesReactivated, "An advocate's codes work again"),
    "payout_batch.created": (PayoutBatchCreated, "A payout batch was created"),
    "payout_batch.exported": (PayoutBatchChanged, "A payout batch was exported"),
    "payout_batch.paid": (PayoutBatchPaid, "A payout batch was paid"),
    "payout_batch.cancelled": (PayoutBatchChanged, "A payout batch was cancelled"),
    "payout_line.failed": (PayoutLineFailed, "A payout line could not be paid"),
    "coupon_pool.low": (CouponPoolLow, "A coupon pool runs low"),
    "customer.erased": (CustomerErased, "A customer's personal data was erased"),
    "customer.level_changed": (LevelChanged, "A customer reached another level"),
    "points.redeemed": (PointsRedemptionChanged, "Points were turned into a coupon or credit"),
    "points.redemption_cancelled": (
        PointsRedemptionChanged,
        "A redemption was cancelled: its points are back",
    ),
    "points.expiring": (PointsExpiring, "Some of a customer's points expire within 30 days"),
    "webhook_endpoint.disabled": (EndpointDisabled, "A webhook endpoint was disabled"),
    "webhook.test": (WebhookTest, "A test delivery"),
}
EVENT_TYPES = tuple(CATALOGUE)


def envelope_struct(event_type: str) -> type[msgspec.Struct]:
    """The body of a delivery of `event_type`: the event as `GET /v1/events` shows it."""
    payload, _ = CATALOGUE[event_type]
    name = "".join(part.title() for part in event_type.replace("_", ".").split(".")) + "Webhook"
    return msgspec.defstruct(
        name,
        [
            ("id", Annotated[str, Meta(description="The event id, also `webhook-id`")]),
            ("type", Annotated[str, Meta(pattern=f"^{event_type.replace('.', '[.]')}$")]),
            ("data", payload),
            ("created_at", Timestamp),
            ("object", str, "event"),
        ],
        module=__name__,
    )


# --------------------------------------------------------------------------- API

WebhookUrl = Annotated[
    str, Meta(min_length=1, max_length=2048, examples=["https://shop.example/hooks/referral"])
]
EventPattern = Annotated[
    str, Meta(min_length=1, max_length=100, examples=["reward.*", "referral.converted"])
]
Description = Annotated[str, Meta(max_length=500)]


class EndpointCreate(msgspec.Struct, forbid_unknown_fields=True):
    """`event_types`: exact types, `category.*` or `*` (every type, the default)."""

    url: WebhookUrl
    event_types: Annotated[list[EventPattern], Meta(min_length=1, max_length=50)] = msgspec.field(
        default_factory=lambda: ["*"]
    )
    description: Description = ""
    enabled: bool = True


class EndpointUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Fields left out keep their value; `enabled: true` re-enables a disabled endpoint
    (what it missed meanwhile: `recover`)."""

    url: WebhookUrl | UnsetType = UNSET
    event_types: Annotated[list[EventPattern], Meta(min_length=1, max_length=50)] | UnsetType = (
        UNSET
    )
    description: Description | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


class Endpoint(msgspec.Struct):
    id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime
    livemode: bool
    object: str = "webhook_endpoint"


class EndpointCreated(msgspec.Struct):
    """The endpoint and its signing secret, shown this once."""

    id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    created_at: datetime
    livemode: bool
    secret: Annotated[str, Meta(description="`whsec_` + base64: give it to your verifier")]
    object: str = "webhook_endpoint"


class SecretRotated(msgspec.Struct):
    """The new secret, shown this once; the previous one keeps signing until
    `previous_expires_at` (24 hours), so both verify meanwhile."""

    endpoint_id: str
    secret: str
    previous_expires_at: datetime


class EndpointDeleted(msgspec.Struct):
    id: str
    deleted: bool = True
    object: str = "webhook_endpoint"


class Attempt(msgspec.Struct):
    """One try at delivering: the answer's status (none after a timeout, a refused address
    or a connection error: `error` says which), its time and the first 1,000 characters."""

    id: str
    endpoint_id: str
    event_id: str | None
    webhook_id: str
    event_type: str
    attempted_at: datetime
    succeeded: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    response: str
    object: str = "webhook_attempt"


class Resent(msgspec.Struct):
    """The delivery is due now; the attempt shows in the endpoint's attempts."""

    endpoint_id: str
    event_id: str
    status: str = "pending"


class RecoverRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Send again every delivery of the endpoint that failed (or was kept while it was
    disabled) whose event happened from `since` until `until` (default: now)."""

    since: datetime
    until: datetime | None = None


class Recovered(msgspec.Struct):
    endpoint_id: str
    since: datetime
    until: datetime
    deliveries: int
