"""A report answer as CSV in long form: one row per value, the same file from the API
(`Accept: text/csv`) and from the console's download buttons."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Literal

from referral.analytics import periods
from referral.analytics.schemas import Answer

CSV_COLUMNS = (
    "period",
    "bucket_start",
    "bucket_end",
    "group",
    "key",
    "metric",
    "unit",
    "currency",
    "value",
)


def report_csv(answer: Answer) -> Iterator[bytes]:
    """The answer in long form, a row per value, streamed as it is written."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> bytes:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text.encode()

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for period, start, end, group, key, values in _csv_groups(answer):
        for v in values:
            writer.writerow(
                (
                    period,
                    start.isoformat(),
                    end.isoformat(),
                    periods.csv_safe(group),
                    periods.csv_safe(key),
                    periods.csv_safe(v.metric),
                    v.unit,
                    periods.csv_safe(v.currency or ""),
                    periods.csv_number(v.value),
                )
            )
        yield flush()


def _csv_groups(answer: Answer) -> Iterator[tuple]:
    yield ("current", answer.start, answer.end, "totals", "", answer.totals)
    for bucket in answer.series:
        yield ("current", bucket.start, bucket.end, "series", "", bucket.values)
    if answer.breakdown is not None:
        for row in answer.breakdown.rows:
            yield ("current", answer.start, answer.end, answer.breakdown.by, row.key, row.values)
    kind: Literal["advocate", "story"] = "advocate" if answer.report == "advocates" else "story"
    for ranked in answer.rows:
        yield ("current", answer.start, answer.end, kind, ranked.id, ranked.values)
    if answer.compare is not None:
        other = answer.compare
        yield ("compare", other.start, other.end, "totals", "", other.totals)
        for bucket in other.series:
            yield ("compare", bucket.start, bucket.end, "series", "", bucket.values)
