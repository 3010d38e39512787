"""HTTP handler for the analytics reports: JSON, or the same figures as CSV."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get
from litestar.exceptions import ValidationException
from litestar.params import PathParameter, QueryParameter
from litestar.response import Stream

from referral.analytics import reports
from referral.analytics.export import CSV_COLUMNS, report_csv
from referral.analytics.periods import CompareMode, Interval
from referral.analytics.schemas import (
    REPORTS,
    AdvocateRanking,
    Answer,
    ReportQuery,
    StoryRanking,
    catalogue_markdown,
)
from referral.http.deps import CallerDep, Conn, RuntimeDep
from referral.http.negotiation import json_or_csv, wants_csv
from referral.lib import problem_docs

CSV_TEXT = (
    "With `Accept: text/csv`: the same figures in long form, one row per value: "
    + ",".join(CSV_COLUMNS)
    + ". `period` is current or compare; `group` is totals (the range), series (a bucket), "
    "the breakdown's `by` (its row's key in `key`), or advocate / story (a leaderboard row, "
    "its public id in `key`); `value` is empty for null. Text that a spreadsheet would run "
    "as a formula starts with an apostrophe."
)


# The report's 200 in both of its forms: JSON (the default) and CSV (`Accept`).
JsonOrCsv = json_or_csv(CSV_TEXT)


_DATE = {"format": "date"}


def _day(name: str, value: str | None) -> date | None:
    """A date from the query string: YYYY-MM-DD, or a 400 naming the parameter."""
    if value is None:
        return None
    try:
        return msgspec.convert(value, date, strict=True)
    except msgspec.ValidationError:
        message = "Expected a date as YYYY-MM-DD, e.g. 2026-01-31"
        raise ValidationException(
            detail=message, extra=[{"key": name, "message": message, "source": "query"}]
        ) from None


class AnalyticsController(Controller):
    path = "/v1/analytics"
    tags = ["analytics"]

    @get(
        "/{report:str}",
        operation_id="getAnalyticsReport",
        operation_class=JsonOrCsv,
        responses=problem_docs.responses(
            "getAnalyticsReport",
            {
                404: (
                    "report_not_found",
                    "program_not_found",
                    "story_not_found",
                    "advocate_not_found",
                    "merchant_not_found",
                ),
                422: ("invalid_range", "invalid_filter", "invalid_ranking", "unknown_currency"),
            },
        ),
        summary="A growth report: funnel, impact, cost, virality, value, leaderboards, fraud",
        description="Figures from the analytics rollups (kept as orders, referrals, rewards, "
        "clicks and shares are written; never a scan of raw rows), over `from`..`to` "
        "(inclusive, the merchant's calendar days; default the last 30), bucketed by "
        "`interval`, with an optional `compare` period. Every figure is a value with its "
        "unit; money is in minor units per currency, never converted or added across "
        "currencies; a rate whose denominator is 0 is null. Test and live keys see their "
        "own mode's data only.\n\n" + CSV_TEXT + "\n\n" + catalogue_markdown(),
    )
    async def read(
        self,
        request: Request,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        report: Annotated[
            str,
            PathParameter(
                description="The report: " + ", ".join(REPORTS),
                schema_extra={"enum": list(REPORTS)},
            ),
        ],
        program_id: Annotated[
            str | None,
            QueryParameter(description="One program (prg_…); all of the merchant's if left out"),
        ] = None,
        from_: Annotated[
            str | None,
            QueryParameter(
                name="from",
                description="First day (YYYY-MM-DD, the merchant's day; default 29 days "
                "before `to`)",
                schema_extra=_DATE,
            ),
        ] = None,
        to: Annotated[
            str | None,
            QueryParameter(
                description="Last day, inclusive (default today in the merchant's time zone)",
                schema_extra=_DATE,
            ),
        ] = None,
        interval: Annotated[
            Interval,
            QueryParameter(description="Series buckets: day, week (Monday to Sunday), month"),
        ] = "day",
        compare: Annotated[
            CompareMode,
            QueryParameter(
                description="previous: as many days just before; year: 364 days earlier "
                "(weekdays align)"
            ),
        ] = "none",
        channel: Annotated[
            str | None,
            QueryParameter(
                description="Funnel only: one channel (whatsapp, email, sms, x, facebook, "
                "linkedin, copy, qr, story, link, code, other, …)",
                max_length=40,
            ),
        ] = None,
        story_id: Annotated[
            str | None, QueryParameter(description="Funnel only: one story (sty_…)")
        ] = None,
        advocate_id: Annotated[
            str | None,
            QueryParameter(description="Funnel only: one advocate (adv_…); not with channel"),
        ] = None,
        by: Annotated[
            AdvocateRanking | StoryRanking | None,
            QueryParameter(
                description="Leaderboards: advocates by first_orders (default), "
                "first_order_revenue (with `currency`) or unique_clicks; stories by clicks "
                "(default), signups, first_orders or orders_per_view"
            ),
        ] = None,
        limit: Annotated[
            int | None, QueryParameter(ge=1, le=100, description="Leaderboards: rows (default 10)")
        ] = None,
        currency: Annotated[
            str | None,
            QueryParameter(
                description="Advocates leaderboard: the currency of first_order_revenue",
                pattern="^[A-Z]{3}$",
            ),
        ] = None,
    ) -> Response[Answer]:
        query = ReportQuery(
            program_id=program_id,
            start=_day("from", from_),
            end=_day("to", to),
            interval=interval,
            compare=compare,
            channel=channel,
            story_id=story_id,
            advocate_id=advocate_id,
            by=by,
            limit=limit,
            currency=currency,
        )
        answer = await reports.report(
            conn, runtime=runtime, caller=caller, name=report, query=query
        )
        if wants_csv(request.headers.get("accept", "")):
            return Stream(
                report_csv(answer),
                media_type="text/csv",  # Litestar adds the charset
                headers={
                    "content-disposition": f'attachment; filename="{answer.report}-'
                    f'{answer.start}-{answer.end}.csv"',
                    "cache-control": "no-store",
                },
            )
        return Response(answer, headers={"cache-control": "no-store"})
