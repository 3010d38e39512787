"""Payouts, as finance works them: what is due per currency, a batch previewed before it is
made, the batches and their lines, the same CSV files the API exports, marking a batch
exported or paid, failing a line with its reason. Every figure and every change is the
payouts room's (`referral.payouts.service`), with the person signed in as the actor."""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Stream

from referral.console.pages.common import FormDep, SessionDep, back_to, page
from referral.http.deps import Conn, RuntimeDep
from referral.lib.errors import InvalidInput, NotFound
from referral.lib.pagination import Cursor, ListQuery
from referral.payouts import export, service
from referral.payouts.schemas import BatchCreate, BatchStatus

PAGE_SIZE = 25
LINES_PAGE_SIZE = 50
UNPAYABLE_SHOWN = 50

WORDS = {
    "en": {
        "payouts_title": "Payouts",
        "payouts_intro": "Approved rewards are paid in batches: one per currency and kind. "
        "Preview a batch, create it, download its file for your bank or PayPal, then mark "
        "it paid once the money has gone out.",
        "due_title": "Due now",
        "due_intro": "Approved rewards that no batch holds yet, per payee, with clawbacks "
        "netted off. Payees under the minimum roll over to a later batch.",
        "due_empty": "Nothing is due. Rewards appear here once they are approved (after the "
        "program's hold, or approved in the review queue).",
        "currency": "Currency",
        "kind": "Kind",
        "kind_cash": "Cash",
        "kind_store_credit": "Store credit",
        "payees": "Payees",
        "rewards": "Rewards",
        "total": "Total",
        "netted": "Clawbacks netted",
        "rolled_over": "Rolling over",
        "rolled_over_said": "Under {minimum}, rolling over: {payees}, {amount}",
        "none_reach_minimum": "No payee reaches the minimum yet.",
        "n_payees_one": "{n} payee",
        "n_payees": "{n} payees",
        "n_rewards_one": "{n} reward",
        "n_rewards": "{n} rewards",
        "n_lines_one": "{n} line",
        "n_lines": "{n} lines",
        "preview": "Preview a batch",
        "preview_title": "New batch: {currency}, {kind}",
        "preview_intro": "This is what the batch will hold if you create it now. Nothing has "
        "been created yet.",
        "preview_cutoff": "Rewards approved up to",
        "minimum": "Minimum per payee",
        "no_minimum": "none",
        "preview_rolled": "Under the minimum, left for a later batch: {payees}, {amount}.",
        "preview_empty": "No payee reaches the minimum, so a batch now would pay nothing. "
        "Their rewards stay due and roll over.",
        "create": "Create this batch",
        "cancel_preview": "Back to payouts",
        "batches": "Batches",
        "batches_empty": "No batches yet. Preview one from what is due above.",
        "status": "Status",
        "created": "Created",
        "all": "All",
        "next_older": "Older batches",
        "first_page": "Newest",
        "status_open": "open",
        "status_exported": "exported",
        "status_paid": "paid",
        "status_cancelled": "cancelled",
        "status_failed": "failed",
        "line_open": "to pay",
        "line_paid": "paid",
        "line_failed": "failed",
        "batch_title": "Batch {id}",
        "batch_created": "Batch created: {payees}, {total}.",
        "batch_exported": "Marked exported: the file is with the payment rails.",
        "batch_paid": "Marked paid: {payees}, {total}. Their rewards are paid.",
        "batch_cancelled": "Batch cancelled: its rewards are due again.",
        "line_failed_notice": "The line for {payee} is marked failed: {reason}. Their "
        "rewards are due again.",
        "facts": "About this batch",
        "cutoff": "Approved up to",
        "exported_at": "Exported",
        "paid_at": "Paid",
        "cancelled_at": "Cancelled",
        "downloads": "Files",
        "downloads_intro": "The same files the API exports. Downloading changes nothing.",
        "csv_payouts": "Payouts (one row per payee)",
        "csv_rewards": "Rewards and clawbacks (one row each)",
        "csv_paypal": "PayPal upload",
        "csv_paypal_part": "PayPal upload, part {n} of {parts}",
        "paypal_left_out": "The PayPal file leaves out {lines} ({amount}): pay those "
        "another way, or mark them failed.",
        "paypal_all": "The PayPal file pays every line.",
        "reason_no_email": "no email on file",
        "reason_invalid_email": "the email cannot receive money",
        "reason_amount_not_whole_units": "PayPal pays this currency in whole units only",
        "actions": "Next step",
        "mark_exported": "Mark exported",
        "mark_exported_said": "Say the file has been handed to the bank or PayPal.",
        "mark_paid": "Mark paid",
        "mark_paid_said": "Once the money has gone out: every line still to pay becomes "
        "paid, as {actor}.",
        "cancel_batch": "Cancel batch",
        "cancel_said": "Before payment only: its rewards become due again.",
        "no_actions_paid": "This batch is paid. A payee that did not receive the money can "
        "still be marked failed below; their rewards become due again.",
        "no_actions_cancelled": "This batch is cancelled. Its rewards were returned.",
        "lines": "Lines",
        "lines_all": "All ({n})",
        "lines_failed": "Failed ({n})",
        "payee": "Payee",
        "email": "Email",
        "amount": "Amount",
        "reference": "Reference",
        "failure_reason": "Why it failed",
        "fail": "Mark failed",
        "fail_reason": "Reason",
        "fail_reason_placeholder": "account closed",
        "lines_empty": "This batch has no lines.",
        "failed_empty": "No line has failed.",
        "next_lines": "More lines",
        "left_out_title": "Left out of the PayPal file",
        "why": "Why",
        "failed_figure": "Failed",
        "failed_figure_said": "not paid by this batch, due again",
    },
    "sv": {
        "payouts_title": "Utbetalningar",
        "payouts_intro": "Godkända belöningar betalas ut i omgångar: en per valuta och slag. "
        "Förhandsgranska en omgång, skapa den, ladda ner filen till banken eller PayPal, och "
        "markera den betald när pengarna har gått iväg.",
        "due_title": "Att betala nu",
        "due_intro": "Godkända belöningar som ingen omgång har tagit än, per mottagare, med "
        "återkrav avräknade. Mottagare under minimibeloppet flyttas till en senare omgång.",
        "due_empty": "Inget att betala. Belöningar syns här när de är godkända (efter "
        "programmets väntetid, eller godkända i granskningskön).",
        "currency": "Valuta",
        "kind": "Slag",
        "kind_cash": "Kontant",
        "kind_store_credit": "Tillgodo",
        "payees": "Mottagare",
        "rewards": "Belöningar",
        "total": "Summa",
        "netted": "Avräknade återkrav",
        "rolled_over": "Flyttas fram",
        "rolled_over_said": "Under {minimum}, flyttas fram: {payees}, {amount}",
        "none_reach_minimum": "Ingen mottagare når minimibeloppet än.",
        "n_payees_one": "{n} mottagare",
        "n_payees": "{n} mottagare",
        "n_rewards_one": "{n} belöning",
        "n_rewards": "{n} belöningar",
        "n_lines_one": "{n} rad",
        "n_lines": "{n} rader",
        "preview": "Förhandsgranska en omgång",
        "preview_title": "Ny omgång: {currency}, {kind}",
        "preview_intro": "Så här ser omgången ut om du skapar den nu. Inget har skapats än.",
        "preview_cutoff": "Belöningar godkända till och med",
        "minimum": "Minimibelopp per mottagare",
        "no_minimum": "inget",
        "preview_rolled": "Under minimibeloppet, väntar till en senare omgång: {payees}, {amount}.",
        "preview_empty": "Ingen mottagare når minimibeloppet, så en omgång nu skulle inte "
        "betala något. Belöningarna ligger kvar och flyttas fram.",
        "create": "Skapa omgången",
        "cancel_preview": "Tillbaka till utbetalningar",
        "batches": "Omgångar",
        "batches_empty": "Inga omgångar än. Förhandsgranska en utifrån det som ska betalas ovan.",
        "status": "Status",
        "created": "Skapad",
        "all": "Alla",
        "next_older": "Äldre omgångar",
        "first_page": "Nyaste",
        "status_open": "öppen",
        "status_exported": "exporterad",
        "status_paid": "betald",
        "status_cancelled": "avbruten",
        "status_failed": "misslyckad",
        "line_open": "att betala",
        "line_paid": "betald",
        "line_failed": "misslyckad",
        "batch_title": "Omgång {id}",
        "batch_created": "Omgången är skapad: {payees}, {total}.",
        "batch_exported": "Markerad som exporterad: filen är hos banken eller PayPal.",
        "batch_paid": "Markerad som betald: {payees}, {total}. Belöningarna är betalda.",
        "batch_cancelled": "Omgången är avbruten: belöningarna ska betalas igen.",
        "line_failed_notice": "Raden för {payee} är markerad som misslyckad: {reason}. "
        "Belöningarna ska betalas igen.",
        "facts": "Om omgången",
        "cutoff": "Godkända till och med",
        "exported_at": "Exporterad",
        "paid_at": "Betald",
        "cancelled_at": "Avbruten",
        "downloads": "Filer",
        "downloads_intro": "Samma filer som API:t exporterar. Att ladda ner ändrar inget.",
        "csv_payouts": "Utbetalningar (en rad per mottagare)",
        "csv_rewards": "Belöningar och återkrav (en rad var)",
        "csv_paypal": "PayPal-fil",
        "csv_paypal_part": "PayPal-fil, del {n} av {parts}",
        "paypal_left_out": "PayPal-filen utelämnar {lines} ({amount}): betala dem på annat "
        "sätt, eller markera dem som misslyckade.",
        "paypal_all": "PayPal-filen betalar alla rader.",
        "reason_no_email": "ingen e-post finns",
        "reason_invalid_email": "e-postadressen kan inte ta emot pengar",
        "reason_amount_not_whole_units": "PayPal betalar den här valutan bara i hela enheter",
        "actions": "Nästa steg",
        "mark_exported": "Markera som exporterad",
        "mark_exported_said": "Säg att filen har lämnats till banken eller PayPal.",
        "mark_paid": "Markera som betald",
        "mark_paid_said": "När pengarna har gått iväg: varje rad som återstår blir betald, "
        "av {actor}.",
        "cancel_batch": "Avbryt omgången",
        "cancel_said": "Bara före betalning: belöningarna ska betalas igen.",
        "no_actions_paid": "Omgången är betald. En mottagare som inte fick pengarna kan "
        "fortfarande markeras som misslyckad nedan; belöningarna ska då betalas igen.",
        "no_actions_cancelled": "Omgången är avbruten. Belöningarna lämnades tillbaka.",
        "lines": "Rader",
        "lines_all": "Alla ({n})",
        "lines_failed": "Misslyckade ({n})",
        "payee": "Mottagare",
        "email": "E-post",
        "amount": "Belopp",
        "reference": "Referens",
        "failure_reason": "Varför den misslyckades",
        "fail": "Markera som misslyckad",
        "fail_reason": "Skäl",
        "fail_reason_placeholder": "kontot avslutat",
        "lines_empty": "Omgången har inga rader.",
        "failed_empty": "Ingen rad har misslyckats.",
        "next_lines": "Fler rader",
        "left_out_title": "Utelämnade ur PayPal-filen",
        "why": "Varför",
        "failed_figure": "Misslyckade",
        "failed_figure_said": "betalas inte av omgången, ska betalas igen",
    },
}

