"""Request and response shapes for advocates and their codes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

CustomerId = Annotated[
    str, Meta(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$", examples=["cus_1042"])
]
Email = Annotated[
    str, Meta(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$", examples=["anna@example.com"])
]


class AdvocateUpsert(msgspec.Struct, forbid_unknown_fields=True):
    program_id: Annotated[str, Meta(examples=["prg_x7k2m9qa4b"])]
    customer_id: CustomerId
    email: Email | None = None
    name: Annotated[str, Meta(max_length=200)] | None = None
    # What the shop saw when the customer asked for their link, all optional: kept only as
    # keyed hashes, so a "friend" on the advocate's own device or network is recognised.
    ip: Annotated[str, Meta(max_length=45)] | None = None
    user_agent: Annotated[str, Meta(max_length=1000)] | None = None
    visitor_id: Annotated[str, Meta(max_length=64)] | None = None


class VanityCodeCreate(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, Meta(min_length=1, max_length=40, examples=["ANNA10"])]


ContactPreference = Annotated[
    Literal["email", "sms", "none"],
    Meta(description="How the advocate wants to hear about rewards; sent with reward events"),
]


class ContactPreferenceUpdate(msgspec.Struct, forbid_unknown_fields=True):
    contact_preference: ContactPreference


class ShareUrlCreate(msgspec.Struct, forbid_unknown_fields=True):
    expires_in_days: Annotated[int, Meta(ge=1, le=365)] = 30


class ShareUrl(msgspec.Struct):
    """A signed link to the advocate's own share page; anyone holding it sees that page."""

    url: str
    advocate_id: str
    expires_at: datetime
    object: str = "share_url"


class QrLinks(msgspec.Struct):
    png: str
    svg: str


class Advocate(msgspec.Struct):
    id: str
    program_id: str
    customer_id: str
    email: str | None
    name: str | None
    code: str
    vanity_codes: list[str]
    link: str
    share_links: dict[str, str]
    qr: QrLinks
    clicks: int
    contact_preference: str
    # Set while the fraud engine has suspended the advocate's codes (too many rejected
    # referrals); `POST /v1/advocates/{id}/reactivate` lifts it.
    suspended_at: datetime | None
    created_at: datetime
    livemode: bool
    object: str = "advocate"


class CodeInfo(msgspec.Struct):
    """What anyone holding the code may know: it is public."""

    code: str
    program_id: str
    active: bool
    object: str = "code"
