"""HTTP handlers for payout batches and their CSV exports."""

from __future__ import annotations

from typing import Literal

from litestar import Controller, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Stream

from referral.http.deps import CallerDep, Conn, Listing, OnceDep, RuntimeDep
from referral.lib.errors import API_ERRORS
from referral.lib.pagination import Page
from referral.payouts import export, service
from referral.payouts.schemas import (
    BatchCreate,
    BatchStatus,
    LineFailure,
    MarkPaid,
    PayoutBatch,
    PayoutLine,
)


class PayoutController(Controller):
    path = "/v1/payout-batches"
    tags = ["payouts"]
    security = [{"secretKey": []}]

    @post(
        operation_id="createPayoutBatch",
        responses=API_ERRORS,
        summary="Collect approved, unpaid rewards into a batch",
        description="One currency and kind (cash or store credit) per batch; every approved "
        "reward up to `cutoff` (approval time), per payee, with earlier clawbacks netted off; "
        "payees under the minimum roll over. A reward is never in two batches.",
    )
    async def create(
        self,
        data: JSONBody[BatchCreate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[PayoutBatch]:
        return await once(
            lambda: service.create(conn, runtime=runtime, caller=caller, data=data), status=201
        )

    @get(
        "/{batch_id:str}",
        operation_id="getPayoutBatch",
        responses=API_ERRORS,
        summary="Read a payout batch",
    )
    async def read(
        self, batch_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> PayoutBatch:
        return await service.get(conn, runtime=runtime, caller=caller, batch_id=batch_id)

    @get(
        "/{batch_id:str}/lines",
        operation_id="listPayoutLines",
        responses=API_ERRORS,
        summary="The batch's lines, one per payee",
    )
    async def lines(
        self, batch_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> list[PayoutLine]:
        return await service.lines(conn, runtime=runtime, caller=caller, batch_id=batch_id)

    @get(operation_id="listPayoutBatches", responses=API_ERRORS, summary="List payout batches")
    async def list(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        status: FromQuery[BatchStatus | None] = None,
        *,
        listing: Listing,  # after the filters: the documented parameter order stays
    ) -> Page[PayoutBatch]:
        return await service.list_batches(
            conn,
            runtime=runtime,
            caller=caller,
            status=status,
            cursor=listing.cursor(runtime.ids, "payout"),
        )

    @post(
        "/{batch_id:str}/export",
        operation_id="markPayoutBatchExported",
        status_code=200,
        responses=API_ERRORS,
        summary="Mark the batch exported (handed to the payment rails)",
        description="Downloading a CSV never changes a batch; this POST does. Idempotent.",
    )
    async def exported(
        self,
        batch_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[PayoutBatch]:
        return await once(
            lambda: service.mark_exported(conn, runtime=runtime, caller=caller, batch_id=batch_id)
        )

    @post(
        "/{batch_id:str}/mark-paid",
        operation_id="markPayoutBatchPaid",
        status_code=200,
        responses=API_ERRORS,
        summary="Mark the batch paid",
        description="Every open line's rewards become paid, once: calling it again changes "
        "nothing.",
    )
    async def mark_paid(
        self,
        batch_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
        data: JSONBody[MarkPaid | None] = None,
    ) -> Response[PayoutBatch]:
        actor = data.actor if data else "api"
        return await once(
            lambda: service.mark_paid(
                conn, runtime=runtime, caller=caller, batch_id=batch_id, actor=actor
            )
        )

    @post(
        "/{batch_id:str}/cancel",
        operation_id="cancelPayoutBatch",
        status_code=200,
        responses=API_ERRORS,
        summary="Cancel an unpaid batch; its rewards return",
    )
    async def cancel(
        self,
        batch_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[PayoutBatch]:
        return await once(
            lambda: service.cancel(conn, runtime=runtime, caller=caller, batch_id=batch_id)
        )

    @post(
        "/{batch_id:str}/lines/{line_id:str}/fail",
        operation_id="failPayoutLine",
        status_code=200,
        responses=API_ERRORS,
        summary="Mark one payee's line failed",
        description="Its rewards (and netted clawbacks) are freed for a later batch; if it "
        "was already paid, the paid entries are reversed.",
    )
    async def fail_line(
        self,
        batch_id: FromPath[str],
        line_id: FromPath[str],
        data: JSONBody[LineFailure],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[PayoutBatch]:
        return await once(
            lambda: service.fail_line(
                conn,
                runtime=runtime,
                caller=caller,
                batch_id=batch_id,
                line_id=line_id,
                reason=data.reason,
                actor=data.actor,
            )
        )

    @get(
        "/{batch_id:str}/payouts.csv",
        operation_id="exportPayoutsCsv",
        responses=API_ERRORS,
        media_type="text/csv",
        summary="One row per payee (CSV)",
        description=export.__doc__.split("\n\n", 2)[2],
    )
    async def payouts_csv(
        self,
        batch_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        format: FromQuery[Literal["standard", "paypal"]] = "standard",
        part: FromQuery[int] = 1,
        bom: FromQuery[bool] = False,
    ) -> Stream:
        query = await service.export_query(
            conn, runtime=runtime, caller=caller, batch_id=batch_id, format=format, part=part
        )
        name = f"{batch_id}-paypal-{part}.csv" if format == "paypal" else f"{batch_id}.csv"
        return _csv(runtime, query, name, bom)

    @get(
        "/{batch_id:str}/rewards.csv",
        operation_id="exportPayoutRewardsCsv",
        responses=API_ERRORS,
        media_type="text/csv",
        summary="Every reward and clawback in the batch (CSV)",
    )
    async def rewards_csv(
        self,
        batch_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        bom: FromQuery[bool] = False,
    ) -> Stream:
        query = await service.export_query(
            conn, runtime=runtime, caller=caller, batch_id=batch_id, rewards=True
        )
        return _csv(runtime, query, f"{batch_id}-rewards.csv", bom)


def _csv(runtime, query: export.ExportQuery, filename: str, bom: bool) -> Stream:
    return Stream(
        export.stream(runtime.pool, query=query, bom=bom),
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="{filename}"',
            "cache-control": "no-store",
        },
    )