Kind = Literal["cash", "store_credit"]


@get("/payouts", include_in_schema=False)
async def payouts_page(
    request: Request,
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    status: FromQuery[BatchStatus | None] = None,
    after: FromQuery[str | None] = None,
    cancelled: FromQuery[str | None] = None,
) -> Response:
    """What is due per currency, and the batches, newest first."""
    due = await service.balances(conn, runtime=runtime, caller=session.caller)
    listing = ListQuery(limit=PAGE_SIZE, starting_after=after or None)
    batches = await service.list_batches(
        conn,
        runtime=runtime,
        caller=session.caller,
        status=status,
        cursor=listing.cursor(runtime.ids, "payout"),
        newest_first=True,
    )
    return page(
        request,
        "payouts.html",
        session=session,
        section="payouts",
        catalogue=WORDS,
        due=due,
        batches=batches.data,
        tab=status or "",
        after=after or "",
        next_after=batches.data[-1].id if batches.has_more else None,
        cancelled=cancelled,
    )


@get("/payouts/preview", include_in_schema=False)
async def preview_page(
    request: Request,
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    currency: FromQuery[str],
    kind: FromQuery[Kind] = "cash",
) -> Response:
    """What a batch made now would hold, before anything is made."""
    shown = await service.preview(
        conn, runtime=runtime, caller=session.caller, data=_batch_create(currency, kind)
    )
    return page(
        request,
        "payouts_preview.html",
        session=session,
        section="payouts",
        catalogue=WORDS,
        preview=shown,
    )


