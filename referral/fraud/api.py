"""HTTP handlers for fraud policies and backtests (reviewing a referral is in referrals/)."""

from __future__ import annotations

from litestar import Controller, get, post, put
from litestar.params import FromPath, JSONBody

from referral.fraud import service
from referral.fraud.policy import FraudPolicy
from referral.fraud.schemas import Backtest, BacktestRequest, PolicyDocument
from referral.http.deps import CallerDep, Conn, RuntimeDep
from referral.lib import problem_docs


class FraudPolicyController(Controller):
    path = "/v1/programs/{program_id:str}/fraud-policy"
    tags = ["fraud"]

    @get(
        operation_id="getFraudPolicy",
        responses=problem_docs.responses("getFraudPolicy", {404: ("program_not_found",)}),
        summary="Read a program's fraud policy",
        description="Every rule with its switch, action (flag, review or block), weight and "
        "parameters, defaults filled in, and the policy's version.",
    )
    async def read(
        self, program_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> PolicyDocument:
        return await service.get_policy(
            conn, ids=runtime.ids, merchant_id=caller.merchant_id, program_id=program_id
        )

    @put(
        operation_id="putFraudPolicy",
        responses=problem_docs.responses(
            "putFraudPolicy", {404: ("program_not_found",), 422: ("invalid_fraud_policy",)}
        ),
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
        return await service.put_policy(
            conn,
            ids=runtime.ids,
            caller=caller,
            program_id=program_id,
            policy=data,
        )

    @post(
        "/backtest",
        operation_id="backtestFraudPolicy",
        responses=problem_docs.responses(
            "backtestFraudPolicy",
            {404: ("program_not_found",), 422: ("invalid_time_range", "invalid_fraud_policy")},
        ),
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
        return await service.backtest(
            conn,
            runtime=runtime,
            merchant_id=caller.merchant_id,
            program_id=program_id,
            request=data,
        )
