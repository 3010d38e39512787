"""JSON or CSV by the `Accept` header, and the OpenAPI 200 that documents both."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema


def wants_csv(accept: str) -> bool:
    """CSV when the client asks for text/csv ahead of (or without) JSON."""
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if "text/csv" not in kinds:
        return False
    for kind in kinds:
        if kind in ("application/json", "application/*"):
            return kinds.index("text/csv") < kinds.index(kind)
    return True


def json_or_csv(csv_text: str) -> type[Operation]:
    """An operation class whose 200 has both forms: JSON (the default) and CSV (`Accept`),
    the CSV described by `csv_text`."""

    @dataclass
    class JsonOrCsv(Operation):
        def __post_init__(self) -> None:
            ok = (self.responses or {}).get("200")
            if isinstance(ok, OpenAPIResponse) and ok.content is not None:
                ok.content["text/csv"] = OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, description=csv_text)
                )

    return JsonOrCsv
