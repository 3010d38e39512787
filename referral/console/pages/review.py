"""The review queue: referrals a fraud rule held, oldest first, with the rule's reasons and
evidence; approve or reject one or many with a note. Each decision is the referrals room's
(`review.approve` / `review.reject`), with the person signed in as its actor."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.params import FromQuery

from referral.advocates import service as advocates
from referral.console.pages.common import FormDep, SessionDep, back_to, page
from referral.http.deps import Conn, RuntimeDep
from referral.lib.errors import AppError
from referral.lib.pagination import ListQuery
from referral.referrals import explain, review

PAGE_SIZE = 50

WORDS = {
    "en": {
        "review_title": "Review queue",
        "review_intro": "Referrals a fraud rule held for review, oldest first. Approving "
        "releases their rewards on the program's hold; rejecting reverses them.",
        "review_empty": "Nothing to review. When a fraud rule holds a referral, it waits "
        "here, with the rule's reasons, until someone approves or rejects it.",
        "held_since": "Held since",
        "held_line": "{friend}, referred by {advocate}",
        "advocate": "Advocate",
        "friend": "Friend",
        "score": "Score",
        "reasons": "Why it was held",
        "select": "Select",
        "select_referral": "Select referral {id}",
        "note": "Note (kept with each decision)",
        "approve_selected": "Approve selected",
        "reject_selected": "Reject selected",
        "explain": "Explain",
        "decided": "{done} decided ({action}).",
        "not_decided": "{id}: {detail}",
        "nothing_selected": "Select at least one referral first.",
        "action_approve": "approved",
        "action_reject": "rejected",
        "more": "Older referrals first: the next page has newer ones.",
    },
    "sv": {
        "review_title": "Granskningskö",
        "review_intro": "Rekommendationer som en bedrägeriregel har hållit för granskning, "
        "äldst först. Godkänn släpper belöningarna efter programmets väntetid; avslå "
        "återkallar dem.",
        "review_empty": "Inget att granska. När en bedrägeriregel håller en rekommendation "
        "väntar den här, med regelns skäl, tills någon godkänner eller avslår den.",
        "held_since": "Hållen sedan",
        "held_line": "{friend}, rekommenderad av {advocate}",
        "advocate": "Ambassadör",
        "friend": "Vän",
        "score": "Poäng",
        "reasons": "Varför den hölls",
        "select": "Välj",
        "select_referral": "Välj rekommendation {id}",
        "note": "Anteckning (sparas med varje beslut)",
        "approve_selected": "Godkänn valda",
        "reject_selected": "Avslå valda",
        "explain": "Förklara",
        "decided": "{done} beslutade ({action}).",
        "not_decided": "{id}: {detail}",
        "nothing_selected": "Välj minst en rekommendation först.",
        "action_approve": "godkända",
        "action_reject": "avslagna",
        "more": "Äldst först: nästa sida har nyare.",
    },
}


@get("/review", include_in_schema=False)
async def queue(
    request: Request,
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    after: FromQuery[str | None] = None,
    done: FromQuery[int | None] = None,
    action: FromQuery[str | None] = None,
    failed: FromQuery[str | None] = None,
    nothing: FromQuery[str | None] = None,
) -> Response:
    listing = ListQuery(limit=PAGE_SIZE, starting_after=after or None)
    found = await explain.list_referrals(
        conn,
        runtime=runtime,
        caller=session.caller,
        status="in_review",
        advocate_id=None,
        program_id=None,
        cursor=listing.cursor(runtime.ids, "referral"),
    )
    return page(
        request,
        "review.html",
        session=session,
        section="review",
        catalogue=WORDS,
        referrals=found.data,
        names=await advocates.names(
            conn,
            runtime=runtime,
            caller=session.caller,
            advocate_ids=sorted({r.advocate_id for r in found.data}),
        ),
        has_more=found.has_more,
        next_after=found.data[-1].id if found.data and found.has_more else None,
        done=done,
        action=action if action in ("approve", "reject") else None,
        failed=[line for line in (failed or "").split("\n") if line][:20],
        nothing_selected=nothing == "1",
    )


@post("/review", include_in_schema=False, status_code=303)
async def decide(conn: Conn, runtime: RuntimeDep, session: SessionDep, form: FormDep) -> Response:
    """Approve or reject every selected referral; one that cannot be (decided meanwhile,
    not eligible) is listed back with why, and the others still go through."""
    action = form.get("action")
    chosen = [str(v) for v in form.getall("referral_id", [])][:PAGE_SIZE]
    if action not in ("approve", "reject") or not chosen:
        return back_to("/console/review", nothing="1")
    note = str(form.get("note") or "").strip()[:2000] or None
    decide_one = review.approve if action == "approve" else review.reject
    done, failed = 0, []
    for referral_id in chosen:
        try:
            async with conn.transaction():  # one refusal undoes only its own referral
                await decide_one(
                    conn,
                    runtime=runtime,
                    caller=session.caller,
                    referral_id=referral_id,
                    actor=session.actor,
                    note=note,
                )
            done += 1
        except AppError as exc:
            failed.append(f"{referral_id[:40]}: {exc.detail}")
    query = {"done": str(done), "action": action}
    if failed:
        query["failed"] = "\n".join(failed)
    return back_to("/console/review", **query)
