"""Payout details: what is valid, how each is kept, and how it is shown masked.

An IBAN is checked with schwifty (each country's length and layout, the ISO 13616 check
digits) and kept compact and upper-case; an email by the strict payout rule of
`referral.lib.emails` (the one the exports check with), kept as given; the account holder's
name is free text, trimmed. Masked, a value shows enough for its owner to recognise it and
nothing to pay it with: `a***@example.com`, `SE35 **** **** **** **** 0003`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from referral.lib.emails import payout_email_problem

Method = Literal["email", "bank_transfer"]
METHODS: tuple[Method, ...] = ("email", "bank_transfer")
HOLDER_MAX = 140  # SEPA's limit for a name

Problem = Literal[
    "invalid_payout_method",
    "invalid_email",
    "invalid_iban",
    "invalid_bic",
    "missing_account_holder",
]


@dataclass(frozen=True, slots=True)
class Details:
    """Payout details as they are kept: validated and normalised."""

    method: Method
    email: str | None
    iban: str | None
    account_holder: str | None
    bic: str | None


class Invalid(ValueError):
    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


def _blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def check(
    *,
    method: str,
    email: str | None,
    iban: str | None,
    account_holder: str | None,
    bic: str | None,
) -> Details:
    """The details to keep, or `Invalid` saying the first thing wrong. An email given with a
    bank transfer is kept (and checked) as the payee's contact; bank fields given with the
    email method are refused rather than silently dropped."""
    if method not in METHODS:
        raise Invalid("invalid_payout_method", "method must be email or bank_transfer")
    email, iban, holder, bic = _blank(email), _blank(iban), _blank(account_holder), _blank(bic)
    if method == "email" and email is None:
        raise Invalid("invalid_email", "the email method needs an email address")
    if email is not None and payout_email_problem(email) is not None:
        raise Invalid("invalid_email", "that is not an address money can be sent to")
    if method == "email":
        if iban or holder or bic:
            raise Invalid(
                "invalid_payout_method", "iban, account_holder and bic are for bank_transfer"
            )
        return Details(method="email", email=email, iban=None, account_holder=None, bic=None)
    if iban is None:
        raise Invalid("invalid_iban", "a bank transfer needs an IBAN")
    try:
        iban = IBAN(iban).compact
    except SchwiftyException:
        raise Invalid("invalid_iban", "that is not a valid IBAN") from None
    if holder is None:
        raise Invalid("missing_account_holder", "a bank transfer needs the account holder's name")
    if len(holder) > HOLDER_MAX or any(ch < " " for ch in holder):
        raise Invalid(
            "missing_account_holder",
            f"the account holder's name is one line of at most {HOLDER_MAX} characters",
        )
    if bic is not None:
        try:
            bic = BIC(bic).compact
        except SchwiftyException:
            raise Invalid("invalid_bic", "that is not a valid BIC") from None
    return Details(method="bank_transfer", email=email, iban=iban, account_holder=holder, bic=bic)


def mask_email(email: str | None) -> str | None:
    """`a***@example.com`: the first character of the local part and the domain."""
    if not email:
        return None
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}"


def mask_iban(iban: str | None) -> str | None:
    """`SE35 **** **** **** **** 0003`: country and check digits, the last four, a group of
    stars for each group of four between, so the shape is the IBAN's own."""
    if not iban:
        return None
    middle = len(iban) - 8
    groups = -(-middle // 4) if middle > 0 else 0
    return " ".join([iban[:4], *["****"] * groups, iban[-4:]])


def mask_name(name: str | None) -> str | None:
    """`A*** S***`: each word's first letter, for the audit log (which outlives erasure)."""
    if not name:
        return None
    return " ".join(f"{word[:1]}***" for word in name.split())
