"""Request and response shapes for fraud policies, reviews and backtests."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from referral.fraud.policy import FraudPolicy

Outcome = Literal["allow", "review", "block"]


class PolicyDocument(msgspec.Struct):
    program_id: str
    version: int
    policy: FraudPolicy
    updated_at: datetime
    object: str = "fraud_policy"


class BacktestRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    policy: FraudPolicy
    created_from: datetime
    created_before: datetime
    samples: Annotated[int, Meta(ge=0, le=100, description="Sample ids per change")] = 10


class Change(msgspec.Struct):
    """Referrals whose decision would move from `was` to `would_be`."""

    was: Outcome
    would_be: Outcome
    count: int
    sample_ids: list[str]


class RuleCount(msgspec.Struct):
    rule: str
    fired: int  # in the decisions as made
    would_fire: int  # under the candidate policy


class Backtest(msgspec.Struct, kw_only=True):
    program_id: str
    created_from: datetime
    created_before: datetime
    referrals: int  # decided referrals in the range
    replayed: int
    without_features: int  # decided before features were stored: not replayed
    ineligible: int  # rejected by eligibility, which no fraud policy changes
    unchanged: int
    changed: int
    changes: list[Change]
    rules: list[RuleCount]
    not_replayable: list[str]
    elapsed_ms: int
    object: str = "fraud_backtest"
