"""Eligibility, pure: may this friend's order (or signup) earn rewards for this referral?

Eligibility lives with rewards and cannot be switched off (same customer, same email, not a
new customer, below minimum, unsupported currency, window, import); the fraud engine can
only add flags, reviews and blocks on top. Each check keeps its inputs and outcome, so
`GET /v1/referrals/{id}` can explain a decision.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec

from referral.programs import rules as lifecycle
from referral.programs.rules import ProgramState
from referral.programs.schemas import RewardSettings


class Check(msgspec.Struct, omit_defaults=True):
    name: str
    passed: bool
    detail: str
    inputs: dict[str, Any] = {}


class Subject(msgspec.Struct, kw_only=True):
    """The facts eligibility looks at; built by the service, compared here."""

    friend_customer_id: str | None
    friend_email: str | None  # normalised
    advocate_customer_id: str
    advocate_email: str | None  # normalised
    is_new_customer: bool
    subtotal: int | None  # None for a signup
    currency: str | None
    occurred_at: datetime
    program_starts_at: datetime
    program_state: ProgramState  # as of `occurred_at` (programs/rules.py)
    code_active: bool
    is_import: bool = False
    source: str  # code | link | signup_email
    clicked_at: datetime | None = None
    window_days: int = 30


def check(subject: Subject, settings: RewardSettings) -> list[Check]:
    """Every eligibility check, in a fixed order. The first failed one is the reason."""
    s = subject
    checks = [
        Check(
            "self_referral",
            passed=not _same_person(s),
            detail="friend and advocate are different customers"
            if not _same_person(s)
            else "friend is the advocate (same customer id or email)",
        ),
        _program_check(s.program_state),
        Check(
            "code_inactive",
            passed=s.code_active,
            detail="the code is active" if s.code_active else "the code is not active",
            inputs={"code_active": s.code_active},
        ),
        Check(
            "imported_order",
            passed=not s.is_import,
            detail="flagged as an import" if s.is_import else "live order",
        ),
        Check(
            "before_program_start",
            passed=s.occurred_at >= s.program_starts_at,
            detail="occurred before the program started"
            if s.occurred_at < s.program_starts_at
            else "within the program",
            inputs={
                "occurred_at": s.occurred_at.isoformat(),
                "program_starts_at": s.program_starts_at.isoformat(),
            },
        ),
    ]
    if s.source == "link" and s.clicked_at is not None:
        deadline = s.clicked_at + timedelta(days=s.window_days)
        inside = s.clicked_at <= s.occurred_at + timedelta(minutes=5) and s.occurred_at <= deadline
        checks.append(
            Check(
                "outside_window",
                passed=inside,
                detail=f"within {s.window_days} days of the click"
                if inside
                else f"more than {s.window_days} days after the click",
                inputs={"clicked_at": s.clicked_at.isoformat(), "window_days": s.window_days},
            )
        )
    if settings.new_customers_only:
        checks.append(
            Check(
                "not_new_customer",
                passed=s.is_new_customer,
                detail="first purchase"
                if s.is_new_customer
                else "the friend already bought before",
                inputs={"is_new_customer": s.is_new_customer},
            )
        )
    if s.subtotal is not None and s.currency is not None:
        minimum = settings.minimum_order.get(s.currency)
        if minimum is not None:
            checks.append(
                Check(
                    "below_minimum",
                    passed=s.subtotal >= minimum,
                    detail=f"subtotal {s.subtotal} vs minimum {minimum} {s.currency}",
                    inputs={"subtotal": s.subtotal, "minimum": minimum, "currency": s.currency},
                )
            )
        missing = [
            side
            for side, rule in (("advocate", settings.advocate), ("friend", settings.friend))
            if rule is not None and rule.amounts is not None and s.currency not in rule.amounts
        ]
        checks.append(
            Check(
                "currency_not_supported",
                passed=not missing,
                detail=f"no fixed {s.currency} amount for {', '.join(missing)}"
                if missing
                else f"{s.currency} is supported",
                inputs={"currency": s.currency},
            )
        )
    return checks


def _program_check(state: ProgramState) -> Check:
    """A paused, ended or not yet started program makes no new referral and settles none
    (referrals it settled before keep their rewards): the check is named by its reason."""
    reason = lifecycle.refusal(state)
    return Check(
        reason or "program_running",
        passed=reason is None,
        detail="the program is running" if reason is None else f"the program is {state}",
        inputs={"program_state": state},
    )


def first_failure(checks: list[Check]) -> str | None:
    return next((c.name for c in checks if not c.passed), None)


def _same_person(s: Subject) -> bool:
    if s.friend_customer_id is not None and s.friend_customer_id == s.advocate_customer_id:
        return True
    return s.friend_email is not None and s.friend_email == s.advocate_email
