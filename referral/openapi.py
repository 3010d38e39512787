"""The OpenAPI document: how structs become schemas, and the document `make openapi` writes.

`python -m referral.openapi > openapi/openapi.json` (or `make openapi`) after an API change.

Litestar's struct schemas leave out what msgspec enforces: a struct that refuses unknown
fields gets no `additionalProperties: false`, a dict field loses its key pattern and its value
bounds (`{"EUR": 1000}`'s `^[A-Z]{3}$` and `0..10^12`), a list its items' bounds, and a bound
of 0 (`ge=0`) goes missing as if it were no bound. `StructSchemaPlugin` takes each field's
schema from msgspec itself (the decoder's own rules) wherever no struct is inside, so the spec
states exactly what decoding applies; a rule JSON Schema cannot state (one field against
another, a CIDR) is a 422 problem the operation lists (`referral.lib.problem_docs`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar._openapi.schema_generation.plugins import StructSchemaPlugin as _LitestarStructs
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)

_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")
_AS_IS = {"properties", "$ref", "$defs"}  # a struct inside: Litestar's own schema handles it


def _schema_from_json(value: dict[str, Any]) -> Schema | None:
    """A Litestar `Schema` for msgspec's JSON Schema of a value without structs inside."""
    kwargs: dict[str, Any] = {}
    for key, item in value.items():
        if key in _AS_IS:
            return None
        if key == "type":
            kwargs["type"] = OpenAPIType(item)
        elif key == "format":
            kwargs["format"] = OpenAPIFormat(item)
        elif key in ("propertyNames", "additionalProperties", "items") and isinstance(item, dict):
            inner = _schema_from_json(item)
            if inner is None:
                return None
            kwargs[_SNAKE.sub("_", key).lower()] = inner
        elif key in ("anyOf", "oneOf"):
            members = [_schema_from_json(member) for member in item]
            if any(member is None for member in members):
                return None
            kwargs[_SNAKE.sub("_", key).lower()] = members
        else:
            kwargs[_SNAKE.sub("_", key).lower()] = item
    return Schema(**kwargs)


_FORMATS = {
    msgspec.inspect.DateTimeType: OpenAPIFormat.DATE_TIME,
    msgspec.inspect.DateType: OpenAPIFormat.DATE,
    msgspec.inspect.TimeType: OpenAPIFormat.TIME,
    msgspec.inspect.UUIDType: OpenAPIFormat.UUID,
}


def _string_format(info: msgspec.inspect.Type) -> OpenAPIFormat | None:
    """The format of a string msgspec parses (its JSON Schema leaves out `date-time`)."""
    if isinstance(info, msgspec.inspect.Metadata):
        return _string_format(info.type)
    if isinstance(info, msgspec.inspect.UnionType):
        found = {_string_format(member) for member in info.types} - {None}
        return found.pop() if len(found) == 1 else None
    return _FORMATS.get(type(info))


def _with_format(schema: Schema, format: OpenAPIFormat) -> None:
    if schema.type == OpenAPIType.STRING:
        schema.format = format
    for member in [*(schema.any_of or ()), *(schema.one_of or ())]:
        if isinstance(member, Schema):
            _with_format(member, format)


class StructSchemaPlugin(_LitestarStructs):
    """Litestar's struct schemas, plus what msgspec enforces and Litestar leaves out."""

    def to_openapi_schema(self, field_definition, schema_creator) -> Schema:  # type: ignore[no-untyped-def]
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if not isinstance(info, msgspec.inspect.StructType):
            return schema
        if info.forbid_unknown_fields:
            schema.additional_properties = False
        hints = field_definition.get_type_hints(include_extras=True, resolve_generics=True)
        for field in info.fields:
            if schema.properties is None or field.encode_name not in schema.properties:
                continue
            try:
                exact = _schema_from_json(msgspec.json.schema(hints[field.name]))
            except (TypeError, ValueError):  # a type msgspec has no JSON Schema for
                continue
            if exact is None:  # a struct inside: Litestar's reference to its component
                continue
            if format := _string_format(field.type):
                _with_format(exact, format)
            if field.default not in (msgspec.NODEFAULT, msgspec.UNSET):
                exact.default = field.default
            schema.properties[field.encode_name] = exact
        return schema


@dataclass
class OptionalBody(Operation):
    """An operation whose JSON body may be left out (`data: JSONBody[X | None] = None`),
    which Litestar documents as required: `@post(..., operation_class=OptionalBody)`."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False


@dataclass
class FileBody(Operation):
    """An operation whose body is a file it streams (an import: CSV or JSON lines), which
    Litestar cannot see in a handler without `data`: `@post(..., operation_class=FileBody)`."""

    def __post_init__(self) -> None:
        text = Schema(type=OpenAPIType.STRING)
        self.request_body = RequestBody(
            content={
                "text/csv": OpenAPIMediaType(schema=text),
                "application/x-ndjson": OpenAPIMediaType(schema=text),
            },
            required=True,
            description="The file: CSV with a header line, or JSON lines (one object a line)",
        )


def document() -> str:
    from referral.app import create_app
    from referral.settings import Settings

    # The spec does not depend on settings; these are placeholders that open nothing.
    app = create_app(
        Settings(
            database_url="postgresql://unused/unused",
            hashids_salt="-" * 16,
            click_token_key="-" * 16,
            ip_hash_key="-" * 16,
        )
    )
    return json.dumps(app.openapi_schema.to_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(document(), end="")


def _inline(value: Any, defs: dict[str, Any]) -> Any:
    """msgspec's JSON Schema with every `#/$defs/…` reference replaced by its definition:
    a webhook's schema stands alone (no struct of a payload refers to itself)."""
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in value.items() if k != "$defs"}
    if isinstance(value, list):
        return [_inline(v, defs) for v in value]
    return value


def webhooks_section() -> dict[str, Any]:
    """The OpenAPI 3.1 `webhooks`: one POST per event type, its body the event with the
    payload struct the catalogue names (referral/webhooks/schemas.py)."""
    from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, PathItem

    from referral.webhooks.schemas import CATALOGUE, envelope_struct

    signed = (
        "Signed the Standard Webhooks way: `webhook-id` (the event id, the same on every "
        "retry: dedupe on it), `webhook-timestamp` (unix seconds of this attempt) and "
        "`webhook-signature` (`v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` with "
        "the endpoint's secret; two during a rotation). Any 2xx within 15 s acknowledges; "
        "anything else is retried (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, "
        "with jitter, honouring `Retry-After`); 410 disables the endpoint."
    )
    section: dict[str, Any] = {}
    for event_type, (_, summary) in CATALOGUE.items():
        schema = msgspec.json.schema(envelope_struct(event_type))
        body = _inline(schema, schema.get("$defs", {}))
        section[event_type] = PathItem(
            post=Operation(
                operation_id=f"webhook.{event_type}",
                summary=summary,
                description=signed,
                tags=["webhooks"],
                request_body=RequestBody(
                    content={"application/json": OpenAPIMediaType(schema=body)},  # type: ignore[arg-type]
                    required=True,
                ),
                responses={"2XX": OpenAPIResponse(description="Received (the body is not read)")},
            )
        )
    return section
