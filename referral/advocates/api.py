"""HTTP handlers for advocates and codes."""

from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from referral.advocates import service
from referral.advocates.schemas import (
    Advocate,
    AdvocateUpsert,
    CodeInfo,
    ContactPreferenceUpdate,
    ShareUrl,
    ShareUrlCreate,
    VanityCodeCreate,
)
from referral.http.deps import CallerDep, Conn, Listing, OnceDep, RuntimeDep
from referral.http.rate_limits import rate_limited
from referral.lib import problem_docs
from referral.lib.pagination import Page
from referral.referrals.schemas import ReviewAction
from referral.share_page import service as share_page


class AdvocateController(Controller):
    path = "/v1/advocates"
    tags = ["advocates"]

    @post(
        operation_id="upsertAdvocate",
        responses=problem_docs.responses(
            "upsertAdvocate",
            {
                404: ("program_not_found",),
                409: ("program_archived", "customer_held_out"),
                422: ("invalid_email", "invalid_ip"),
            },
            once=True,
            replay=Advocate,
        ),
        summary="Get or create a customer's advocate",
        description="Idempotent by (program_id, customer_id): 201 when created, 200 after.",
    )
    async def upsert(
        self,
        data: JSONBody[AdvocateUpsert],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Advocate]:
        return await once(lambda: service.upsert(conn, runtime=runtime, caller=caller, data=data))

    @get(
        "/{advocate_id:str}",
        operation_id="getAdvocate",
        responses=problem_docs.responses("getAdvocate", {404: ("advocate_not_found",)}),
        summary="Read an advocate",
    )
    async def read(
        self, advocate_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Advocate:
        return await service.get(conn, runtime=runtime, caller=caller, advocate_id=advocate_id)

    @get(
        operation_id="listAdvocates",
        responses=problem_docs.responses(
            "listAdvocates", {404: ("advocate_not_found", "program_not_found")}
        ),
        summary="List advocates",
    )
    async def list(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        program_id: FromQuery[str | None] = None,
        *,
        listing: Listing,  # after the filters: the documented parameter order stays
    ) -> Page[Advocate]:
        return await service.list_advocates(
            conn,
            runtime=runtime,
            caller=caller,
            program_id=program_id,
            cursor=listing.cursor(runtime.ids, "advocate"),
        )

    @post(
        "/{advocate_id:str}/codes",
        operation_id="addVanityCode",
        responses=problem_docs.responses(
            "addVanityCode",
            {
                404: ("advocate_not_found",),
                409: ("code_taken",),
                422: (
                    "vanity_code_length",
                    "vanity_code_charset",
                    "vanity_code_reserved",
                    "vanity_code_ambiguous",
                ),
            },
            once=True,
            replay=Advocate,
        ),
        summary="Give an advocate a vanity code",
        description="4-20 letters or digits, unique deployment-wide (confusable characters "
        "count as one), not a reserved word, not readable as a generated code.",
    )
    async def add_code(
        self,
        advocate_id: FromPath[str],
        data: JSONBody[VanityCodeCreate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Advocate]:
        return await once(
            lambda: service.add_vanity_code(
                conn, runtime=runtime, caller=caller, advocate_id=advocate_id, code=data.code
            )
        )

    @post(
        "/{advocate_id:str}/share-url",
        operation_id="createShareUrl",
        responses=problem_docs.responses(
            "createShareUrl",
            {404: ("advocate_not_found",), 409: ("customer_held_out",)},
            once=True,
            replay=ShareUrl,
        ),
        summary="A signed link to the advocate's share page",
        description="For the shop to hand to its customer: their link, QR code, share "
        "buttons, referrals, rewards and stories, and their contact preference. The URL is "
        "the key to that one advocate's page; it expires after `expires_in_days` (1-365, "
        "default 30).",
    )
    async def share_url(
        self,
        advocate_id: FromPath[str],
        data: JSONBody[ShareUrlCreate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[ShareUrl]:
        return await once(
            lambda: share_page.share_url(
                conn,
                runtime=runtime,
                caller=caller,
                advocate_id=advocate_id,
                expires_in_days=data.expires_in_days,
            ),
            status=201,
        )

    @post(
        "/{advocate_id:str}/contact-preference",
        operation_id="setContactPreference",
        responses=problem_docs.responses(
            "setContactPreference", {404: ("advocate_not_found",)}, once=True
        ),
        summary="Set how the advocate wants to hear about rewards",
        description="email, sms or none; readable on the advocate and sent with every "
        "advocate-side `reward.*` event as `contact_preference`.",
    )
    async def set_contact_preference(
        self,
        advocate_id: FromPath[str],
        data: JSONBody[ContactPreferenceUpdate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Advocate]:
        return await once(
            lambda: service.set_contact_preference(
                conn,
                runtime=runtime,
                caller=caller,
                advocate_id=advocate_id,
                preference=data.contact_preference,
            )
        )


class CodeController(Controller):
    path = "/v1/codes"
    tags = ["codes"]

    @get(
        "/{code:str}",
        operation_id="getCode",
        responses=problem_docs.responses(
            "getCode",
            {404: ("code_not_found",), 429: ("too_many_requests",)},
        ),
        guards=[rate_limited("lookups", except_secret_keys=True)],  # code guessing
        summary="Check a referral code",
        description="Readable with a publishable key: codes are public.",
    )
    async def read(
        self, code: FromPath[str], conn: Conn, reader: CallerDep, runtime: RuntimeDep
    ) -> CodeInfo:
        return await service.code_info(conn, runtime=runtime, caller=reader, code=code)


class SuspensionController(Controller):
    path = "/v1/advocates"
    tags = ["fraud"]

    @post(
        "/{advocate_id:str}/reactivate",
        operation_id="reactivateAdvocate",
        responses=problem_docs.responses(
            "reactivateAdvocate", {404: ("advocate_not_found",)}, once=True
        ),
        status_code=200,
        summary="Lift the suspension of an advocate's codes",
        description="The rule rejected_referrals suspends an advocate's codes; this enables "
        "them again, and only rejections from now on count towards the limit. Audited in "
        "the outbox (`advocate.codes_reactivated`) with actor and note.",
    )
    async def reactivate(
        self,
        advocate_id: FromPath[str],
        data: JSONBody[ReviewAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Advocate]:
        return await once(
            lambda: service.reactivate(
                conn,
                runtime=runtime,
                caller=caller,
                advocate_id=advocate_id,
                actor=data.actor,
                note=data.note,
            )
        )
