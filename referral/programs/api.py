"""HTTP handlers for programs: parse, call the service, shape the response."""

from __future__ import annotations

from litestar import Controller, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from referral.http.deps import CallerDep, Conn, Listing, OnceDep, RuntimeDep
from referral.lib import problem_docs
from referral.lib.pagination import Page
from referral.programs import rules, service
from referral.programs.schemas import (
    Program,
    ProgramAction,
    ProgramCreate,
    ProgramStatus,
    ProgramUpdate,
)

_LIFECYCLE_TEXT = {
    "pause": "Links still redirect (to the fallback URL, else the landing page without the "
    "offer) and no new referrals are made until it resumes; referrals already made keep "
    "their rewards and follow their hold and review. Records `program.paused`.",
    "resume": "It makes referrals again (once its `starts_at` has come). Records "
    "`program.resumed`; an ended program cannot resume.",
    "end": "For good: links redirect without the offer, no new referrals are made, and it "
    "can never resume. Referrals already made keep their rewards and follow their hold and "
    "review. Records `program.ended`.",
}


def _lifecycle_route(action: rules.Action, operation_id: str, summary: str):  # noqa: ANN202
    @post(
        f"/{{program_id:str}}/{action}",
        operation_id=operation_id,
        responses=problem_docs.responses(
            operation_id,
            {
                404: ("program_not_found",),
                409: ("program_ended", "invalid_program_transition"),
            },
            once=True,
        ),
        status_code=200,
        summary=summary,
        description=_LIFECYCLE_TEXT[action] + " Asking for the state it is in changes nothing.",
    )
    async def handler(
        self,
        program_id: FromPath[str],
        data: JSONBody[ProgramAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Program]:
        return await once(
            lambda: service.change_state(
                conn,
                runtime=runtime,
                caller=caller,
                program_id=program_id,
                action=action,
                data=data,
            )
        )

    return handler


class ProgramController(Controller):
    path = "/v1/programs"
    tags = ["programs"]

    @post(
        operation_id="createProgram",
        responses=problem_docs.responses(
            "createProgram",
            {
                422: (
                    "invalid_reward_rule",
                    "invalid_url",
                    "unknown_currency",
                    "invalid_fraud_policy",
                    "invalid_schedule",
                )
            },
            once=True,
            replay=Program,
        ),
        summary="Create a program",
    )
    async def create(
        self,
        data: JSONBody[ProgramCreate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Program]:
        return await once(
            lambda: service.create(conn, runtime=runtime, caller=caller, data=data), status=201
        )

    @get(
        "/{program_id:str}",
        operation_id="getProgram",
        responses=problem_docs.responses("getProgram", {404: ("program_not_found",)}),
        summary="Read a program",
    )
    async def read(
        self, program_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Program:
        return await service.get(conn, runtime=runtime, caller=caller, program_id=program_id)

    @patch(
        "/{program_id:str}",
        operation_id="updateProgram",
        responses=problem_docs.responses(
            "updateProgram",
            {
                404: ("program_not_found",),
                409: ("program_ended",),
                422: ("invalid_reward_rule", "invalid_url", "unknown_currency", "invalid_schedule"),
            },
        ),
        summary="Change a program",
    )
    async def update(
        self,
        program_id: FromPath[str],
        data: JSONBody[ProgramUpdate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Program:
        return await service.update(
            conn, runtime=runtime, caller=caller, program_id=program_id, data=data
        )

    @get(
        operation_id="listPrograms",
        responses=problem_docs.responses("listPrograms", {404: ("program_not_found",)}),
        summary="List programs",
    )
    async def list(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        status: FromQuery[ProgramStatus | None] = None,
        *,
        listing: Listing,  # after the filters: the documented parameter order stays
    ) -> Page[Program]:
        return await service.list_programs(
            conn,
            runtime=runtime,
            caller=caller,
            status=status,
            cursor=listing.cursor(runtime.ids, "program"),
        )

    pause = _lifecycle_route("pause", "pauseProgram", "Pause a program")
    resume = _lifecycle_route("resume", "resumeProgram", "Resume a paused program")
    end = _lifecycle_route("end", "endProgram", "End a program for good")
