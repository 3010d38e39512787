"""HTTP handlers for payout batches and their CSV exports."""

from __future__ import annotations

from typing import Literal

from litestar import Controller, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Stream

from referral.http.deps import CallerDep, Conn, Listing, OnceDep, RuntimeDep
from referral.lib import problem_docs
from referral.lib.pagination import Page
from referral.openapi import OptionalBody
from referral.payouts import export, service
from referral.payouts.schemas import (
    BankExport,
    BatchCreate,
    BatchStatus,
    LineFailure,
    MarkPaid,
    PayoutBatch,
    PayoutLine,
    PaypalExport,
)


class PayoutController(Controller):
    path = "/v1/payout-batches"
    tags = ["payouts"]

    @post(
        operation_id="createPayoutBatch",
        responses=problem_docs.responses(
            "createPayoutBatch",
            {422: ("cutoff_in_future", "invalid_timestamp", "unknown_currency")},
            once=True,
            replay=PayoutBatch,
        ),
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
        responses=problem_docs.responses(
            "getPayoutBatch",
            {
                404: (
                    "payout_batch_not_found",
                    "payout_not_found",
                )
            },
        ),
        summary="Read a payout batch",
    )
    async def read(
        self, batch_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> PayoutBatch:
        return await service.get(conn, runtime=runtime, caller=caller, batch_id=batch_id)

    @get(
        "/{batch_id:str}/lines",
        operation_id="listPayoutLines",
        responses=problem_docs.responses(
            "listPayoutLines",
            {
                404: (
                    "payout_batch_not_found",
                    "payout_not_found",
                )
            },
        ),
        summary="The batch's lines, one per payee",
    )
    async def lines(
        self, batch_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> list[PayoutLine]:
        return await service.lines(conn, runtime=runtime, caller=caller, batch_id=batch_id)

    @get(
        operation_id="listPayoutBatches",
        responses=problem_docs.responses(
            "listPayoutBatches",
            {
                404: (
                    "payout_batch_not_found",
                    "payout_not_found",
                )
            },
        ),
        summary="List payout batches",
    )
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
        responses=problem_docs.responses(
            "markPayoutBatchExported",
            {
                404: (
                    "payout_batch_not_found",
                    "payout_not_found",
                ),
                409: ("payout_batch_state_conflict",),
            },
            once=True,
        ),
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
        operation_class=OptionalBody,  # the body may be left out
        status_code=200,
        responses=problem_docs.responses(
            "markPayoutBatchPaid",
            {
                404: (
                    "payout_batch_not_found",
                    "payout_not_found",
                ),
                409: ("payout_batch_state_conflict", "reward_state_conflict"),
            },
            once=True,
        ),
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
        responses=problem_docs.responses(
            "cancelPayoutBatch",
            {
                404: (
                    "payout_batch_not_found",
                    "payout_not_found",
                ),
                409: ("payout_batch_state_conflict", "reward_state_conflict"),
            },
            once=True,
        ),
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
        responses=problem_docs.responses(
            "failPayoutLine",
            {
                404: ("payout_batch_not_found", "payout_not_found", "payout_line_not_found"),
                409: ("payout_batch_state_conflict", "reward_state_conflict"),
            },
            once=True,
        ),
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
        responses=problem_docs.responses(
            "exportPayoutsCsv",
            {
                404: (
                    "payout_batch_not_found",
                    "payout_not_found",
                ),
                422: ("invalid_part",),
            },
        ),
        media_type="text/csv",
        summary="One row per payee (CSV)",
        description=export.__doc__.split("\n\n", 2)[2],
        response_headers=[
            ResponseHeader(
                name="Unpayable-Lines",
                description="PayPal and bank layouts: how many of the batch's lines the file "
                "leaves out (listed, with reasons, by getPaypalExport or getBankTransferExport)",
                documentation_only=True,
            ),
            ResponseHeader(
                name="Link",
                description='PayPal and bank layouts: `<…/paypal>; rel="describedby"` (or '
                "`…/bank-transfers`), the list of lines the file leaves out",
                documentation_only=True,
            ),
        ],
    )
    async def payouts_csv(
        self,
        batch_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        format: FromQuery[Literal["standard", "paypal", "bank"]] = "standard",
        part: FromQuery[int] = 1,
        bom: FromQuery[bool] = False,
    ) -> Stream:
        query = await service.export_query(
            conn, runtime=runtime, caller=caller, batch_id=batch_id, format=format, part=part
        )
        name = {
            "paypal": f"{batch_id}-paypal-{part}.csv",
            "bank": f"{batch_id}-bank-transfers.csv",
        }.get(format, f"{batch_id}.csv")
        headers = {}
        if format != "standard":
            listing = "paypal" if format == "paypal" else "bank-transfers"
            listed = f"{runtime.settings.public_base_url}/v1/payout-batches/{batch_id}/{listing}"
            headers = {
                "unpayable-lines": str(query.unpayable),
                "link": f'<{listed}>; rel="describedby"',
            }
        return _csv(runtime, query, name, bom, headers)

    @get(
        "/{batch_id:str}/paypal",
        operation_id="getPaypalExport",
        responses=problem_docs.responses(
            "getPaypalExport", {404: ("payout_batch_not_found", "payout_not_found")}
        ),
        summary="What the PayPal file pays, and the lines it leaves out",
        description="The PayPal file holds every line PayPal can pay; a line whose payee has "
        "no email, or an email that is not a valid address (checked strictly, never escaped), "
        "or an amount PayPal would round (HUF, JPY and TWD in whole units), is left out and "
        "listed here with its reason, to be paid another way or failed. Changes nothing.",
    )
    async def paypal(
        self, batch_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> PaypalExport:
        return await service.paypal_export(conn, runtime=runtime, caller=caller, batch_id=batch_id)

    @get(
        "/{batch_id:str}/bank-transfers",
        operation_id="getBankTransferExport",
        responses=problem_docs.responses(
            "getBankTransferExport", {404: ("payout_batch_not_found", "payout_not_found")}
        ),
        summary="What the bank-transfer file pays, and the lines it leaves out",
        description="The bank file (`payouts.csv?format=bank`) holds every line whose payee "
        "asked for a bank transfer with an IBAN that passes its check digits and an account "
        "holder's name (values validated when set, never escaped); the others are listed here "
        "with their reason (`paid_by_email` for the PayPal file's). Changes nothing.",
    )
    async def bank(
        self, batch_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> BankExport:
        return await service.bank_export(conn, runtime=runtime, caller=caller, batch_id=batch_id)

    @get(
        "/{batch_id:str}/rewards.csv",
        operation_id="exportPayoutRewardsCsv",
        responses=problem_docs.responses(
            "exportPayoutRewardsCsv",
            {
                404: (
                    "payout_batch_not_found",
                    "payout_not_found",
                )
            },
        ),
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


def _csv(
    runtime, query: export.ExportQuery, filename: str, bom: bool, headers: dict | None = None
) -> Stream:
    return export.download(runtime.pool, query=query, filename=filename, bom=bom, headers=headers)