@post("/payouts/batches", include_in_schema=False, status_code=303)
async def create_batch(
    conn: Conn, runtime: RuntimeDep, session: SessionDep, form: FormDep
) -> Response:
    """The batch as previewed: the same currency, kind, minimum and cutoff."""
    data = _batch_create(
        str(form.get("currency") or ""),
        str(form.get("kind") or "cash"),
        cutoff=str(form.get("cutoff") or "") or None,
        minimum=str(form.get("minimum") or "") or None,
    )
    made = await service.create(conn, runtime=runtime, caller=session.caller, data=data)
    return back_to(f"/console/payouts/{made.id}", done="created")


@get("/payouts/{batch_id:str}", include_in_schema=False)
async def batch_page(
    request: Request,
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    batch_id: FromPath[str],
    lines: FromQuery[Literal["all", "failed"]] = "all",
    after: FromQuery[str | None] = None,
    done: FromQuery[str | None] = None,
    payee: FromQuery[str | None] = None,
    reason: FromQuery[str | None] = None,
) -> Response:
    """A batch: its facts, files, next step and lines (all, or the failed ones)."""
    caller = session.caller
    batch = await service.get(conn, runtime=runtime, caller=caller, batch_id=batch_id)
    shown = await service.lines_page(
        conn,
        runtime=runtime,
        caller=caller,
        batch_id=batch_id,
        status="failed" if lines == "failed" else None,
        cursor=Cursor(
            limit=LINES_PAGE_SIZE,
            after_id=runtime.ids.decode("payout_line", after) if after else None,
        ),
    )
    paypal = await service.paypal_export(conn, runtime=runtime, caller=caller, batch_id=batch_id)
    return page(
        request,
        "payouts_batch.html",
        session=session,
        section="payouts",
        catalogue=WORDS,
        batch=batch,
        lines=shown,
        showing=lines,
        next_after=shown.data[-1].id if shown.has_more else None,
        paypal=paypal,
        unpayable=paypal.unpayable[:UNPAYABLE_SHOWN],
        done=done,
        payee=(payee or "")[:200],
        reason=(reason or "")[:500],
    )


