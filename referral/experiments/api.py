"""HTTP handlers for experiments and holdouts: parse, call the service, shape the response."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody, Parameter

from referral.experiments import holdout, service
from referral.experiments.schemas import (
    Experiment,
    ExperimentCreate,
    ExperimentEnd,
    ExperimentReadout,
    Holdout,
    HoldoutReport,
    HoldoutSet,
)
from referral.http.deps import CallerDep, Conn, OnceDep, RuntimeDep
from referral.lib import problem_docs

MinimumEffect = Annotated[
    float,
    Parameter(
        ge=0.01,
        le=1.0,
        description="The relative change the sample sizes are computed for (0.1: 10 %)",
    ),
]
_INVALID = ("invalid_reward_rule", "unknown_currency", "invalid_experiment", "invalid_schedule")


class ExperimentController(Controller):
    path = "/v1/programs/{program_id:str}"
    tags = ["experiments"]

    @post(
        "/experiments",
        operation_id="createExperiment",
        responses=problem_docs.responses(
            "createExperiment",
            {404: ("program_not_found",), 409: ("experiment_running",), 422: _INVALID},
            once=True,
            replay=Experiment,
        ),
        summary="Start an experiment",
        description="2-4 variants, each overriding part of the program (friend reward, "
        "advocate reward, share page headline and text, story prompt) with a weight. Each "
        "advocate gets one variant for good (a keyed hash of the advocate), recorded when "
        "they are first shown it; their friends get the same. One running experiment per "
        "program.",
    )
    async def create(
        self,
        program_id: FromPath[str],
        data: JSONBody[ExperimentCreate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Experiment]:
        return await once(
            lambda: service.create(
                conn, runtime=runtime, caller=caller, program_id=program_id, data=data
            ),
            status=201,
        )

    @get(
        "/experiments/{experiment_id:str}",
        operation_id="getExperiment",
        responses=problem_docs.responses(
            "getExperiment", {404: ("program_not_found", "experiment_not_found")}
        ),
        summary="Read an experiment and its readout",
        description="Per variant, from the analytics rollups: exposed advocates, sharing "
        "rate, unique clicks, friend conversion, new customers, referred revenue and reward "
        "cost per exposed advocate (per currency), and the fraud block rate as a guardrail; "
        "each with a 95 % interval, the probability to be best, the expected loss and the "
        "sample size still needed for `minimum_effect`. `verdict` says plainly when the "
        "data are too few to conclude.",
    )
    async def read(
        self,
        program_id: FromPath[str],
        experiment_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        minimum_effect: FromQuery[MinimumEffect] = service.DEFAULT_MINIMUM_EFFECT,
    ) -> ExperimentReadout:
        return await service.readout(
            conn,
            runtime=runtime,
            caller=caller,
            program_id=program_id,
            experiment_id=experiment_id,
            minimum_effect=minimum_effect,
        )

    @post(
        "/experiments/{experiment_id:str}/end",
        operation_id="endExperiment",
        status_code=200,
        responses=problem_docs.responses(
            "endExperiment",
            {
                404: ("program_not_found", "experiment_not_found"),
                409: ("experiment_ended", "program_ended"),
                422: ("unknown_variant",),
            },
            once=True,
        ),
        summary="End an experiment, with or without a winner",
        description="With `winner`, its rewards become the program's (a new rules version; "
        "rewards already granted never change) and its copy the share page's. Without one, "
        "the program is as it was. Friends who came by a variant's link or code keep its "
        "offer.",
    )
    async def end(
        self,
        program_id: FromPath[str],
        experiment_id: FromPath[str],
        data: JSONBody[ExperimentEnd],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Experiment]:
        return await once(
            lambda: service.end(
                conn,
                runtime=runtime,
                caller=caller,
                program_id=program_id,
                experiment_id=experiment_id,
                data=data,
            )
        )

    @put(
        "/holdout",
        operation_id="setHoldout",
        status_code=200,
        responses=problem_docs.responses("setHoldout", {404: ("program_not_found",)}, once=True),
        summary="Hold out a share of customers from the program",
        description="1-50 % of the merchant's customers (a keyed hash of the customer id) "
        "are never invited: asking for their code or share page answers 409 "
        "`customer_held_out`, counted. Changing the share keeps who was held out.",
    )
    async def set_holdout(
        self,
        program_id: FromPath[str],
        data: JSONBody[HoldoutSet],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Holdout]:
        return await once(
            lambda: holdout.set_holdout(
                conn, runtime=runtime, caller=caller, program_id=program_id, data=data
            )
        )

    @get(
        "/holdout",
        operation_id="getHoldoutReport",
        responses=problem_docs.responses(
            "getHoldoutReport", {404: ("program_not_found", "holdout_not_found")}
        ),
        summary="Compare treated and held-out customers",
        description="Their own orders over 30, 90 and 180 days after their first order "
        "since the holdout started: repeat rate, orders and revenue per customer (per "
        "currency), each with its 95 % interval and the difference's; beside it, referred "
        "new customers per 1,000 treated customers.",
    )
    async def holdout_report(
        self, program_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> HoldoutReport:
        return await holdout.report(conn, runtime=runtime, caller=caller, program_id=program_id)
