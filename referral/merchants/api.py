"""HTTP handlers for the calling merchant ("who am I", its settings) and its API keys."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from referral.http.deps import CallerDep, Conn, Listing, OnceDep, RuntimeDep
from referral.lib import problem_docs
from referral.lib.pagination import Page
from referral.merchants import service
from referral.merchants.schemas import (
    ApiKey,
    ApiKeyCreated,
    KeyCreate,
    KeyKind,
    KeyRoll,
    KeyRolled,
    Merchant,
    MerchantUpdate,
)
from referral.openapi import OptionalBody

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


def _without_secrets(body: ApiKeyCreated | KeyRolled) -> ApiKeyCreated | KeyRolled:
    """What a replay answers: the same key, its secret gone (only its hash is kept)."""
    if isinstance(body, KeyRolled):
        return KeyRolled(key=_without_secrets(body.key), replaced=body.replaced)  # type: ignore[arg-type]
    return msgspec.structs.replace(body, secret=None)


class KeyController(Controller):
    path = "/v1/keys"
    tags = ["merchant"]

    @post(
        operation_id="createKey",
        responses=problem_docs.responses(
            "createKey", {422: ("publishable_key_scopes",)}, once=True
        ),
        status_code=201,
        summary="Create an API key",
        description="A secret key for a server, restricted to `scopes` (`checkout`, "
        "`finance`, `read`, `admin`: what each covers is in the security schemes) or "
        "unrestricted when they are left out; or a publishable key for a browser. The "
        "`secret` is in this answer only: a replay of the same Idempotency-Key answers the key "
        "with `secret` null.",
    )
    async def create(
        self,
        data: JSONBody[KeyCreate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[ApiKeyCreated]:
        return await once(
            lambda: service.add_key(conn, ids=runtime.ids, caller=caller, data=data),
            replayed=_without_secrets,
        )

    @get(
        operation_id="listKeys",
        responses=problem_docs.responses("listKeys", {404: ("key_not_found",)}),
        summary="List the merchant's API keys",
        description="Every key of the merchant, revoked ones included, oldest first: id, "
        "kind, label, hint (the key's first and last characters), scopes, creation, last "
        "use and revocation times, and for a rolled key its successor and end of grace. A "
        "key's secret is shown only when it is made.",
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
        "last active key that can manage keys (unrestricted or `admin`) cannot be revoked "
        "(409 `last_secret_key`): create another first. " + KEY_CACHE_TEXT,
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

    @post(
        "/{key_id:str}/roll",
        operation_id="rollKey",
        responses=problem_docs.responses(
            "rollKey",
            {404: ("key_not_found",), 409: ("key_revoked", "key_already_rolled")},
            once=True,
        ),
        status_code=200,
        summary="Roll an API key: a new one, the old one working for a grace period",
        description="Makes a key with the same kind, label and scopes, shown with its secret "
        "this once, and lets the old key work for `grace_period_seconds` (default 24 hours, "
        "0 to 7 days), then refuses it as if revoked: every instance refuses it on the dot. A "
        "key rolls once; to roll again, roll its successor. A replay of the same "
        "Idempotency-Key answers the same keys with `secret` null.",
        operation_class=OptionalBody,  # the body may be left out
    )
    async def roll(
        self,
        key_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
        data: JSONBody[KeyRoll | None] = None,
    ) -> Response[KeyRolled]:
        return await once(
            lambda: service.roll_key(
                conn,
                ids=runtime.ids,
                caller=caller,
                key_id=key_id,
                data=data or KeyRoll(),
                cache=runtime.keys,
            ),
            replayed=_without_secrets,
        )
