"""Reading an analytics answer's figures by name, for the console's pages.

The figures themselves are the analytics reports' (one definition, shared with the API and
the CSV); this only finds them: by metric and currency, over the range or per bucket. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from referral.analytics.schemas import Value


class Figures:
    """One span's values (an answer's totals, or one bucket's)."""

    def __init__(self, values: Sequence[Value]) -> None:
        self._values = {(v.metric, v.currency): v for v in values}

    def get(self, metric: str, currency: str | None = None) -> int | float | None:
        found = self._values.get((metric, currency))
        return None if found is None else found.value

    def estimate(self, metric: str) -> bool:
        return any(v.estimate for (m, _), v in self._values.items() if m == metric)

    def currencies(self, metric: str) -> list[str]:
        """The currencies a money figure has, the largest first."""
        found = [(v.value or 0, c) for (m, c), v in self._values.items() if m == metric and c]
        return [c for _, c in sorted(found, key=lambda pair: (-pair[0], pair[1]))]


def change(now: int | float | None, before: int | float | None) -> float | None:
    """The relative change from the compare period, None when there is nothing to compare."""
    if now is None or before is None or before == 0:
        return None
    return (now - before) / abs(before)
