"""What an operation answers besides its success, for the OpenAPI document.

`responses("createProgram", {422: ("invalid_reward_rule",)}, replay=Program)` is the one
place an operation declares its problem types: each error status gets a schema of its own
(`CreateProgram422Problem`) whose `code` and `type` enumerate exactly what the operation can
answer with that status, so a client sees per call what it may have to handle, and a fuzzer
holds the app to it. What every operation of a kind can answer (a body that is not JSON, a
missing key, an Idempotency-Key reused) is added here, not repeated per handler.

`replay` documents the 200 of a create that found what an earlier call made (the same order
id, the same customer's advocate): the body of the 201, nothing new created.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec
from litestar.openapi.datastructures import ResponseSpec

from referral.lib.errors import PROBLEM_BASE

_TEXT = {
    400: "Malformed request or failed validation",
    401: "Missing or invalid API key",
    403: "The key may not do this (a publishable key on a secret call, or a restricted key "
    "without the operation's scope)",
    404: "Not found, or owned by another merchant",
    409: "Conflicts with the current state",
    410: "Expired: ask for a new one",
    413: "The body is larger than the service takes (1 MB; an import file, `IMPORT_MAX_BYTES`)",
    415: "The body's Content-Type is not one the operation takes",
    422: "Well-formed, but a rule refuses it",
    429: "Too many requests from this address: retry after `Retry-After` seconds",
    503: "The database cannot be reached: retry after `Retry-After` seconds (safe with the "
    "same Idempotency-Key)",
}

# What any operation may answer: a request that does not fit the schema, a body above the
# size limit, a value the database cannot hold, the database out of reach.
_ANY = {
    400: ("validation_error", "malformed_json", "bad_request"),
    413: ("payload_too_large",),
    422: ("invalid_text", "value_out_of_range", "unstorable_value"),
    503: ("database_unavailable",),
}
# What any operation behind an API key may answer.
_KEYED = {
    401: ("missing_api_key", "invalid_api_key"),
    403: ("secret_key_required", "insufficient_scope"),
}
# What a state change under `once` (Idempotency-Key) may answer.
_ONCE = {
    409: ("idempotency_key_reused", "idempotency_key_in_flight"),
    422: ("invalid_idempotency_key",),
}


def _pascal(operation_id: str) -> str:
    return operation_id[:1].upper() + operation_id[1:]


def _problem_struct(name: str, status: int, codes: Iterable[str]) -> type[msgspec.Struct]:
    codes = tuple(sorted(set(codes)))
    return msgspec.defstruct(
        name,
        [
            ("type", Literal[tuple(PROBLEM_BASE + code for code in codes)]),  # type: ignore[misc]
            ("title", str),
            ("status", Literal[status]),  # type: ignore[valid-type]
            ("detail", str),
            ("code", Literal[codes]),  # type: ignore[valid-type]
            ("instance", str | None, None),
        ],
        module=__name__,
    )


def responses(
    operation_id: str,
    problems: Mapping[int, Iterable[str]] | None = None,
    *,
    keyed: bool = True,
    once: bool = False,
    replay: Any = None,
) -> dict[int, ResponseSpec]:
    """The OpenAPI responses of `operation_id` besides its success: its problem types per
    status (with what every such operation can answer), and the 200 of a replay."""
    declared: dict[int, set[str]] = {}
    for extra in (_ANY, _KEYED if keyed else {}, _ONCE if once else {}, problems or {}):
        for status, codes in extra.items():
            declared.setdefault(status, set()).update(codes)
    specs: dict[int, ResponseSpec] = {}
    if replay is not None:
        specs[200] = ResponseSpec(
            replay,
            description="Found what an earlier call made (the same order, advocate, …): "
            "nothing new was created",
            generate_examples=False,
        )
    for status in sorted(declared):
        name = f"{_pascal(operation_id)}{status}Problem"
        specs[status] = ResponseSpec(
            _problem_struct(name, status, declared[status]),
            description=_TEXT[status],
            media_type="application/problem+json",
            generate_examples=False,
        )
    return specs
