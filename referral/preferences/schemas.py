"""Request and response shapes for a customer's preferences."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Channel = Literal["email", "sms"]
Topic = Literal["rewards", "offers"]


class PreferencesSet(msgspec.Struct, forbid_unknown_fields=True):
    """The whole of the customer's preferences, replaced: the channels they may be contacted
    on (none: an empty list), the topics, and their birthday (null: not given)."""

    channels: Annotated[list[Channel], Meta(max_length=2)]
    topics: Annotated[list[Topic], Meta(max_length=2)]
    birthday: date | None = None


class Consent(msgspec.Struct, kw_only=True):
    consent: str  # channel:email, channel:sms, topic:rewards, topic:offers
    given: bool
    by: str  # key (the shop's backend) | advocate (on their share page)
    at: datetime


class Preferences(msgspec.Struct, kw_only=True):
    object: Literal["preferences"] = "preferences"
    customer_id: str
    channels: list[str]
    topics: list[str]
    birthday: date | None
    updated_at: datetime | None
    consents: list[Consent]
