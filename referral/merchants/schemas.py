"""Request and response shapes for the merchant ("who am I", its settings) and its API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
MinorUnits = Annotated[int, Meta(ge=0, le=10**13)]
KeyKind = Literal["secret", "publishable"]
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
    object: Literal["api_key"] = "api_key"
