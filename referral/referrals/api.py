"""HTTP handlers for referrals: the checkout's quote and signups, explain and list (with
`status=in_review`, the review queue), and a person's approve and reject."""

from __future__ import annotations

from typing import Literal

from litestar import Controller, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody

from referral.http.deps import CallerDep, Conn, Listing, OnceDep, RuntimeDep
from referral.http.rate_limits import rate_limited
from referral.lib import problem_docs
from referral.lib.pagination import Page
from referral.referrals import explain, review, service
from referral.referrals.schemas import (
    Quote,
    QuoteRequest,
    Referral,
    ReviewAction,
    SignupRequest,
    SignupResult,
)

IDEMPOTENT = (
    "Idempotent by its natural key; an `Idempotency-Key` header is honoured too "
    "(same key and body: the stored response; other body: 409)."
)


class CheckoutController(Controller):
    path = "/v1"
    tags = ["checkout"]

    @post(
        "/checkout/quote",
        operation_id="quoteCheckout",
        responses=problem_docs.responses(
            "quoteCheckout",
            {
                404: ("program_not_found",),
                422: (
                    "invalid_email",
                    "friend_unidentified",
                    "unknown_currency",
                    "invalid_ip",
                    "code_inactive",
                ),
                429: ("too_many_requests",),
            },
        ),
        guards=[rate_limited("lookups", except_secret_keys=True)],  # code guessing
        status_code=200,
        summary="Would the friend offer apply to this cart?",
        description="Before payment: whether the friend offer applies, its value, the "
        "advocate it would credit, and why not; and for each friend coupon typed in `codes`, "
        "whether the order would redeem it (`coupons`: not while its reward is held in "
        "review or within its hold). Writes nothing.",
    )
    async def quote(
        self, data: JSONBody[QuoteRequest], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Quote:
        return await service.quote(conn, runtime=runtime, caller=caller, data=data)

    @post(
        "/signups",
        operation_id="recordSignup",
        responses=problem_docs.responses(
            "recordSignup",
            {
                404: ("program_not_found",),
                422: (
                    "invalid_email",
                    "friend_unidentified",
                    "invalid_timestamp",
                    "occurred_in_future",
                    "occurred_too_early",
                    "invalid_ip",
                    "code_inactive",
                ),
            },
            once=True,
            replay=SignupResult,
        ),
        summary="Record a signup",
        description="Attributes a new customer to an advocate. "
        "Idempotent by customer id (201 first, 200 after). " + IDEMPOTENT,
    )
    async def signup(
        self,
        data: JSONBody[SignupRequest],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[SignupResult]:
        return await once(
            lambda: service.record_signup(conn, runtime=runtime, caller=caller, data=data)
        )


class ReferralController(Controller):
    path = "/v1/referrals"
    tags = ["referrals"]

    @get(
        "/{referral_id:str}",
        operation_id="getReferral",
        responses=problem_docs.responses("getReferral", {404: ("referral_not_found",)}),
        summary="Explain a referral",
        description="Which attribution path matched, every eligibility check with its "
        "inputs and outcome, the fraud decision, and each reward's history.",
    )
    async def read(
        self, referral_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Referral:
        return await explain.get_referral(
            conn, runtime=runtime, caller=caller, referral_id=referral_id
        )

    @get(
        operation_id="listReferrals",
        responses=problem_docs.responses(
            "listReferrals",
            {404: ("referral_not_found", "advocate_not_found", "program_not_found")},
        ),
        summary="List referrals (with status=in_review: the review queue)",
        description="Oldest first, each with its eligibility checks, fraud decision (rules "
        "fired, evidence, score) and rewards. `status=in_review` is the review queue.",
    )
    async def list(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        status: FromQuery[Literal["pending", "converted", "in_review", "rejected"] | None] = None,
        advocate_id: FromQuery[str | None] = None,
        program_id: FromQuery[str | None] = None,
        *,
        listing: Listing,  # after the filters: the documented parameter order stays
    ) -> Page[Referral]:
        return await explain.list_referrals(
            conn,
            runtime=runtime,
            caller=caller,
            status=status,
            advocate_id=advocate_id,
            program_id=program_id,
            cursor=listing.cursor(runtime.ids, "referral"),
        )


_REVIEW_PROBLEMS = {
    "approve": {
        404: ("referral_not_found",),
        409: (
            "referral_not_decided",
            "referral_not_eligible",
            "friend_referred_since",
            "reward_state_conflict",
        ),
    },
    "reject": {
        404: ("referral_not_found",),
        409: ("referral_not_decided", "reward_state_conflict"),
    },
}


def _review(
    action: Literal["approve", "reject"], *, operation_id: str, **docs: str
) -> HTTPRouteHandler:
    """A person's decision on a referral in the review queue, audited with actor and note."""
    decide = {"approve": review.approve, "reject": review.reject}[action]

    @post(
        f"/{{referral_id:str}}/{action}",
        operation_id=operation_id,
        responses=problem_docs.responses(operation_id, _REVIEW_PROBLEMS[action], once=True),
        status_code=200,
        **docs,
    )
    async def handler(
        self,
        referral_id: FromPath[str],
        data: JSONBody[ReviewAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Referral]:
        return await once(
            lambda: decide(
                conn,
                runtime=runtime,
                caller=caller,
                referral_id=referral_id,
                actor=data.actor,
                note=data.note,
            )
        )

    return handler


class ReviewController(Controller):
    path = "/v1/referrals"
    tags = ["fraud"]

    approve = _review(
        "approve",
        operation_id="approveReferral",
        summary="Approve a referral in review, or overturn a fraud rejection",
        description="Held rewards enter their hold period; rewards an earlier rejection "
        "reversed are reinstated; a blocked referral gets its rewards. Eligibility failures "
        "cannot be approved (409 referral_not_eligible). Audited with actor and note.",
    )
    reject = _review(
        "reject",
        operation_id="rejectReferral",
        summary="Reject a referral (in review, or after approval)",
        description="Every live reward is reversed through the ledger; after payment the "
        "amount becomes a receivable. Undo with approve. Audited with actor and note.",
    )
