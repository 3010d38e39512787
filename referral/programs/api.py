"""HTTP handlers for programs: parse, call the service, shape the response."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from referral.http import idempotency
from referral.http.deps import CallerDep, Conn, RuntimeDep
from referral.lib.errors import API_ERRORS
from referral.lib.pagination import CreatedBefore, CreatedFrom, Limit, Page, StartingAfter
from referral.programs import service
from referral.programs.schemas import Program, ProgramCreate, ProgramStatus, ProgramUpdate


class ProgramController(Controller):
    path = "/v1/programs"
    tags = ["programs"]
    security = [{"secretKey": []}]

    @post(operation_id="createProgram", responses=API_ERRORS, summary="Create a program")
    async def create(
        self,
        request: Request,
        data: JSONBody[ProgramCreate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Response[Program]:
        async def effect():
            return 201, await service.create(conn, runtime.ids, caller, data)

        return await idempotency.run(conn, caller, request, effect)

    @get(
        "/{program_id:str}",
        operation_id="getProgram",
        responses=API_ERRORS,
        summary="Read a program",
    )
    async def read(
        self, program_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Program:
        return await service.get(conn, runtime.ids, caller, program_id)

    @patch(
        "/{program_id:str}",
        operation_id="updateProgram",
        responses=API_ERRORS,
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
        program = await service.update(conn, runtime.ids, caller, program_id, data)
        runtime.codes.forget_all()
        return program

    @get(operation_id="listPrograms", responses=API_ERRORS, summary="List programs")
    async def list(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        status: FromQuery[ProgramStatus | None] = None,
        starting_after: StartingAfter = None,
        created_from: CreatedFrom = None,
        created_before: CreatedBefore = None,
        limit: Limit = 20,
    ) -> Page[Program]:
        programs, more = await service.list_programs(
            conn,
            runtime.ids,
            caller,
            status=status,
            starting_after=starting_after,
            created_from=created_from,
            created_before=created_before,
            limit=limit,
        )
        return Page(data=programs, has_more=more)
