"""Preferences, pure: which consents a change gives or withdraws."""

from __future__ import annotations


def consents(channels: list[str], topics: list[str]) -> set[str]:
    return {f"channel:{c}" for c in channels} | {f"topic:{t}" for t in topics}


def changes(before: set[str], after: set[str]) -> list[tuple[str, bool]]:
    """(consent, given) for each consent given or withdrawn, in a stable order."""
    return [(c, True) for c in sorted(after - before)] + [
        (c, False) for c in sorted(before - after)
    ]
