"""A program's lifecycle, pure: its state at a moment, and what each action may do.

The stored `status` says what the merchant chose (draft, active, paused, ended, archived);
the state adds the clock: an active program before `starts_at` is scheduled, and any
program past its `ends_at` counts as ended, with nothing to run when that moment comes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

ProgramState = Literal["draft", "scheduled", "running", "paused", "ended", "archived"]
Action = Literal["pause", "resume", "end"]
Refusal = Literal["program_not_started", "program_paused", "program_ended"]

# The states each action moves a program from, and the status it gives it.
_TRANSITIONS: dict[Action, tuple[frozenset[str], str]] = {
    "pause": (frozenset({"running", "scheduled"}), "paused"),
    "resume": (frozenset({"paused"}), "active"),
    "end": (frozenset({"running", "scheduled", "paused"}), "ended"),
}
# Asking for the state a program is already in changes nothing (a retry, a second click).
_ALREADY: dict[Action, frozenset[str]] = {
    "pause": frozenset({"paused"}),
    "resume": frozenset({"running", "scheduled"}),
    "end": frozenset({"ended"}),
}


def state(
    status: str, starts_at: datetime, ends_at: datetime | None, now: datetime
) -> ProgramState:
    if status in ("draft", "archived"):
        return status  # type: ignore[return-value]
    if status == "ended" or (ends_at is not None and ends_at <= now):
        return "ended"
    if status == "paused":
        return "paused"
    return "scheduled" if now < starts_at else "running"


def is_running(status: str, starts_at: datetime, ends_at: datetime | None, now: datetime) -> bool:
    return state(status, starts_at, ends_at, now) == "running"


def refusal(program_state: ProgramState) -> Refusal | None:
    """Why a program in this state makes no new referral (None: it is running)."""
    if program_state == "running":
        return None
    if program_state in ("draft", "scheduled"):
        return "program_not_started"
    if program_state == "paused":
        return "program_paused"
    return "program_ended"  # ended or archived


def offers(program_state: ProgramState) -> bool:
    """Whether its links carry the friend offer (the code and the click token)."""
    return program_state == "running"


def transition(action: Action, program_state: ProgramState) -> str | None:
    """The status `action` moves a program in `program_state` to; None when it is already
    there. ValueError("program_ended") when the program has ended (nothing but reading it
    is left), ValueError("invalid_program_transition") for any other move that does not fit
    (a draft or archived program is changed with PATCH)."""
    if program_state in _ALREADY[action]:
        return None
    if program_state == "ended":
        raise ValueError("program_ended")
    allowed, to = _TRANSITIONS[action]
    if program_state not in allowed:
        raise ValueError("invalid_program_transition")
    return to


def schedule_ok(starts_at: datetime, ends_at: datetime | None) -> bool:
    return ends_at is None or ends_at > starts_at
