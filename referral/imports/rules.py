"""Imports, pure: what a file's columns must be, and what each line becomes or why it is
refused. No I/O.

A line is a CSV record (under the file's header) or one JSON object (JSON lines). Every
kind reads the same fields in both formats; CSV values are text, so empty means absent.
A refusal names the field and the rule, never the value: the error report is shown to
staff and kept, and the value may be a person's address.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, time
from typing import Any

import msgspec

from referral.advocates.schemas import ImportedAdvocate
from referral.codes.codec import CodeCodec, VanityCodeError, lookup_key
from referral.imports.schemas import ImportedCustomer
from referral.lib.emails import normalise_email, payout_email_problem
from referral.lib.money import is_currency
from referral.lib.timestamps import EARLIEST, MAX_FUTURE
from referral.orders.schemas import ImportedOrder

KINDS = ("advocates", "customers", "orders")
FORMATS = ("csv", "jsonl")
BATCH_LINES = 10_000  # lines a worker's transaction takes
MAX_ERRORS = 10_000  # error rows kept per import; `failed` counts every refused line
MAX_LINE = 10_000  # characters: a longer line is refused, not parsed
MAX_TEXT = 200
MAX_MONEY = 10**13

# The fields of each kind: (required, optional). `customer_id` or `email` identifies a
# customer or an order's buyer: one of them is required where it says "one of".
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "advocates": (("customer_id",), ("email", "name", "code")),
    "customers": ((), ("customer_id", "email")),
    "orders": (
        ("order_id", "subtotal", "total", "currency", "occurred_at"),
        ("customer_id", "email"),
    ),
}
IDENTIFIED = {"customers", "orders"}  # kinds whose line needs customer_id or email


class LineError(Exception):
    """Why one line is refused: a stable code and a message naming the field."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def header_problem(kind: str, columns: list[str]) -> str | None:
    """Why a CSV header cannot be read as `kind`, or None."""
    required, optional = FIELDS[kind]
    known = set(required) | set(optional)
    if len(set(columns)) != len(columns):
        return "a column is named twice in the header"
    unknown = sorted(c for c in columns if c not in known)
    if unknown:
        return (
            f"unknown column(s) {', '.join(unknown)[:200]}; {kind} take {', '.join(sorted(known))}"
        )
    missing = [c for c in required if c not in columns]
    if missing:
        return f"the header lacks the column(s) {', '.join(missing)}"
    if kind in IDENTIFIED and "customer_id" not in columns and "email" not in columns:
        return "the header needs a customer_id or an email column"
    return None


def parse_header(raw: str) -> list[str]:
    """A CSV header's column names, trimmed and lower-cased (a byte-order mark dropped)."""
    rows = list(csv.reader([raw.removeprefix("\ufeff")]))
    return [c.strip().lower() for c in rows[0]] if rows else []


def fields_of(raw: str, fmt: str, columns: list[str] | None) -> dict[str, Any]:
    """One line's fields by name."""
    if len(raw) > MAX_LINE:
        raise LineError("line_too_long", f"a line has at most {MAX_LINE} characters")
    if fmt == "jsonl":
        try:
            value = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise LineError("malformed_line", "the line is not one JSON object") from None
        if not isinstance(value, dict):
            raise LineError("malformed_line", "the line is not one JSON object")
        return value
    assert columns is not None
    rows = list(csv.reader([raw], strict=True)) if '"' in raw else [raw.split(",")]
    if len(rows) != 1 or len(rows[0]) != len(columns):
        raise LineError(
            "malformed_line",
            f"the line has {len(rows[0]) if rows else 0} fields; the header has {len(columns)}",
        )
    return {c: v for c, v in zip(columns, rows[0], strict=True) if v != ""}


