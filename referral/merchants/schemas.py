"""Request and response shapes for the merchant ("who am I", its settings) and its API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
MinorUnits = Annotated[int, Meta(ge=0, le=10**13)]
KeyKind = Literal["secret", "publishable"]
Scope = Literal["checkout", "finance", "read", "admin"]
GRACE_MAX_SECONDS = 7 * 24 * 3600
Mode = Literal["test", "live"]


class CallingKey(msgspec.Struct):
    """The key this request was made with. Its secret is never shown again, only its hint."""

    id: str | None
    kind: KeyKind
    hint: str | None


class Merchant(msgspec.Struct):
    """The merchant the calling key belongs to: one tenant in one mode (test or live)."""

    id: str
    mode: Mode
    livemode: bool
    name: str
    time_zone: Annotated[
        str,
        Meta(
            description="IANA time zone: reward cap periods and analytics days follow it",
            examples=["Europe/Stockholm"],
        ),
    ]
    payout_minimums: Annotated[
        dict[Currency, MinorUnits],
        Meta(
            description="Payout minimum per currency in minor units: a payee below it rolls "
            "over to a later batch. A currency not listed has no minimum.",
            examples=[{"EUR": 5000}],
        ),
    ]
    key: CallingKey
    object: Literal["merchant"] = "merchant"


class MerchantUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The settings to change; fields left out keep their value. `payout_minimums` is merged
    per currency (JSON merge patch): a currency set to `null` loses its minimum."""

    time_zone: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=64,
                description="IANA time zone name",
                examples=["Europe/Stockholm"],
            ),
        ]
        | UnsetType
    ) = UNSET
    payout_minimums: (
        Annotated[
            dict[Currency, MinorUnits | None],
            Meta(
                description="Minimum per currency in minor units; null removes it",
                examples=[{"EUR": 5000, "SEK": None}],
            ),
        ]
        | UnsetType
    ) = UNSET


class ApiKey(msgspec.Struct):
    """An API key of the merchant. The key itself is shown once, when it is created."""

    id: str
    kind: KeyKind
    label: str
    hint: Annotated[
        str, Meta(description="The key's first and last characters", examples=["sk_test_…a1b2"])
    ]
    livemode: bool
    created_at: datetime
    last_used_at: Annotated[
        datetime | None,
        Meta(description="When the key was last accepted (to the minute); null: never used"),
    ]
    revoked_at: datetime | None
    scopes: Annotated[
        list[Scope] | None,
        Meta(
            description="What the key may call (see each operation's security requirement); "
            "null: an unrestricted secret key, or a publishable key (public data only)"
        ),
    ] = None
    expires_at: Annotated[
        datetime | None,
        Meta(description="A rolled key works until then (its grace period); null: no end"),
    ] = None
    replaced_by: Annotated[
        str | None, Meta(description="The key that replaced this one when it was rolled")
    ] = None
    object: Literal["api_key"] = "api_key"


class ApiKeyCreated(ApiKey, kw_only=True):
    """A new key with its secret: the only time the secret is shown. A replay of the same
    Idempotency-Key answers the key without it (`secret` null): only its hash is kept."""

    secret: Annotated[
        str | None,
        Meta(description="The key itself (`sk_live_…`): store it now, it is never shown again"),
    ]


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new key: a secret key for a server (restricted to `scopes`, or unrestricted when
    they are left out) or a publishable key for a browser."""

    kind: KeyKind = "secret"
    label: Annotated[str, Meta(max_length=100, description="What the key is for")] = ""
    scopes: (
        Annotated[
            list[Scope],
            Meta(
                min_length=1,
                max_length=4,
                description="Restrict a secret key to these scopes; leave out for an "
                "unrestricted key. Publishable keys take none.",
            ),
        ]
        | None
    ) = None


class KeyRoll(msgspec.Struct, forbid_unknown_fields=True):
    """Replace a key with a new one; the old one keeps working for the grace period, so the
    systems that use it can switch without an outage."""

    grace_period_seconds: Annotated[
        int,
        Meta(
            ge=0,
            le=GRACE_MAX_SECONDS,
            description="How long the old key keeps working (0: it stops now; at most 7 days)",
        ),
    ] = 24 * 3600


class KeyRolled(msgspec.Struct):
    """The new key (its secret shown this once) and the old one, with the end of its grace."""

    key: ApiKeyCreated
    replaced: ApiKey
    object: Literal["api_key_roll"] = "api_key_roll"