@post("/payouts/{batch_id:str}/{step:str}", include_in_schema=False, status_code=303)
async def batch_step(
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    form: FormDep,
    batch_id: FromPath[str],
    step: FromPath[str],
) -> Response:
    """The batch's next step: `exported` (the file is with the rails), `paid` (the money
    went out, as the person signed in) or `cancelled` (its rewards are due again)."""
    caller = session.caller
    if step == "paid":
        await service.mark_paid(
            conn, runtime=runtime, caller=caller, batch_id=batch_id, actor=session.actor
        )
    elif step == "exported":
        await service.mark_exported(conn, runtime=runtime, caller=caller, batch_id=batch_id)
    elif step == "cancelled":
        await service.cancel(conn, runtime=runtime, caller=caller, batch_id=batch_id)
    else:
        raise NotFound(f"no step {step[:40]!r} for a batch", code="not_found")
    return back_to(f"/console/payouts/{batch_id}", done=step)


@post("/payouts/{batch_id:str}/lines/{line_id:str}/fail", include_in_schema=False, status_code=303)
async def fail_line(
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    form: FormDep,
    batch_id: FromPath[str],
    line_id: FromPath[str],
) -> Response:
    reason = " ".join(str(form.get("reason") or "").split())[:500]
    if not reason:
        raise InvalidInput("say why the line failed", code="invalid_reason")
    await service.fail_line(
        conn,
        runtime=runtime,
        caller=session.caller,
        batch_id=batch_id,
        line_id=line_id,
        reason=reason,
        actor=session.actor,
    )
    return back_to(
        f"/console/payouts/{batch_id}",
        done="failed",
        payee=str(form.get("payee") or "")[:200],
        reason=reason,
        lines="failed",
    )


@get("/payouts/{batch_id:str}/payouts.csv", include_in_schema=False)
async def payouts_csv(
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    batch_id: FromPath[str],
    format: FromQuery[export.Format] = "standard",
    part: FromQuery[int] = 1,
) -> Stream:
    """The API's payouts.csv (or a part of its PayPal layout), byte for byte."""
    query = await service.export_query(
        conn, runtime=runtime, caller=session.caller, batch_id=batch_id, format=format, part=part
    )
    name = f"{batch_id}-paypal-{part}.csv" if format == "paypal" else f"{batch_id}.csv"
    return export.download(runtime.pool, query=query, filename=name)


@get("/payouts/{batch_id:str}/rewards.csv", include_in_schema=False)
async def rewards_csv(
    conn: Conn, runtime: RuntimeDep, session: SessionDep, batch_id: FromPath[str]
) -> Stream:
    query = await service.export_query(
        conn, runtime=runtime, caller=session.caller, batch_id=batch_id, rewards=True
    )
    return export.download(runtime.pool, query=query, filename=f"{batch_id}-rewards.csv")


def _batch_create(
    currency: str, kind: str, *, cutoff: str | None = None, minimum: str | None = None
) -> BatchCreate:
    """The batch asked for, read strictly (as the API reads its body): a bad value is a page
    that says which."""
    fields: dict[str, object] = {"currency": currency.strip().upper(), "kind": kind}
    if cutoff:
        fields["cutoff"] = cutoff
    if minimum:
        fields["minimum"] = minimum
    try:
        return msgspec.convert(fields, BatchCreate, strict=False)
    except msgspec.ValidationError as exc:
        raise InvalidInput(str(exc), code="invalid_batch") from exc
