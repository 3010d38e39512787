"""`/v1/imports`: switching in from another service. The file is the request body (CSV or
JSON lines), streamed into staging; the answer is the import, worked through in the
background; its status, counts and per-line error report are read by id."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, Parameter

from referral.http.deps import CallerDep, Conn, Listing, OnceDep, RuntimeDep
from referral.imports import service
from referral.imports.schemas import Import, ImportErrorPage, Kind, Status
from referral.lib import problem_docs
from referral.lib.pagination import Limit, Page
from referral.openapi import FileBody

KindParam = Annotated[
    Literal["advocates", "customers", "orders"],
    Parameter(description="What the file holds: advocates, customers or orders"),
]
ProgramParam = Annotated[
    str | None,
    Parameter(description="Advocates only: the program they refer for", max_length=64),
]
AfterLine = Annotated[
    int,
    Parameter(description="Errors after this line number (the last line of the page before)", ge=0),
]

FILE_FORMATS = (
    "The body is the file: `text/csv` (a header line naming the columns, then one record a "
    "line) or `application/x-ndjson` (one JSON object a line). Columns: advocates "
    "`customer_id` (required), `email`, `name`, `code` (their code at the other service, "
    "kept as a vanity code); customers `customer_id` and/or `email`; orders `order_id`, "
    "`customer_id` and/or `email`, `subtotal` and `total` (minor units), `currency`, "
    "`occurred_at` (ISO 8601)."
)


class ImportController(Controller):
    path = "/v1/imports"
    tags = ["imports"]

    @post(
        "/",
        operation_id="createImport",
        status_code=202,
        request_max_body_size=None,  # streamed, and limited by IMPORT_MAX_BYTES (413)
        operation_class=FileBody,
        responses=problem_docs.responses(
            "createImport",
            {
                404: ("program_not_found",),
                409: ("program_archived",),
                415: ("unsupported_media_type",),
                422: ("invalid_import", "invalid_encoding", "empty_import"),
            },
            once=True,
        ),
        summary="Import advocates, customers or past orders from another service",
        description="Asynchronous: answers 202 with the import (`queued`); "
        "`GET /v1/imports/{import_id}` follows it to `succeeded` (or `failed`, for a header "
        "it cannot read) and `GET /v1/imports/{import_id}/errors` lists each refused line by "
        "number. Every line is imported or refused on its own. Importing the same file "
        "again creates nothing (each line counts as `unchanged`). Customers are known to "
        'the "new customers only" rule as having bought before; orders are history: never '
        "referred, never earning, counted in analytics on their day. " + FILE_FORMATS,
    )
    async def create(
        self,
        request: Request,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
        kind: KindParam,
        program_id: ProgramParam = None,
    ) -> Response[Import]:
        fmt = service.format_of(request.headers.get("content-type"))
        staged = await service.stage(
            conn,
            ids=runtime.ids,
            caller=caller,
            kind=kind,
            fmt=fmt,
            program_id=program_id,
            chunks=request.stream(),
            max_bytes=runtime.settings.import_max_bytes,
        )
        response = await once(
            lambda: service.queue(conn, ids=runtime.ids, caller=caller, staged=staged),
            status=202,
            body_digest=staged.digest,
        )
        if response.headers.get("idempotent-replayed"):
            await service.discard(conn, caller=caller, staged=staged)
        return response

    @get(
        "/",
        operation_id="listImports",
        responses=problem_docs.responses("listImports", {404: ("import_not_found",)}),
        summary="List imports, oldest first",
        description="Every import of the merchant with its status and counts, filtered by "
        "`kind` and `status` if given.",
    )
    async def list(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        kind: Annotated[Kind | None, Parameter(description="Only imports of this kind")] = None,
        status: Annotated[
            Status | None, Parameter(description="Only imports in this status")
        ] = None,
        *,
        listing: Listing,  # after the filters: the documented parameter order stays
    ) -> Page[Import]:
        return await service.list_imports(
            conn,
            ids=runtime.ids,
            caller=caller,
            kind=kind,
            status=status,
            cursor=listing.cursor(runtime.ids, "import"),
        )

    @get(
        "/{import_id:str}",
        operation_id="getImport",
        responses=problem_docs.responses("getImport", {404: ("import_not_found",)}),
        summary="An import: its status and counts",
    )
    async def read(
        self, import_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Import:
        return await service.get(conn, ids=runtime.ids, caller=caller, import_id=import_id)

    @get(
        "/{import_id:str}/errors",
        operation_id="listImportErrors",
        responses=problem_docs.responses("listImportErrors", {404: ("import_not_found",)}),
        summary="An import's error report: each refused line, by line number",
        description="The line's number in the file (a CSV header is line 1), a stable code "
        "(`missing_field`, `invalid_email`, `invalid_money`, `unknown_currency`, "
        "`invalid_date`, `code_taken`, `code_confusable`, `vanity_code_…`, `order_conflict`, "
        "`malformed_line`, …) and a message naming the field, never its value. Pages by "
        "`after_line`; the first 10,000 refused lines are kept.",
    )
    async def errors(
        self,
        import_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        after_line: AfterLine = 0,
        limit: Limit = 100,
    ) -> ImportErrorPage:
        return await service.errors(
            conn,
            ids=runtime.ids,
            caller=caller,
            import_id=import_id,
            after_line=after_line,
            limit=limit,
        )

    @get(
        "/{import_id:str}/errors.csv",
        operation_id="getImportErrorsCsv",
        media_type="text/csv",
        responses=problem_docs.responses("getImportErrorsCsv", {404: ("import_not_found",)}),
        summary="An import's error report as CSV (line, code, message)",
    )
    async def errors_csv(
        self, import_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Response[bytes]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["line", "code", "message"])
        async for e in service.error_report(
            conn, ids=runtime.ids, caller=caller, import_id=import_id
        ):
            writer.writerow([e.line, e.code, e.message])
        return Response(out.getvalue().encode(), media_type="text/csv; charset=utf-8")
