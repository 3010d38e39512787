"""Charts drawn on the server: what a reader (and a screen reader) gets from the SVG."""

from __future__ import annotations

import re

from referral.console.charts import line_chart, nice_ceiling


def _chart(**overrides):
    values = dict(
        chart_id="c",
        title="New customers <from referral>",
        description="per day",
        labels=["1 Dec", "2 Dec", "3 Dec", "4 Dec"],
        current=[0, 3, None, 1],
        compare=[1, 1, 2, 2],
        whole=True,
    )
    values.update(overrides)
    return str(line_chart(**values))


def test_counts_get_whole_number_axis_lines():
    ticks = re.findall(r'class="tick" x="\d+" y="[\d.]+" text-anchor="end">([^<]+)<', _chart())
    assert ticks == ["0", "1", "2", "3", "4"]


def test_a_missing_bucket_breaks_the_line_and_the_compare_period_is_drawn_apart():
    svg = _chart()
    assert svg.count('class="current"') == 2  # before and after the gap: a line and a point
    assert svg.count('class="compare"') == 1


def test_the_title_is_escaped_and_named_for_screen_readers():
    svg = _chart()
    assert '<title id="c-title">New customers &lt;from referral&gt;</title>' in svg
    assert 'role="img"' in svg and 'aria-labelledby="c-title c-desc"' in svg
    assert "style=" not in svg  # the page's CSP would block inline styles


def test_nice_ceiling():
    assert [nice_ceiling(v) for v in (0, 0.7, 3, 12, 2400)] == [1.0, 1.0, 5, 20, 2500]
