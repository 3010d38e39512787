"""HTTP handlers for the calling merchant ("who am I", its settings) and its API keys."""

from __future__ import annotations

from litestar import Controller, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from referral.http.deps import CallerDep, Conn, Listing, OnceDep, RuntimeDep
from referral.lib import problem_docs
from referral.lib.pagination import Page
from referral.merchants import service
from referral.merchants.schemas import ApiKey, KeyKind, Merchant, MerchantUpdate

KEY_CACHE_TEXT = (
    f"An instance caches an accepted key for {service.KEY_CACHE_SECONDS} seconds: a revoked "
    "key is refused at once by the instance that revoked it, and by every other instance "
    f"within {service.KEY_CACHE_SECONDS} seconds."
)


class MerchantController(Controller):
    path = "/v1/merchant"
    tags = ["merchant"]

    @get(
        operation_id="getMerchant",
        responses=problem_docs.responses("getMerchant", {404: ("merchant_not_found",)}),
        security=[{"secretKey": []}, {"publishableKey": []}],
        summary="Who am I: the key's merchant and its settings",
        description="The merchant the key belongs to (its id `mer_…`, which the command line "
        "takes, and its mode: test and live are separate merchants), its time zone and payout "
        "minimums, and the calling key's id, kind and hint (never the key itself).",
    )
    async def read(self, conn: Conn, reader: CallerDep, runtime: RuntimeDep) -> Merchant:
        return await service.get_merchant(conn, ids=runtime.ids, caller=reader)

    @patch(
        operation_id="updateMerchant",
        responses=problem_docs.responses(
            "updateMerchant",
            {404: ("merchant_not_found",), 422: ("invalid_time_zone", "unknown_currency")},
        ),
        security=[{"secretKey": []}],
        summary="Change the merchant's settings",
        description="The time zone (an IANA name such as `Europe/Stockholm`: reward cap "
        "periods start at its midnight) and the payout minimums per currency, in minor units "
        "(a new payout batch leaves payees below it for a later one). Fields left out keep "
        "their value; a currency set to `null` loses its minimum. Secret keys only.",
    )
    async def update(
        self, data: JSONBody[MerchantUpdate], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Merchant:
        return await service.update_merchant(conn, ids=runtime.ids, caller=caller, data=data)


class KeyController(Controller):
    path = "/v1/keys"
    tags = ["merchant"]
    security = [{"secretKey": []}]

    @get(
        operation_id="listKeys",
        responses=problem_docs.responses("listKeys", {404: ("key_not_found",)}),
        summary="List the merchant's API keys",
        description="Every key of the merchant, revoked ones included, oldest first: id, "
        "kind, label, hint (the key's first and last characters), creation and revocation "
        "times. Keys are made with `referral keys create`; a key is shown only then.",
    )
    async def list(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        kind: FromQuery[KeyKind | None] = None,
        *,
        listing: Listing,
    ) -> Page[ApiKey]:
        return await service.list_keys(
            conn,
            ids=runtime.ids,
            caller=caller,
            kind=kind,
            cursor=listing.cursor(runtime.ids, "key"),
        )

    @post(
        "/{key_id:str}/revoke",
        operation_id="revokeKey",
        responses=problem_docs.responses(
            "revokeKey", {404: ("key_not_found",), 409: ("last_secret_key",)}, once=True
        ),
        status_code=200,
        summary="Revoke an API key",
        description="The key stops working; revoking it again changes nothing. The merchant's "
        "last active secret key cannot be revoked (409 `last_secret_key`): create another "
        "first. " + KEY_CACHE_TEXT,
    )
    async def revoke(
        self,
        key_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[ApiKey]:
        return await once(
            lambda: service.revoke_key(
                conn, ids=runtime.ids, caller=caller, key_id=key_id, cache=runtime.keys
            )
        )
