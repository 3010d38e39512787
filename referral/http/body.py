"""JSON request bodies, decoded once and strictly into the handler's `data` type.

Litestar decodes a body to builtins and then converts it to the handler's type in msgspec's
lax mode, where `"5000"` is an int and `1764582000` a datetime. `JsonRequest.json()` decodes
the body straight into the handler's type under msgspec's strict rules instead: money, counts
and timestamps accept exactly their documented JSON type. The signature model takes the
decoded struct as it is. A body that is not UTF-8, not JSON, or not the documented shape is a
400 problem naming the field (`key`, a path such as `line_items[0].amount`), on every route
and before any key is checked.

`app.py` installs it as the app's `request_class`.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.types import Empty

from referral.lib.errors import AppError

_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_FIELD = re.compile(r"^Object (?:missing required|contains unknown) field `(?P<field>[^`]*)`")


class MalformedJson(AppError):
    status = 400
    code = "malformed_json"
    title = "Malformed JSON"


def field_error(exc: msgspec.ValidationError) -> dict[str, str]:
    """msgspec's error as `{key, message, source}`: the key names the field itself, also for
    a missing or unknown one (msgspec puts those at their parent object)."""
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any text
    message, path = match["message"], (match["path"] or "").removeprefix(".")
    if named := _FIELD.match(message):
        path = f"{path}.{named['field']}" if path else named["field"]
    error = {"message": message, "source": "body"}
    if path:
        error["key"] = path
    return error


def decode_body(body: bytes, target: Any, dec_hook: Any = None) -> Any:
    """The body as `target`, strictly; problems are 400s that say what was wrong. A body that
    is not JSON at all says so, even where the typed decoder met a wrong field first."""
    try:
        return msgspec.json.decode(body, type=target, strict=True, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        _require_json(body)
        error = field_error(exc)
        if "got `float`" in error["message"]:
            # JSON Schema's `integer` (what the spec says) is any number without a fraction,
            # `5000.0` too: read those as ints and decode again, as strictly otherwise.
            try:
                integral = _integral(msgspec.json.decode(body))
                return msgspec.convert(integral, target, strict=True, dec_hook=dec_hook)
            except msgspec.ValidationError as again:
                error = field_error(again)
            except RecursionError:
                raise MalformedJson("JSON is malformed: it is nested too deeply") from None
        raise ValidationException(detail="Request body is invalid", extra=[error]) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        _require_json(body)
        raise MalformedJson("JSON is malformed") from None


def _integral(value: Any) -> Any:
    """`value` with every float that has no fraction (`5000.0`) as an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(item) for item in value]
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    return value


def _require_json(body: bytes) -> None:
    """Refuse a body that is not UTF-8 JSON (only run once decoding failed)."""
    try:
        body.decode("utf-8")
        msgspec.json.decode(body)
    except UnicodeDecodeError:
        raise MalformedJson("JSON is malformed: the body is not valid UTF-8") from None
    except msgspec.DecodeError as exc:
        said = str(exc)
        raise MalformedJson(
            said if said.startswith("JSON") else f"JSON is malformed: {said}"
        ) from None
    except RecursionError:
        raise MalformedJson("JSON is malformed: it is nested too deeply") from None


class JsonRequest(Request):
    """The app's request class: `json()` answers the handler's `data`, strictly decoded."""

    async def json(self) -> Any:
        if self._json is Empty:
            data = self.route_handler.parsed_fn_signature.parameters.get("data")
            target = Any if data is None else data.annotation
            deserializer = self.route_handler.default_deserializer
            self._json = decode_body(await self.body() or b"null", target, deserializer)
        return self._json