def _text(fields: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise LineError("missing_field", f"{name} is required")
        return None
    if not isinstance(value, str):
        raise LineError("invalid_field", f"{name} must be text")
    value = value.strip()
    if not value:
        if required:
            raise LineError("missing_field", f"{name} is required")
        return None
    if len(value) > MAX_TEXT or any(ord(ch) < 32 for ch in value):
        raise LineError("invalid_field", f"{name} is at most {MAX_TEXT} printable characters")
    return value


def _email(fields: dict[str, Any], *, strict: bool) -> str | None:
    """The normalised address; `strict` for an advocate's (payouts are sent to it)."""
    raw = _text(fields, "email")
    if raw is None:
        return None
    if strict and payout_email_problem(raw) is not None:
        raise LineError("invalid_email", "email is not an address payouts can be sent to")
    if strict:
        return raw  # as typed, as the advocates API keeps it
    normalised = normalise_email(raw)
    if normalised is None:
        raise LineError("invalid_email", "email is not a valid address")
    return normalised


def _money(fields: dict[str, Any], name: str) -> int:
    value = fields.get(name)
    if value is None or value == "":
        raise LineError("missing_field", f"{name} is required")
    if isinstance(value, str):
        value = value.strip()
        if not value.isascii() or not value.isdigit():
            raise LineError(
                "invalid_money", f"{name} is an amount in minor units (4999 is 49.99 EUR)"
            )
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MONEY:
        raise LineError("invalid_money", f"{name} is a whole amount in minor units, 0 or more")
    return value


def _currency(fields: dict[str, Any]) -> str:
    value = _text(fields, "currency", required=True)
    assert value is not None
    if not is_currency(value):
        raise LineError("unknown_currency", "currency is not an ISO 4217 code the service knows")
    return value


def _date(fields: dict[str, Any], name: str, now: datetime) -> datetime:
    value = _text(fields, name, required=True)
    assert value is not None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise LineError(
            "invalid_date", f"{name} is an ISO 8601 date or time (2024-05-01T12:00:00Z)"
        ) from None
    if len(value) == 10:  # a date: its start, in UTC
        at = datetime.combine(at.date(), time(), UTC)
    if at.tzinfo is None:
        raise LineError("invalid_date", f"{name} needs a time zone (Z or +02:00)")
    if not EARLIEST <= at <= now + MAX_FUTURE:
        raise LineError("invalid_date", f"{name} is before 2000 or in the future")
    return at


def _identified(customer_id: str | None, email: str | None) -> None:
    if customer_id is None and email is None:
        raise LineError("missing_field", "customer_id or email is required")


def _no_unknown(kind: str, fields: dict[str, Any]) -> None:
    required, optional = FIELDS[kind]
    unknown = set(fields) - set(required) - set(optional)
    if unknown:
        raise LineError("unknown_field", f"unknown field(s) {', '.join(sorted(unknown))[:200]}")


def customer(fields: dict[str, Any]) -> ImportedCustomer:
    _no_unknown("customers", fields)
    found = ImportedCustomer(_text(fields, "customer_id"), _email(fields, strict=False))
    _identified(found.customer_id, found.email)
    return found


def order(fields: dict[str, Any], now: datetime) -> ImportedOrder:
    _no_unknown("orders", fields)
    customer_id, email = _text(fields, "customer_id"), _email(fields, strict=False)
    _identified(customer_id, email)
    order_id = _text(fields, "order_id", required=True)
    assert order_id is not None
    subtotal, total = _money(fields, "subtotal"), _money(fields, "total")
    currency, at = _currency(fields), _date(fields, "occurred_at", now)
    return ImportedOrder(order_id, customer_id, email, subtotal, total, currency, at)


def advocate(fields: dict[str, Any], codec: CodeCodec) -> ImportedAdvocate:
    """An advocate line; its code, when it has one, must be a vanity code by our rules (a
    code the other service generated is kept as the advocate's vanity code)."""
    _no_unknown("advocates", fields)
    customer_id = _text(fields, "customer_id", required=True)
    assert customer_id is not None
    email = _email(fields, strict=True)
    name = _text(fields, "name")
    raw = _text(fields, "code")
    code = key = None
    if raw is not None:
        try:
            code = codec.check_vanity(raw)
        except VanityCodeError as exc:
            raise LineError(exc.code, f"code: {exc}") from None
        key = lookup_key(code)
    return ImportedAdvocate(customer_id, email, name, code, key)
