"""HTTP handlers for rewards (read, list, and a person's approve / reverse / reinstate) and
for the books (balances as of a moment, the ledger export)."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Stream

from referral.http.deps import CallerDep, Conn, Listing, OnceDep, RuntimeDep
from referral.lib import problem_docs
from referral.lib.pagination import Page
from referral.payouts import export
from referral.rewards import books, service
from referral.rewards.schemas import LedgerBalances, Reward, RewardAction, RewardStatus

_ACTION_PROBLEMS = {
    "approve": {404: ("reward_not_found",), 409: ("reward_state_conflict",)},
    "reverse": {404: ("reward_not_found",), 409: ("reward_state_conflict",)},
    "reinstate": {
        404: ("reward_not_found",),
        409: ("reward_state_conflict", "reward_order_refunded", "reward_amount_increase"),
    },
}


def _action(
    action: Literal["approve", "reverse", "reinstate"], *, operation_id: str, **docs: str
) -> HTTPRouteHandler:
    """A person's action on one reward: the three share their shape and idempotency."""

    @post(
        f"/{{reward_id:str}}/{action}",
        operation_id=operation_id,
        responses=problem_docs.responses(operation_id, _ACTION_PROBLEMS[action], once=True),
        status_code=200,
        **docs,
    )
    async def act(
        self,
        reward_id: FromPath[str],
        data: JSONBody[RewardAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Reward]:
        return await once(
            lambda: service.act(
                conn,
                ids=runtime.ids,
                caller=caller,
                reward_id=reward_id,
                action=action,
                actor=data.actor,
                note=data.note,
            )
        )

    return act


class RewardController(Controller):
    path = "/v1/rewards"
    tags = ["rewards"]

    @get(
        "/{reward_id:str}",
        operation_id="getReward",
        responses=problem_docs.responses("getReward", {404: ("reward_not_found",)}),
        summary="Read a reward with its history",
    )
    async def read(
        self, reward_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Reward:
        return await service.get(
            conn, ids=runtime.ids, merchant_id=caller.merchant_id, reward_id=reward_id
        )

    @get(
        operation_id="listRewards",
        responses=problem_docs.responses(
            "listRewards", {404: ("reward_not_found", "advocate_not_found", "program_not_found")}
        ),
        summary="List rewards",
    )
    async def list(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        status: FromQuery[RewardStatus | None] = None,
        advocate_id: FromQuery[str | None] = None,
        *,
        listing: Listing,  # after the filters: the documented parameter order stays
    ) -> Page[Reward]:
        return await service.list_rewards(
            conn,
            ids=runtime.ids,
            merchant_id=caller.merchant_id,
            status=status,
            advocate_id=advocate_id,
            cursor=listing.cursor(runtime.ids, "reward"),
        )

    approve = _action(
        "approve",
        operation_id="approveReward",
        summary="Approve a reward now (pending or in review)",
    )
    reverse = _action(
        "reverse",
        operation_id="reverseReward",
        summary="Reverse a reward",
        description="After payment the amount becomes a receivable that later payouts net.",
    )
    reinstate = _action(
        "reinstate",
        operation_id="reinstateReward",
        summary="Undo a reversal",
        description="Returns the reward to the state and value it had before the reversal.",
    )


_DATE_TIME = {"format": "date-time"}
AsOf = Annotated[
    str | None,
    QueryParameter(
        description="The moment (RFC 3339 with a zone, e.g. 2026-01-31T23:59:59Z): entries "
        "booked at or before it count. Default: now; a future moment is refused",
        schema_extra=_DATE_TIME,
    ),
]
ProgramFilter = Annotated[
    str | None,
    QueryParameter(description="One program's rewards (prg_…); all of the merchant's if left out"),
]
_BALANCES_PROBLEMS = {
    404: ("program_not_found",),
    422: ("invalid_timestamp", "as_of_in_future"),
}
ENTRIES_TEXT = (
    "Every ledger entry booked after `from` up to and including `until`, oldest first, "
    "streamed: so per currency and account the file sums to the change of getLedgerBalances' "
    "`accounts` between `as_of=from` and `as_of=until`. Columns (stable; new ones are only "
    "appended): " + ", ".join(books.ENTRIES_CSV_COLUMNS) + ". `booked_at` is UTC with "
    "microseconds; `reward_id`, `referral_id` and the batch ids are public ids; `order_id` is "
    "the shop's own; `payout_batch_id` is the batch whose payment (or a paid line's failure) "
    "booked the entry, `netted_in_batch_id` the batch whose line nets a receivable off; "
    "`account` is pending (pending and in review), payable, paid or receivable; `amount` is "
    "fixed-point and `amount_minor` the integer, negative where money left the account; "
    "`reason` and `reward_status` are the reward's transition that booked it. Text a "
    "spreadsheet would run as a formula starts with an apostrophe."
)


class LedgerController(Controller):
    path = "/v1/ledger"
    tags = ["ledger"]

    @get(
        "/balances",
        operation_id="getLedgerBalances",
        responses=problem_docs.responses("getLedgerBalances", _BALANCES_PROBLEMS),
        summary="The books as of a moment: owed, paid, reversed and receivable, per currency",
        description=books.FIGURES + "\nThe same as CSV: exportLedgerBalancesCsv.",
    )
    async def balances(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        as_of: AsOf = None,
        program_id: ProgramFilter = None,
    ) -> LedgerBalances:
        return await books.balances(
            conn, runtime=runtime, caller=caller, as_of=as_of, program_id=program_id
        )

    @get(
        "/balances.csv",
        operation_id="exportLedgerBalancesCsv",
        responses=problem_docs.responses("exportLedgerBalancesCsv", _BALANCES_PROBLEMS),
        media_type="text/csv",
        summary="The books as of a moment (CSV)",
        description="getLedgerBalances in long form, one row per currency and figure: "
        + ", ".join(books.BALANCES_CSV_COLUMNS)
        + ". Figures: "
        + ", ".join(books.CSV_FIGURES)
        + " (`account_*`: the ledger's own accounts, signed as booked). `amount` is "
        "fixed-point with the currency's exponent, `amount_minor` the integer.",
    )
    async def balances_csv(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        as_of: AsOf = None,
        program_id: ProgramFilter = None,
    ) -> Stream:
        found = await books.balances(
            conn, runtime=runtime, caller=caller, as_of=as_of, program_id=program_id
        )
        stamp = found.as_of.strftime("%Y%m%dT%H%M%SZ")
        return Stream(
            books.balances_csv(found),
            media_type="text/csv",  # Litestar adds the charset
            headers={
                "content-disposition": f'attachment; filename="ledger-balances-{stamp}.csv"',
                "cache-control": "no-store",
            },
        )

    @get(
        "/entries.csv",
        operation_id="exportLedgerEntriesCsv",
        responses=problem_docs.responses(
            "exportLedgerEntriesCsv",
            {
                404: ("program_not_found",),
                422: ("invalid_timestamp", "until_in_future", "invalid_range"),
            },
        ),
        media_type="text/csv",
        summary="Every ledger entry of a time range (CSV, streamed)",
        description=ENTRIES_TEXT,
    )
    async def entries_csv(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        from_: Annotated[
            str | None,
            QueryParameter(
                name="from",
                description="Entries booked after this moment (RFC 3339 with a zone); "
                "default: from the first entry",
                schema_extra=_DATE_TIME,
            ),
        ] = None,
        until: Annotated[
            str | None,
            QueryParameter(
                description="Up to and including this moment (RFC 3339 with a zone); "
                "default: now; a future moment is refused",
                schema_extra=_DATE_TIME,
            ),
        ] = None,
        program_id: ProgramFilter = None,
        bom: Annotated[
            bool, QueryParameter(description="Start the file with a UTF-8 byte-order mark")
        ] = False,
    ) -> Stream:
        query, start, end = await books.entries_export(
            conn,
            runtime=runtime,
            caller=caller,
            from_=from_,
            until=until,
            program_id=program_id,
        )
        name = f"ledger-entries-{start:%Y%m%dT%H%M%SZ}-{end:%Y%m%dT%H%M%SZ}.csv"
        return export.download(runtime.pool, query=query, filename=name, bom=bom)
