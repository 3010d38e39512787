"""Finding a person and seeing everything about them as an advocate: the search box
(customer id, email or code), and an advocate's page with codes, clicks, referrals, rewards
and stories, each referral linked to its explain view."""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery

from referral.advocates import service as advocates
from referral.console.pages.common import SessionDep, page
from referral.http.deps import Conn, RuntimeDep
from referral.lib.pagination import ListQuery
from referral.referrals import explain
from referral.rewards import service as rewards
from referral.stories import service as stories

PAGE_SIZE = 50

WORDS = {
    "en": {
        "advocates_title": "Advocates",
        "search_label": "Customer id, email or code",
        "search": "Search",
        "search_hint": "Type what the customer told you: the shop's customer id, their "
        "email, or their referral code (as they read it: 0 and O are the same here).",
        "no_match": "No advocate has the customer id, email or code “{q}” in this mode.",
        "newest": "Advocates, oldest first",
        "no_advocates": "No advocates yet. The shop's backend creates one per customer "
        "(POST /v1/advocates), or the customer's first share does.",
        "name": "Name",
        "customer": "Customer id",
        "email": "Email",
        "code": "Code",
        "clicks": "Clicks",
        "unique_clicks": "Unique clicks",
        "joined": "Joined",
        "advocate_title": "{name}",
        "codes": "Codes",
        "link": "Link",
        "vanity": "Other codes",
        "suspended": "Codes suspended since {date} (too many rejected referrals).",
        "contact": "Contact preference",
        "referrals": "Referrals",
        "no_referrals": "No friend has used this advocate's link or code yet.",
        "friend": "Friend",
        "status": "Status",
        "reason": "Why",
        "created": "Created",
        "explain": "Explain",
        "rewards": "Rewards",
        "no_rewards": "No rewards yet.",
        "side": "For",
        "side_advocate": "advocate",
        "side_friend": "friend",
        "amount": "Amount",
        "earned": "Earned",
        "stories": "Stories",
        "no_stories": "No stories yet.",
        "story_text": "Story",
        "more_referrals": "Showing the first {n}.",
    },
    "sv": {
        "advocates_title": "Ambassadörer",
        "search_label": "Kund-id, e-post eller kod",
        "search": "Sök",
        "search_hint": "Skriv det kunden berättade: butikens kund-id, e-postadressen eller "
        "rekommendationskoden (som de läser den: 0 och O är samma här).",
        "no_match": "Ingen ambassadör har kund-id, e-post eller kod ”{q}” i det här läget.",
        "newest": "Ambassadörer, äldst först",
        "no_advocates": "Inga ambassadörer än. Butikens system skapar en per kund "
        "(POST /v1/advocates), eller så gör kundens första delning det.",
        "name": "Namn",
        "customer": "Kund-id",
        "email": "E-post",
        "code": "Kod",
        "clicks": "Klick",
        "unique_clicks": "Unika klick",
        "joined": "Gick med",
        "advocate_title": "{name}",
        "codes": "Koder",
        "link": "Länk",
        "vanity": "Andra koder",
        "suspended": "Koderna är avstängda sedan {date} (för många avslagna rekommendationer).",
        "contact": "Kontaktval",
        "referrals": "Rekommendationer",
        "no_referrals": "Ingen vän har använt ambassadörens länk eller kod än.",
        "friend": "Vän",
        "status": "Status",
        "reason": "Varför",
        "created": "Skapad",
        "explain": "Förklara",
        "rewards": "Belöningar",
        "no_rewards": "Inga belöningar än.",
        "side": "För",
        "side_advocate": "ambassadör",
        "side_friend": "vän",
        "amount": "Belopp",
        "earned": "Intjänad",
        "stories": "Berättelser",
        "no_stories": "Inga berättelser än.",
        "story_text": "Berättelse",
        "more_referrals": "Visar de första {n}.",
    },
}


@get("/advocates", include_in_schema=False)
async def advocates_page(
    request: Request,
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    q: FromQuery[str] = "",
    after: FromQuery[str | None] = None,
) -> Response:
    q = q.strip()[:254]
    if q:
        found, has_more = (
            await advocates.search(conn, runtime=runtime, caller=session.caller, text=q),
            False,
        )
    else:
        listing = ListQuery(limit=PAGE_SIZE, starting_after=after or None)
        listed = await advocates.list_advocates(
            conn,
            runtime=runtime,
            caller=session.caller,
            program_id=None,
            cursor=listing.cursor(runtime.ids, "advocate"),
        )
        found, has_more = listed.data, listed.has_more
    return page(
        request,
        "advocates.html",
        session=session,
        section="advocates",
        catalogue=WORDS,
        q=q,
        advocates=found,
        next_after=found[-1].id if found and has_more else None,
    )


@get("/advocates/{advocate_id:str}", include_in_schema=False)
async def advocate_page(
    request: Request,
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    advocate_id: FromPath[str],
) -> Response:
    caller = session.caller
    advocate = await advocates.get(conn, runtime=runtime, caller=caller, advocate_id=advocate_id)
    first = ListQuery(limit=PAGE_SIZE)
    referrals = await explain.list_referrals(
        conn,
        runtime=runtime,
        caller=caller,
        status=None,
        advocate_id=advocate.id,
        program_id=None,
        cursor=first.cursor(runtime.ids, "referral"),
    )
    earned = await rewards.list_rewards(
        conn,
        ids=runtime.ids,
        merchant_id=caller.merchant_id,
        status=None,
        advocate_id=advocate.id,
        cursor=first.cursor(runtime.ids, "reward"),
    )
    told, _ = await stories.list_stories(
        conn,
        runtime=runtime,
        caller=caller,
        listing=first,
        program_id=None,
        advocate_id=advocate.id,
        status=None,
    )
    return page(
        request,
        "advocate.html",
        session=session,
        section="advocates",
        catalogue=WORDS,
        advocate=advocate,
        referrals=referrals,
        rewards=earned,
        stories=told,
        page_size=PAGE_SIZE,
    )
