"""HTTP handlers for referrals: explain, list (the review queue), approve and reject."""

from __future__ import annotations

from litestar import Controller, Response, post
from litestar.params import FromPath, JSONBody

from referral.attribution.schemas import Referral
from referral.http.deps import CallerDep, Conn, OnceDep, RuntimeDep
from referral.lib.errors import API_ERRORS
from referral.referrals import review
from referral.referrals.schemas import ReviewAction


class ReviewController(Controller):
    path = "/v1/referrals"
    tags = ["fraud"]
    security = [{"secretKey": []}]

    @post(
        "/{referral_id:str}/approve",
        operation_id="approveReferral",
        responses=API_ERRORS,
        status_code=200,
        summary="Approve a referral in review, or overturn a fraud rejection",
        description="Held rewards enter their hold period; rewards an earlier rejection "
        "reversed are reinstated; a blocked referral gets its rewards. Eligibility failures "
        "cannot be approved (409 referral_not_eligible). Audited with actor and note.",
    )
    async def approve(
        self,
        referral_id: FromPath[str],
        data: JSONBody[ReviewAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Referral]:
        return await once(lambda: review.approve(conn, runtime, caller, referral_id, data))

    @post(
        "/{referral_id:str}/reject",
        operation_id="rejectReferral",
        responses=API_ERRORS,
        status_code=200,
        summary="Reject a referral (in review, or after approval)",
        description="Every live reward is reversed through the ledger; after payment the "
        "amount becomes a receivable. Undo with approve. Audited with actor and note.",
    )
    async def reject(
        self,
        referral_id: FromPath[str],
        data: JSONBody[ReviewAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Referral]:
        return await once(lambda: review.reject(conn, runtime, caller, referral_id, data))
