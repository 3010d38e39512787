"""Request and response shapes for advocates and their codes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from referral.programs.rules import ProgramState

# Patterns read the same by Python's `re` (the decoder) and by ECMA-262 (how JSON Schema
# readers, fuzzers included, read the spec): no `\s` or `.` alone, which differ on
# \x1c-\x1f, \x85, \ufeff and line separators.
_SPACE = r"\s\x1c-\x1f\x85\ufeff"
_LINE = r"[^\n\r\u2028\u2029]"
CustomerId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        pattern=rf"^[^{_SPACE}]({_LINE}*[^{_SPACE}])?$",  # no space at either end
        examples=["cus_1042"],
    ),
]
Email = Annotated[
    str,
    Meta(
        max_length=254,
        pattern=rf"^[^@{_SPACE}]+@[^@{_SPACE}]+$",
        examples=["anna@example.com"],
        description="Where payouts are sent: checked strictly (a dot-atom local part "
        "starting with a letter, digit or _, at most 64 characters, and a domain such as "
        "example.com), else 422 invalid_email",
    ),
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
    code: Annotated[
        str,
        Meta(
            min_length=4,
            max_length=40,
            examples=["ANNA10"],
            description="4 to 20 letters A-Z or digits once spaces, dashes and underscores "
            "are dropped (case does not matter); not a reserved word, not one that reads as "
            "a generated code or a friend coupon, else 422 `vanity_code_*`",
        ),
    ]


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
    clicks: Annotated[
        int, Meta(ge=0, description="Clicks on the advocate's links (bots and HEAD not counted)")
    ]
    unique_clicks: Annotated[
        int,
        Meta(
            ge=0,
            description="Unique clicks: one per visitor per day (the merchant's calendar day)",
        ),
    ]
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
    active: Annotated[
        bool, Meta(description="The code is active and its program running: it earns now")
    ]
    program_state: Annotated[
        ProgramState,
        Meta(description="Its program's state: only `running` makes new referrals"),
    ]
    object: str = "code"


class ImportedAdvocate(msgspec.Struct, frozen=True):
    """An advocate from the service the shop switched from (`referral/imports/`), with the
    code they shared there, checked as a vanity code (`code` canonical, `code_key` its
    lookup key)."""

    customer_id: str
    email: str | None
    name: str | None
    code: str | None
    code_key: str | None


class AdvocateImported(msgspec.Struct, frozen=True):
    """What importing one advocate did: created (the advocate or its code), or why its
    line is refused (`error`: a code and a message naming no value)."""

    created: bool = False
    error: tuple[str, str] | None = None
