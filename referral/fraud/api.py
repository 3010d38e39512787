"""HTTP handlers for fraud policies, backtests and the review of referrals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Controller, Request, Response, get, post, put
from litestar.params import FromPath, JSONBody

from referral.advocates.schemas import Advocate
from referral.attribution.schemas import Referral
from referral.fraud import backtest, review, service
from referral.fraud.policy import FraudPolicy
from referral.fraud.schemas import Backtest, BacktestRequest, PolicyDocument, ReviewAction
from referral.lib import idempotency
from referral.lib.deps import CallerDep, Conn, RuntimeDep
from referral.lib.errors import API_ERRORS


async def _once(conn, caller, request: Request, action: Callable[[], Awaitable[Any]]) -> Response:
    """Run a review action under the request's Idempotency-Key (a replay answers the same)."""

    async def effect():
        return 200, await action()

    return await idempotency.run(conn, caller, request, effect)


class FraudPolicyController(Controller):
    path = "/v1/programs/{program_id:str}/fraud-policy"
    tags = ["fraud"]
    security = [{"secretKey": []}]

    @get(
        operation_id="getFraudPolicy",
        responses=API_ERRORS,
        summary="Read a program's fraud policy",
        description="Every rule with its switch, action (flag, review or block), weight and "
        "parameters, defaults filled in, and the policy's version.",
    )
    async def read(
        self, program_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> PolicyDocument:
        return await service.get_policy(conn, runtime.ids, caller.merchant_id, program_id)

    @put(
        operation_id="putFraudPolicy",
        responses=API_ERRORS,
        summary="Replace a program's fraud policy",
        description="The whole policy; fields left out take their defaults. Validated as a "
        "whole: a bad policy is refused with the path of each problem and nothing changes. "
        "Each change bumps the version that later decisions record.",
    )
    async def replace(
        self,
        program_id: FromPath[str],
        data: JSONBody[FraudPolicy],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> PolicyDocument:
        return await service.put_policy(conn, runtime.ids, caller.merchant_id, program_id, data)

    @post(
        "/backtest",
        operation_id="backtestFraudPolicy",
        responses=API_ERRORS,
        status_code=200,
        summary="Try a candidate policy on past referrals",
        description="Replays the referrals created in the range with the features stored at "
        "decision time, and says how many decisions would change, in which direction, with "
        "sample ids. Writes nothing.",
    )
    async def backtest(
        self,
        program_id: FromPath[str],
        data: JSONBody[BacktestRequest],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Backtest:
        current = await service.get_policy(conn, runtime.ids, caller.merchant_id, program_id)
        return await backtest.run(
            conn,
            runtime.ids,
            caller.merchant_id,
            runtime.ids.decode("program", program_id),
            current.policy,
            data,
        )


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
        request: Request,
        referral_id: FromPath[str],
        data: JSONBody[ReviewAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Response[Referral]:
        return await _once(
            conn, caller, request, lambda: review.approve(conn, runtime, caller, referral_id, data)
        )

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
        request: Request,
        referral_id: FromPath[str],
        data: JSONBody[ReviewAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Response[Referral]:
        return await _once(
            conn, caller, request, lambda: review.reject(conn, runtime, caller, referral_id, data)
        )


class SuspensionController(Controller):
    path = "/v1/advocates"
    tags = ["fraud"]
    security = [{"secretKey": []}]

    @post(
        "/{advocate_id:str}/reactivate",
        operation_id="reactivateAdvocate",
        responses=API_ERRORS,
        status_code=200,
        summary="Lift the suspension of an advocate's codes",
        description="The rule rejected_referrals suspends an advocate's codes; this enables "
        "them again, and only rejections from now on count towards the limit. Audited in "
        "the outbox (`advocate.codes_reactivated`) with actor and note.",
    )
    async def reactivate(
        self,
        request: Request,
        advocate_id: FromPath[str],
        data: JSONBody[ReviewAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Response[Advocate]:
        return await _once(
            conn,
            caller,
            request,
            lambda: review.reactivate_advocate(conn, runtime, caller, advocate_id, data),
        )
