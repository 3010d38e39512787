"""A referral explained on one screen: how it was attributed, every eligibility check with
its inputs, the fraud decision with its reasons and evidence, each reward's history and the
reviews: the answer to "why wasn't I rewarded?". A referral held for review can be decided
here too, by the same functions as the review queue."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery

from referral.advocates import service as advocates
from referral.console.pages.common import FormDep, SessionDep, back_to, page
from referral.fraud.backtest import OVERRIDABLE
from referral.http.deps import Conn, RuntimeDep
from referral.programs import service as programs
from referral.referrals import explain, review

WORDS = {
    "en": {
        "referral_title": "Referral {id}",
        "summary": "Summary",
        "status": "Status",
        "why_status_converted": "The friend's first order counted: rewards follow the program.",
        "why_status_pending": "The friend has signed up but not ordered yet.",
        "why_status_in_review": "A fraud rule held it: nobody is rewarded until someone "
        "approves it.",
        "why_status_rejected": "It does not count: {reason}.",
        "program": "Program",
        "advocate": "Advocate",
        "friend": "Friend",
        "created": "Created",
        "signed_up": "Signed up",
        "converted": "First order",
        "first_order": "First order id",
        "attribution": "How it was attributed",
        "path": "Path",
        "path_code": "A code typed at checkout",
        "path_link": "A click on the advocate's link",
        "path_signup_email": "The friend's email at signup",
        "code": "Code",
        "channel": "Channel",
        "clicked_at": "Clicked",
        "story": "Story",
        "visitor": "Visitor",
        "referer": "Came from",
        "checks": "Eligibility checks",
        "check": "Check",
        "result": "Result",
        "detail": "Detail",
        "inputs": "Inputs",
        "passed": "passed",
        "failed": "failed",
        "no_checks": "No checks ran yet: they run on the friend's first order.",
        "decision": "Fraud decision",
        "no_decision": "No decision yet: the fraud rules decide on the friend's first order.",
        "score": "Score {score}, policy version {version}",
        "rule": "Rule",
        "action": "Action",
        "weight": "Weight",
        "evidence": "Evidence",
        "no_reasons": "No rule objected.",
        "rewards": "Rewards",
        "no_rewards": "No rewards for this referral.",
        "side_advocate": "Advocate's reward",
        "side_friend": "Friend's reward",
        "held_until": "Held until {date}",
        "held_for_review": "Held until someone approves the referral",
        "coupon": "Coupon {code}",
        "history": "History",
        "from_to": "Change",
        "amount": "Amount",
        "reason": "Reason",
        "actor": "By",
        "note": "Note",
        "when": "When",
        "reviews": "Reviews",
        "decide": "Decide",
        "decide_note": "Note (kept with the decision)",
        "approve": "Approve",
        "reject": "Reject",
        "decided_approve": "Approved.",
        "decided_reject": "Rejected.",
        "hold_rule": "Held money",
    },
    "sv": {
        "referral_title": "Rekommendation {id}",
        "summary": "Sammanfattning",
        "status": "Status",
        "why_status_converted": "Vännens första beställning räknades: belöningar följer "
        "programmet.",
        "why_status_pending": "Vännen har registrerat sig men inte beställt än.",
        "why_status_in_review": "En bedrägeriregel höll den: ingen belönas förrän någon "
        "godkänner den.",
        "why_status_rejected": "Den räknas inte: {reason}.",
        "program": "Program",
        "advocate": "Ambassadör",
        "friend": "Vän",
        "created": "Skapad",
        "signed_up": "Registrerad",
        "converted": "Första beställning",
        "first_order": "Första beställningens id",
        "attribution": "Hur den tillskrevs",
        "path": "Väg",
        "path_code": "En kod i kassan",
        "path_link": "Ett klick på ambassadörens länk",
        "path_signup_email": "Vännens e-post vid registrering",
        "code": "Kod",
        "channel": "Kanal",
        "clicked_at": "Klickad",
        "story": "Berättelse",
        "visitor": "Besökare",
        "referer": "Kom från",
        "checks": "Behörighetskontroller",
        "check": "Kontroll",
        "result": "Resultat",
        "detail": "Detalj",
        "inputs": "Indata",
        "passed": "godkänd",
        "failed": "underkänd",
        "no_checks": "Inga kontroller har körts än: de körs vid vännens första beställning.",
        "decision": "Bedrägeribeslut",
        "no_decision": "Inget beslut än: bedrägerireglerna beslutar vid vännens första "
        "beställning.",
        "score": "Poäng {score}, policyversion {version}",
        "rule": "Regel",
        "action": "Åtgärd",
        "weight": "Vikt",
        "evidence": "Underlag",
        "no_reasons": "Ingen regel invände.",
        "rewards": "Belöningar",
        "no_rewards": "Inga belöningar för den här rekommendationen.",
        "side_advocate": "Ambassadörens belöning",
        "side_friend": "Vännens belöning",
        "held_until": "Hålls till {date}",
        "held_for_review": "Hålls tills någon godkänner rekommendationen",
        "coupon": "Rabattkod {code}",
        "history": "Historik",
        "from_to": "Ändring",
        "amount": "Belopp",
        "reason": "Skäl",
        "actor": "Av",
        "note": "Anteckning",
        "when": "När",
        "reviews": "Granskningar",
        "decide": "Besluta",
        "decide_note": "Anteckning (sparas med beslutet)",
        "approve": "Godkänn",
        "reject": "Avslå",
        "decided_approve": "Godkänd.",
        "decided_reject": "Avslagen.",
        "hold_rule": "Hållna pengar",
    },
}


@get("/referrals/{referral_id:str}", include_in_schema=False)
async def referral_page(
    request: Request,
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    referral_id: FromPath[str],
    decided: FromQuery[str | None] = None,
) -> Response:
    caller = session.caller
    referral = await explain.get_referral(
        conn, runtime=runtime, caller=caller, referral_id=referral_id
    )
    advocate = await advocates.get(
        conn, runtime=runtime, caller=caller, advocate_id=referral.advocate_id
    )
    program = await programs.get(
        conn, runtime=runtime, caller=caller, program_id=referral.program_id
    )
    return page(
        request,
        "referral.html",
        session=session,
        section="advocates",
        catalogue=WORDS,
        referral=referral,
        advocate=advocate,
        program=program,
        # What a review may do: decide a held referral, or overturn a fraud rejection.
        can_approve=referral.status == "in_review"
        or (referral.status == "rejected" and referral.rejection_reason in OVERRIDABLE),
        can_reject=referral.status == "in_review",
        decided=decided if decided in ("approve", "reject") else None,
    )


@post("/referrals/{referral_id:str}/decision", include_in_schema=False, status_code=303)
async def decide(
    conn: Conn, runtime: RuntimeDep, session: SessionDep, form: FormDep, referral_id: FromPath[str]
) -> Response:
    action = form.get("action")
    decide_one = {"approve": review.approve, "reject": review.reject}.get(str(action))
    if decide_one is None:
        return back_to(f"/console/referrals/{referral_id}")
    await decide_one(
        conn,
        runtime=runtime,
        caller=session.caller,
        referral_id=referral_id,
        actor=session.actor,
        note=str(form.get("note") or "").strip()[:2000] or None,
    )
    return back_to(f"/console/referrals/{referral_id}", decided=str(action))
