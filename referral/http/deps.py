"""Request dependencies: the runtime, a transaction per request, the caller's key, and the
two pieces every handler shares (`once` for state changes, `listing` for lists).

The request owns the transaction: it commits when the handler returns and rolls back when
it raises, so services never commit.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from litestar import Litestar, Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.params import HeaderParameter
from litestar.routes import HTTPRoute
from litestar.types import Empty

from referral.http import access
from referral.http.idempotency import Once
from referral.http.listing import ListQuery, provide_list_query
from referral.lib import metrics
from referral.lib.errors import Forbidden, Unauthorized
from referral.merchants.service import Caller, authenticate, hash_key
from referral.runtime import Runtime


def runtime_of(state: State) -> Runtime:
    return state.runtime


_CALLER = "referral.caller"  # where `check_key` leaves the caller in the request's state


async def check_key(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """The app's guard: the key the handler asks for (`caller` or `once`: secret, `reader`:
    any), within its scopes. Litestar runs guards before it reads the body or resolves a
    dependency, so a key that may not make a call is refused before anything else: a
    restricted key learns nothing of a call it may not make, not even whether its body
    would pass."""
    wants = handler.parsed_fn_signature.parameters
    if "caller" in wants or "once" in wants:  # `once` runs under the secret caller
        caller = _require_secret(await _caller(connection, connection.app.state.runtime))
    elif "reader" in wants:
        caller = await _caller(connection, connection.app.state.runtime)
    else:
        return
    connection.scope["state"][_CALLER] = _in_scope(connection, caller)


KEYED = {"caller", "once", "reader"}  # the handler parameters that need a key


def guard_keyed_routes(app: Litestar) -> None:
    """`check_key` as the last guard of every handler that takes a key (after its rate
    limit, so a guesser without a key is limited too), and of no other: the redirect and
    the public pages run no guard at all."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if KEYED & set(handler.parsed_fn_signature.parameters):
                handler.guards = [*(handler.guards or ()), check_key]
                # Litestar resolves a handler's guards once, at registration: again, with it.
                handler._resolved_guards = Empty


async def provide_auth(request: Request) -> Caller | None:
    """The caller `check_key` accepted (None on a public route).

    `conn` depends on this, so a refused key never opens a transaction: Litestar resolves
    sibling dependencies concurrently, and when one raises, the cleanup of a generator
    sibling that already ran is dropped - its pooled connection stayed checked out, idle in
    transaction, for good.
    """
    return request.scope["state"].get(_CALLER)


async def provide_conn(
    state: State, auth: NamedDependency[Caller | None]
) -> AsyncGenerator[asyncpg.Connection, None]:
    waiting = metrics.pool_waiting
    waiting.count += 1
    try:
        conn = await state.runtime.pool.acquire()
    finally:
        waiting.count -= 1
    try:
        async with conn.transaction():
            yield conn
    finally:
        await state.runtime.pool.release(conn)


async def _caller(request: ASGIConnection, runtime: Runtime) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise Unauthorized(
            "send your API key as `Authorization: Bearer <key>`", code="missing_api_key"
        )
    raw = raw.strip()
    key_hash = hash_key(raw)
    caller = runtime.keys.get(key_hash)
    if caller is not None and caller.expires_at is not None and caller.expired(datetime.now(UTC)):
        runtime.keys.forget(key_hash)  # a rolled key's grace ended: refused on the dot
        caller = None
    if caller is None:
        async with runtime.pool.acquire() as conn:
            caller = await authenticate(conn, raw=raw)
        if caller is None:
            raise Unauthorized(
                "this API key is not valid (unknown, revoked, or rolled and past its grace)",
                code="invalid_api_key",
            )
        runtime.keys.put(key_hash, caller)
    return caller


def _in_scope(request: ASGIConnection, caller: Caller) -> Caller:
    """A restricted key calls only what its scopes allow (`referral/http/access.py`); a
    route the table does not know is refused to it (a test keeps the table complete)."""
    if caller.scopes is None:
        return caller
    operation_id = request.route_handler.operation_id
    rule = access.of(operation_id if isinstance(operation_id, str) else None)
    if rule is not None and access.allows(caller.scopes, rule, request.scope["method"]):
        return caller
    needed = rule.scope if rule is not None else "an unrestricted key"
    raise Forbidden(
        f"this key's scopes ({', '.join(sorted(caller.scopes))}) do not include what this "
        f"call needs ({needed}): use a key with that scope, or an unrestricted secret key",
        code="insufficient_scope",
    )


def _require_secret(caller: Caller) -> Caller:
    if caller.kind != "secret":
        raise Forbidden(
            "this call needs a secret key (sk_…); publishable keys only read public data",
            code="secret_key_required",
        )
    return caller


async def provide_secret_caller(
    request: Request, state: State, auth: NamedDependency[Caller | None]
) -> Caller:
    """A secret key (`sk_…`): server-to-server calls, within the key's scopes."""
    return auth or _in_scope(request, _require_secret(await _caller(request, state.runtime)))


async def provide_any_caller(
    request: Request, state: State, auth: NamedDependency[Caller | None]
) -> Caller:
    """A secret or publishable key: for public data a browser may read."""
    return auth or _in_scope(request, await _caller(request, state.runtime))


async def provide_once(
    request: Request,
    conn: NamedDependency[asyncpg.Connection],
    caller: NamedDependency[Caller],
    idempotency_key: Annotated[
        str | None,
        HeaderParameter(
            name="Idempotency-Key",
            required=False,
            description="Makes a retry safe: the same key on the same route answers what the "
            "first call answered (`Idempotent-Replayed: true`), without doing it again",
            # Documented here, checked by `Once` (422 `invalid_idempotency_key`).
            schema_extra={
                "type": "string",
                "oneOf": None,  # a header is text or absent, never JSON null
                "minLength": 1,
                "maxLength": 255,
                "pattern": "^[\\x20-\\x7e]+$",
            },
        ),
    ] = None,
) -> Once:
    """`idempotency_key` is declared so the spec lists the header on every state change;
    `Once` reads it from the request itself."""
    return Once(request, conn, caller)


# Handler parameter types: the parameter's name picks the dependency.
Conn = NamedDependency[asyncpg.Connection]
CallerDep = NamedDependency[Caller]  # as `caller` (secret key) or `reader` (any key)
RuntimeDep = NamedDependency[Runtime]
OnceDep = NamedDependency[Once]  # as `once`
Listing = NamedDependency[ListQuery]  # as `listing`

DEPENDENCIES = {
    "runtime": Provide(runtime_of, sync_to_thread=False),
    "auth": Provide(provide_auth),
    "conn": Provide(provide_conn),
    "caller": Provide(provide_secret_caller),
    "reader": Provide(provide_any_caller),
    "once": Provide(provide_once),
    "listing": Provide(provide_list_query, sync_to_thread=False),
}
