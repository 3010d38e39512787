"""The overview: the analytics first screen over a range, with its compare period.

Every figure is an analytics report's (`impact`, `cost`, `virality`, `funnel`, `value`),
read through `analytics.reports.report` as the API reads it; this page only lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Literal

from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Stream

from referral.analytics import export, reports
from referral.analytics.schemas import Answer, ReportQuery
from referral.console.charts import line_chart
from referral.console.figures import Figures, change
from referral.console.pages.common import Formats, SessionDep, locale_of, page
from referral.console.words import translator
from referral.http.deps import Conn, RuntimeDep
from referral.lib.pagination import Cursor
from referral.programs import service as programs

REPORTS = ("impact", "cost", "virality", "funnel", "value")
CHARTED = "impact"
COMPARED = frozenset({"impact", "cost", "virality"})  # the cards' changes; not the tables
CHANNEL_ORDER = (
    "whatsapp",
    "email",
    "sms",
    "x",
    "facebook",
    "linkedin",
    "copy",
    "qr",
    "story",
    "link",
    "code",
    "other",
)

WORDS = {
    "en": {
        "overview_title": "Overview",
        "range": "Dates",
        "from": "From",
        "to": "To",
        "program": "Program",
        "all_programs": "All programs",
        "compare": "Compare with",
        "compare_none": "Nothing",
        "compare_previous": "The period before",
        "compare_year": "A year earlier",
        "interval": "Per",
        "interval_day": "Day",
        "interval_week": "Week",
        "interval_month": "Month",
        "show": "Show",
        "range_said": "{start} – {end}, {zone}",
        "compare_said": "compared with {start} – {end}",
        "referred_revenue": "Referred revenue",
        "revenue_share": "{share} of all revenue",
        "new_from_referral": "New customers from referral",
        "new_share": "{share} of all new customers",
        "reward_cost": "Reward cost",
        "pending_apart": "{amount} more pending",
        "roi": "Return on rewards",
        "roi_said": "(referred revenue − reward cost) ÷ reward cost",
        "k_factor": "K-factor",
        "k_parts": "{participation} shared × {invites} visitors each × {conversion} ordered",
        "k_parts_codes": "{participation} shared × {invites} visitors each × {conversion} "
        "first orders per visitor (friends also order with a code, without clicking)",
        "friends_turned": "Friends turned advocates",
        "friends_turned_said": "referred customers who went on to refer",
        "cycle": "Median cycle: {days} days from first share to a friend's first order",
        "vs_before": "{change} vs compare period",
        "estimate": "estimate",
        "chart_title": "New customers from referral",
        "chart_desc": "New customers from referral per {interval}, {start} – {end}",
        "chart_desc_compare": "; the dashed line is {start} – {end}",
        "this_period": "This period",
        "compare_period": "Compare period",
        "bucket": "Period",
        "funnel": "Funnel",
        "step": "Step",
        "count": "Count",
        "step_conversion": "From the step before",
        "step_share_page_views": "Share pages opened",
        "step_story_views": "Story pages viewed",
        "step_shares": "Shares",
        "step_clicks": "Clicks",
        "step_unique_clicks": "Unique clicks",
        "step_visitors": "Unique visitors",
        "step_signups": "Signups",
        "step_first_orders": "Referred first orders",
        "first_order_revenue": "Referred first-order revenue",
        "channels": "By channel",
        "channel": "Channel",
        "revenue": "Revenue",
        "no_channels": "No shares or clicks in this range yet. Share links from the share "
        "page or the widget, and each channel shows up here.",
        "channel_whatsapp": "WhatsApp",
        "channel_email": "Email",
        "channel_sms": "SMS",
        "channel_x": "X",
        "channel_facebook": "Facebook",
        "channel_linkedin": "LinkedIn",
        "channel_copy": "Copied link",
        "channel_qr": "QR code",
        "channel_story": "Story",
        "channel_code": "Code typed at checkout",
        "channel_other": "Other",
        "channel_link": "Link (no channel named)",
        "value_empty": "No window has passed yet for customers whose first order is in this "
        "range: the 30-day figures appear 30 days after their first order. Pick an earlier "
        "range to compare referred and other customers.",
        "value": "Are referred customers worth more?",
        "value_intro": "Customers whose first order falls in this range, referred or not, "
        "measured once each window has passed for them.",
        "window": "After {days} days",
        "cohort_referred": "Referred",
        "cohort_other": "Other customers",
        "repeat_rate": "Ordered again",
        "orders_per_customer": "Orders each",
        "revenue_per_customer": "Revenue each",
        "customers_measured": "Customers measured",
        "empty_title": "No referral activity in this range",
        "empty_text": "Once advocates share their links and friends order, the numbers "
        "appear here within seconds. Try a longer range, or another program.",
        "notes": "About these numbers",
        "downloads": "Download these figures (CSV, as the API gives them):",
    },
    "sv": {
        "overview_title": "Översikt",
        "range": "Datum",
        "from": "Från",
        "to": "Till",
        "program": "Program",
        "all_programs": "Alla program",
        "compare": "Jämför med",
        "compare_none": "Inget",
        "compare_previous": "Perioden före",
        "compare_year": "Ett år tidigare",
        "interval": "Per",
        "interval_day": "Dag",
        "interval_week": "Vecka",
        "interval_month": "Månad",
        "show": "Visa",
        "range_said": "{start} – {end}, {zone}",
        "compare_said": "jämfört med {start} – {end}",
        "referred_revenue": "Intäkter via rekommendationer",
        "revenue_share": "{share} av alla intäkter",
        "new_from_referral": "Nya kunder via rekommendationer",
        "new_share": "{share} av alla nya kunder",
        "reward_cost": "Kostnad för belöningar",
        "pending_apart": "{amount} till väntar",
        "roi": "Avkastning på belöningar",
        "roi_said": "(intäkter via rekommendationer − belöningskostnad) ÷ belöningskostnad",
        "k_factor": "K-faktor",
        "k_parts": "{participation} delade × {invites} besökare var × {conversion} beställde",
        "k_parts_codes": "{participation} delade × {invites} besökare var × {conversion} "
        "första köp per besökare (vänner köper också med en kod, utan att klicka)",
        "friends_turned": "Vänner som blev ambassadörer",
        "friends_turned_said": "rekommenderade kunder som själva rekommenderade",
        "cycle": "Mediancykel: {days} dagar från första delning till en väns första beställning",
        "vs_before": "{change} mot jämförelseperioden",
        "estimate": "uppskattning",
        "chart_title": "Nya kunder via rekommendationer",
        "chart_desc": "Nya kunder via rekommendationer per {interval}, {start} – {end}",
        "chart_desc_compare": "; den streckade linjen är {start} – {end}",
        "this_period": "Den här perioden",
        "compare_period": "Jämförelseperioden",
        "bucket": "Period",
        "funnel": "Tratt",
        "step": "Steg",
        "count": "Antal",
        "step_conversion": "Från steget före",
        "step_share_page_views": "Delningssidor öppnade",
        "step_story_views": "Berättelser visade",
        "step_shares": "Delningar",
        "step_clicks": "Klick",
        "step_unique_clicks": "Unika klick",
        "step_visitors": "Unika besökare",
        "step_signups": "Registreringar",
        "step_first_orders": "Första beställningar via rekommendation",
        "first_order_revenue": "Intäkter från första beställningar",
        "channels": "Per kanal",
        "channel": "Kanal",
        "revenue": "Intäkter",
        "no_channels": "Inga delningar eller klick under perioden än. Dela länkar från "
        "delningssidan eller widgeten, så syns varje kanal här.",
        "channel_whatsapp": "WhatsApp",
        "channel_email": "E-post",
        "channel_sms": "SMS",
        "channel_x": "X",
        "channel_facebook": "Facebook",
        "channel_linkedin": "LinkedIn",
        "channel_copy": "Kopierad länk",
        "channel_qr": "QR-kod",
        "channel_story": "Berättelse",
        "channel_code": "Kod i kassan",
        "channel_other": "Annat",
        "channel_link": "Länk (ingen kanal angiven)",
        "value_empty": "Inget fönster har passerat än för kunder vars första beställning "
        "ligger i perioden: 30-dagarssiffrorna syns 30 dagar efter första beställningen. Välj "
        "en tidigare period för att jämföra rekommenderade och övriga kunder.",
        "value": "Är rekommenderade kunder mer värda?",
        "value_intro": "Kunder vars första beställning ligger i perioden, rekommenderade eller "
        "inte, mätta när varje fönster har passerat för dem.",
        "window": "Efter {days} dagar",
        "cohort_referred": "Rekommenderade",
        "cohort_other": "Övriga kunder",
        "repeat_rate": "Beställde igen",
        "orders_per_customer": "Beställningar var",
        "revenue_per_customer": "Intäkt per kund",
        "customers_measured": "Kunder mätta",
        "empty_title": "Ingen aktivitet under perioden",
        "empty_text": "När ambassadörer delar sina länkar och vänner beställer syns siffrorna "
        "här inom några sekunder. Prova en längre period, eller ett annat program.",
        "notes": "Om siffrorna",
        "downloads": "Ladda ner siffrorna (CSV, som API:et ger dem):",
    },
}


@dataclass
class Card:
    label: str
    value: str
    detail: str = ""
    change: float | None = None
    change_text: str = ""
    estimate: bool = False


@dataclass
class Overview:
    cards: list[Card]
    chart: object
    chart_rows: list[tuple[str, str, str]]
    funnel: list[tuple[str, str, str]]
    channels: list[dict[str, object]]
    channel_currencies: list[str]
    value_rows: list[dict[str, object]]
    value_currencies: list[str]
    notes: list[str] = field(default_factory=list)
    empty: bool = False


def _card(t, fmt: Formats, label: str, now, before, shown: str, detail: str = "", estimate=False):
    moved = change(now, before)
    text = t("vs_before", change=("+" if moved and moved > 0 else "") + fmt.percent(moved, 0))
    return Card(label, shown, detail, moved, text if moved is not None else "", estimate)


def _layout(answers: dict[str, Answer], t, fmt: Formats) -> Overview:
    now = {name: Figures(a.totals) for name, a in answers.items()}
    before = {
        name: Figures(a.compare.totals) if a.compare else Figures([]) for name, a in answers.items()
    }
    impact, cost, virality = now["impact"], now["cost"], now["virality"]
    cards: list[Card] = []
    for currency in impact.currencies("referred_revenue") or ["EUR"]:
        amount = impact.get("referred_revenue", currency)
        share = impact.get("referred_revenue_share", currency)
        cards.append(
            _card(
                t,
                fmt,
                t("referred_revenue"),
                amount,
                before["impact"].get("referred_revenue", currency),
                fmt.money(amount or 0, currency),
                t("revenue_share", share=fmt.percent(share)) if share is not None else "",
            )
        )
    referred_new = impact.get("referred_new_customers")
    share = impact.get("referred_new_customer_share")
    cards.append(
        _card(
            t,
            fmt,
            t("new_from_referral"),
            referred_new,
            before["impact"].get("referred_new_customers"),
            fmt.number(referred_new or 0),
            t("new_share", share=fmt.percent(share)) if share is not None else "",
        )
    )
    for currency in cost.currencies("reward_cost") or impact.currencies("referred_revenue")[:1]:
        spent = cost.get("reward_cost", currency)
        pending = cost.get("reward_pending", currency)
        cards.append(
            _card(
                t,
                fmt,
                t("reward_cost"),
                spent,
                before["cost"].get("reward_cost", currency),
                fmt.money(spent or 0, currency),
                t("pending_apart", amount=fmt.money(pending, currency)) if pending else "",
            )
        )
        roi = cost.get("roi", currency)
        cards.append(
            _card(
                t,
                fmt,
                t("roi"),
                roi,
                before["cost"].get("roi", currency),
                fmt.percent(roi, 0),
                t("roi_said"),
            )
        )
    k = virality.get("k_factor")
    cards.append(
        _card(
            t,
            fmt,
            t("k_factor"),
            k,
            before["virality"].get("k_factor"),
            fmt.number(k, 2),
            _k_parts(t, fmt, virality),
            estimate=virality.estimate("k_factor"),
        )
    )
    turned = virality.get("friends_turned_advocates")
    cycle = virality.get("cycle_days_median")
    cards.append(
        _card(
            t,
            fmt,
            t("friends_turned"),
            turned,
            before["virality"].get("friends_turned_advocates"),
            fmt.number(turned or 0),
            t("cycle", days=fmt.number(cycle, 0))
            if cycle is not None
            else t("friends_turned_said"),
        )
    )

    chart, rows = _chart(answers["impact"], t, fmt)
    funnel_answer = answers["funnel"]
    funnel = Figures(funnel_answer.totals)
    steps = [v.metric for v in funnel_answer.totals if f"step_{v.metric}" in WORDS["en"]]
    funnel_rows = []
    previous = None
    for step in steps:
        ratio = None
        if previous is not None:
            ratio = next(
                (v.value for v in funnel_answer.totals if v.metric.startswith(f"{step}_per_")),
                None,
            )
        estimate = " (" + t("estimate") + ")" if funnel.estimate(step) else ""
        funnel_rows.append(
            (
                t(f"step_{step}"),
                fmt.number(funnel.get(step)) + estimate,
                "" if previous is None else fmt.percent(ratio),
            )
        )
        previous = step
    channels, channel_currencies = _channels(funnel_answer, t, fmt)
    value_rows, value_currencies = _value(answers["value"], fmt)
    notes = sorted({note for a in answers.values() for note in a.notes})
    empty = not any(
        (funnel.get(s) or 0) for s in ("shares", "clicks", "signups", "first_orders")
    ) and not (impact.get("referred_orders") or 0)
    return Overview(
        cards,
        chart,
        rows,
        funnel_rows,
        channels,
        channel_currencies,
        value_rows,
        value_currencies,
        notes,
        empty,
    )


def _chart(answer: Answer, t, fmt: Formats):
    labels = [fmt.day(b.start) for b in answer.series]
    current = [Figures(b.values).get("referred_new_customers") for b in answer.series]
    compare = None
    description = t(
        "chart_desc",
        interval=t(f"interval_{answer.interval}").lower(),
        start=fmt.day(answer.start),
        end=fmt.day(answer.end),
    )
    if answer.compare is not None:
        compare = [Figures(b.values).get("referred_new_customers") for b in answer.compare.series]
        description += t(
            "chart_desc_compare",
            start=fmt.day(answer.compare.start),
            end=fmt.day(answer.compare.end),
        )
    svg = line_chart(
        chart_id="new-customers",
        title=t("chart_title"),
        description=description,
        labels=labels,
        current=current,
        compare=compare,
        tick=lambda v: fmt.number(v, 0 if v == int(v) else 1),
        whole=True,
    )
    rows = []
    for i, label in enumerate(labels):
        before = "" if compare is None or i >= len(compare) else fmt.number(compare[i])
        rows.append((label, fmt.number(current[i]), before))
    return svg, rows


def _channels(answer: Answer, t, fmt: Formats):
    if answer.breakdown is None:
        return [], []
    currencies: list[str] = []
    rows = []
    order = {c: i for i, c in enumerate(CHANNEL_ORDER)}
    for group in sorted(answer.breakdown.rows, key=lambda g: order.get(g.key, 99)):
        figures = Figures(group.values)
        for currency in figures.currencies("first_order_revenue"):
            if currency not in currencies:
                currencies.append(currency)
        name = f"channel_{group.key}"
        rows.append(
            {
                "channel": t(name) if name in WORDS["en"] else group.key,
                "figures": figures,
            }
        )
    return rows, currencies


def _k_parts(t, fmt: Formats, virality: Figures) -> str:
    """The K-factor's parts. Friends who type a code at checkout order without a click, so
    there can be more first orders than visitors: then a rate per visitor, not a percent
    over 100."""
    conversion = virality.get("friend_conversion")
    parts = {
        "participation": fmt.percent(virality.get("participation")),
        "invites": fmt.number(virality.get("invites_per_advocate"), 1),
    }
    if conversion is not None and conversion > 1:
        return t("k_parts_codes", conversion=fmt.number(conversion, 1), **parts)
    return t("k_parts", conversion=fmt.percent(conversion), **parts)


def _value(answer: Answer, fmt: Formats):
    if answer.breakdown is None:
        return [], []
    cohorts = {group.key: Figures(group.values) for group in answer.breakdown.rows}
    currencies = sorted(
        {c for f in cohorts.values() for c in f.currencies("revenue_per_customer_30")}
    )
    measured = any(f.get("mature_customers_30") for f in cohorts.values())
    rows = [{"days": days, "cohorts": cohorts} for days in (30, 90, 180)] if measured else []
    return rows, currencies


@get("/", include_in_schema=False)
async def overview(
    request: Request,
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    start: Annotated[date | None, QueryParameter(name="from")] = None,
    end: Annotated[date | None, QueryParameter(name="to")] = None,
    program: FromQuery[str | None] = None,
    compare: FromQuery[Literal["none", "previous", "year"]] = "previous",
    interval: FromQuery[Literal["day", "week", "month"]] = "day",
) -> Response:
    query = ReportQuery(
        program_id=program or None, start=start, end=end, interval=interval, compare=compare
    )
    answers = await reports.several(
        conn,
        pool=runtime.pool,
        runtime=runtime,
        caller=session.caller,
        names=REPORTS,
        query=query,
        with_series=frozenset({CHARTED}),
        with_compare=COMPARED,
    )
    listed = await programs.list_programs(
        conn, runtime=runtime, caller=session.caller, status=None, cursor=Cursor(limit=100)
    )
    locale = locale_of(request)
    t, fmt = translator(locale, WORDS), Formats(locale)
    colour = next((p.brand_colour for p in listed.data if p.id == program), None)
    first = answers["impact"]
    return page(
        request,
        "overview.html",
        session=session,
        section="overview",
        catalogue=WORDS,
        view=_layout(answers, t, fmt),
        answer=first,
        programs=listed.data,
        chosen={
            "program": program or "",
            "compare": compare,
            "interval": interval,
            "from": first.start.isoformat(),
            "to": first.end.isoformat(),
        },
        **({"colour": colour} if colour else {}),
    )


@get("/reports/{file:str}", include_in_schema=False)
async def report_csv(
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    file: FromPath[str],
    start: Annotated[date | None, QueryParameter(name="from")] = None,
    end: Annotated[date | None, QueryParameter(name="to")] = None,
    program: FromQuery[str | None] = None,
    compare: FromQuery[Literal["none", "previous", "year"]] = "previous",
    interval: FromQuery[Literal["day", "week", "month"]] = "day",
) -> Response:
    """`{report}.csv`: a report as the API's CSV (`GET /v1/analytics/{report}`, text/csv)."""
    report = file.removesuffix(".csv") if file.endswith(".csv") else ""
    query = ReportQuery(
        program_id=program or None, start=start, end=end, interval=interval, compare=compare
    )
    answer = await reports.report(
        conn, runtime=runtime, caller=session.caller, name=report, query=query
    )
    return Stream(
        export.report_csv(answer),
        media_type="text/csv",
        headers={
            "content-disposition": f'attachment; filename="{answer.report}-{answer.start}-'
            f'{answer.end}.csv"',
            "cache-control": "no-store",
        },
    )
