"""Charts drawn on the server as SVG: no script, nothing from elsewhere, readable without
colour (the compare line is dashed) and by a screen reader (a title, a description, and
the page's table beside it). Pure: values in, markup out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 34


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^n at or above `value` (an axis's top)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover - the loop ends at 10


def _points(values: Sequence[float | None], top: float, n: int) -> list[list[tuple[float, float]]]:
    """Runs of (x, y) between gaps: a bucket without a value breaks the line."""
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = inner_w / max(n - 1, 1)
    runs: list[list[tuple[float, float]]] = [[]]
    for i, value in enumerate(values[:n]):
        if value is None:
            if runs[-1]:
                runs.append([])
            continue
        x = LEFT + (i * step if n > 1 else inner_w / 2)
        y = TOP + inner_h * (1 - (value / top if top else 0))
        runs[-1].append((round(x, 1), round(y, 1)))
    return [run for run in runs if run]


def _line(runs: list[list[tuple[float, float]]], css: str) -> str:
    out = []
    for run in runs:
        if len(run) == 1:
            x, y = run[0]
            out.append(f'<circle class="{css}" cx="{x}" cy="{y}" r="3"/>')
        else:
            points = " ".join(f"{x},{y}" for x, y in run)
            out.append(f'<polyline class="{css}" fill="none" points="{points}"/>')
    return "".join(out)


def line_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    current: Sequence[float | None],
    compare: Sequence[float | None] | None = None,
    tick: Callable[[float], str] = lambda v: f"{v:g}",
    whole: bool = False,
) -> Markup:
    """A line per period over the buckets `labels`; the compare period's values are drawn
    against the same buckets (its first day beside this range's first day). `whole`: the
    values are counts, so the axis steps by whole numbers."""
    n = len(labels)
    seen = [v for v in [*current, *(compare or [])] if v is not None]
    step = nice_ceiling(max(seen, default=0) / 4)
    if whole:
        step = max(1.0, math.ceil(step))  # counts: no axis line at 1.25 customers
    top = step * 4
    inner_h = HEIGHT - TOP - BOTTOM
    grid = []
    for i in range(5):
        value = top * i / 4
        y = round(TOP + inner_h * (1 - i / 4), 1)
        grid.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>'
            f'<text class="tick" x="{LEFT - 8}" y="{y + 4}" text-anchor="end">'
            f"{escape(tick(value))}</text>"
        )
    every = max(1, math.ceil(n / 8))  # at most about eight dates under the axis
    inner_w = WIDTH - LEFT - RIGHT
    step = inner_w / max(n - 1, 1)
    axis = []
    for i in range(0, n, every):
        x = round(LEFT + (i * step if n > 1 else inner_w / 2), 1)
        axis.append(
            f'<text class="tick" x="{x}" y="{HEIGHT - 12}" text-anchor="middle">'
            f"{escape(labels[i])}</text>"
        )
    lines = _line(_points(current, top, n), "current")
    if compare is not None:
        lines = _line(_points(compare, top, n), "compare") + lines
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    return Markup(
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{title_id} {desc_id}" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{title_id}">{escape(title)}</title>'
        f'<desc id="{desc_id}">{escape(description)}</desc>'
        f"{''.join(grid)}{''.join(axis)}"
        f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + inner_h}" '
        f'y2="{TOP + inner_h}"/>'
        f"{lines}</svg>"
    )
