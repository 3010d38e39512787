"""What a console page knows about the person signed in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from referral.merchants.service import Caller


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """One person in one merchant and mode. `caller` is how the services see them: a
    secret-key caller of that merchant, so the console can do what the API can and no more."""

    merchant_id: int
    merchant: str  # public id, mer_…
    merchant_name: str
    mode: str  # live | test
    actor: str  # the name or email given at sign-in: the actor of every action
    secret: bytes
    csrf: str
    expires_at: datetime

    @property
    def caller(self) -> Caller:
        return Caller(merchant_id=self.merchant_id, mode=self.mode, kind="secret", actor=self.actor)

    @property
    def livemode(self) -> bool:
        return self.mode == "live"
