"""The books: what the program owed, had paid and had reversed as of any past moment, rebuilt
from the append-only ledger, and the ledger's entries over a range, which sum to the change
of those balances between the range's ends.

Only cash and store credit are money in the ledger. Coupons and points are separate records
(issued, redeemed, expired) and never appear here; cash and store credit of one currency are
added together (the payout batches keep them apart).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Protocol

import asyncpg
import msgspec

from referral.lib import money
from referral.lib.errors import InvalidInput
from referral.lib.ids import PublicIds
from referral.merchants.service import Caller
from referral.payouts import export
from referral.payouts import service as payouts
from referral.programs import service as programs
from referral.rewards import repo
from referral.rewards.schemas import CurrencyBalances, LedgerAccounts, LedgerBalances

# Each figure's one definition: the API's description, the CSV and the README say this.
FIGURES = """\
Per currency, in minor units, as of `as_of` (entries booked at or before it; a reward's
state then is its last transition at or before it). Only cash and store credit are counted:
coupons and points are not money in the ledger. Cash and store credit of one currency are
added together.

- `pending`: rewards earned and waiting out their hold: the pending account of the rewards
  that were `pending` then.
- `in_review`: rewards held for a person's review. Their money sits in the pending account
  too: the pending account of the rewards that were `in_review` then.
- `payable`: approved, not yet paid: the payable account (rewards in a batch that was not
  yet marked paid are still here).
- `owed`: pending + in_review + payable, what the program still had to pay.
- `paid`: what payout lines had paid for rewards: the paid account, at the lines' frozen
  amounts, less lines that failed after payment; before clawbacks netted off in the same
  lines (see `recovered`).
- `reversed`: what the rewards that were `reversed` then were worth in the books when their
  (last) reversal took it off, whether before or after payment. A partial refund's reduction
  is not a reversal: it lowers the reward's value in its own state.
- `receivable`: owed back by payees: money reversed or reduced after payment (the receivable
  account, as a positive amount), less what payouts had recovered by then.
- `recovered`: the part of those clawbacks netted off in payout lines that stood paid then
  (their batch paid, the line not failed since).
- `accounts`: the ledger's own account balances (pending, payable, paid, receivable), sums of
  the entries as booked; `pending` and `in_review` add up to `accounts.pending`, and
  `receivable` + `recovered` = -`accounts.receivable`.
"""

BALANCES_CSV_COLUMNS = ("as_of", "program_id", "currency", "figure", "amount", "amount_minor")
# The figures in the CSV's order; `account_*` are the ledger's own accounts.
CSV_FIGURES = (
    "pending",
    "in_review",
    "payable",
    "owed",
    "paid",
    "reversed",
    "receivable",
    "recovered",
    "account_pending",
    "account_payable",
    "account_paid",
    "account_receivable",
)

ENTRIES_CSV_COLUMNS = repo.ENTRIES_CSV_COLUMNS
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # before the first entry: the export's default


class Context(Protocol):
    """What the books need of the app's runtime (the CLI passes a lighter one)."""

    ids: PublicIds


def moment(name: str, value: str | None, now: datetime, *, future: bool = False) -> datetime:
    """A timestamp from the query string (RFC 3339, with a zone), in UTC; `now` when none
    was sent. A moment after `now` is refused (`{name}_in_future`) unless `future`: its books
    could still change."""
    if value is None:
        return now
    try:
        parsed = msgspec.json.decode(msgspec.json.encode(value), type=datetime)
        if parsed.tzinfo is None:
            raise ValueError("no time zone")
        parsed = parsed.astimezone(UTC)
    except (msgspec.ValidationError, ValueError, OverflowError):
        raise InvalidInput(
            f"{name} must be an RFC 3339 timestamp with a time zone, e.g. 2026-01-31T23:59:59Z",
            code="invalid_timestamp",
        ) from None
    if parsed > now and not future:
        raise InvalidInput(
            f"{name} may not be in the future: the books of a moment still to come can change",
            code=f"{name}_in_future",
        )
    return parsed


async def _program(
    conn: asyncpg.Connection, runtime: Context, caller: Caller, program_id: str | None
) -> int | None:
    """The program's internal id, checked to be the merchant's (404 otherwise)."""
    if program_id is None:
        return None
    await programs.get(conn, runtime=runtime, caller=caller, program_id=program_id)
    return runtime.ids.decode("program", program_id)


async def balances(
    conn: asyncpg.Connection,
    *,
    runtime: Context,
    caller: Caller,
    as_of: str | None = None,
    program_id: str | None = None,
) -> LedgerBalances:
    """The books as of a moment (definitions: `FIGURES`), reconstructed from the entries and
    transitions booked up to then, so a past moment always answers the same."""
    at = moment("as_of", as_of, datetime.now(UTC))
    program = await _program(conn, runtime, caller, program_id)
    rows = await repo.balances_as_of(conn, caller.merchant_id, at, program)
    netted = await payouts.netted_receivables(
        conn, merchant_id=caller.merchant_id, as_of=at, program_id=program
    )
    currencies = []
    for row in rows:
        recovered = -netted.get(row.currency, 0)
        currencies.append(
            CurrencyBalances(
                currency=row.currency,
                pending=row.pending,
                in_review=row.in_review,
                payable=row.payable,
                owed=row.pending + row.in_review + row.payable,
                paid=row.paid,
                reversed=row.reversed,
                receivable=-row.receivable - recovered,
                recovered=recovered,
                accounts=LedgerAccounts(
                    pending=row.pending + row.in_review,
                    payable=row.payable,
                    paid=row.paid,
                    receivable=row.receivable,
                ),
            )
        )
    return LedgerBalances(as_of=at, program_id=program_id, currencies=currencies)


def figures(row: CurrencyBalances) -> dict[str, int]:
    """A currency's figures by their CSV names (`CSV_FIGURES`), in that order."""
    accounts = row.accounts
    return {
        figure: getattr(accounts, figure.removeprefix("account_"))
        if figure.startswith("account_")
        else getattr(row, figure)
        for figure in CSV_FIGURES
    }


def balances_csv(books: LedgerBalances) -> Iterator[bytes]:
    """The balances in long form, one row per currency and figure, amounts as fixed-point
    decimals and as minor units. Every text cell is a value the service chose (a timestamp,
    a public id, a currency code, a figure's name), so none can start a formula."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(BALANCES_CSV_COLUMNS)
    as_of = books.as_of.astimezone(UTC).isoformat().replace("+00:00", "Z")
    for row in books.currencies:
        for figure, amount in figures(row).items():
            writer.writerow(
                (
                    as_of,
                    books.program_id or "",
                    row.currency,
                    figure,
                    money.to_decimal_string(amount, row.currency),
                    amount,
                )
            )
    yield buffer.getvalue().encode()


async def entries_export(
    conn: asyncpg.Connection,
    *,
    runtime: Context,
    caller: Caller,
    from_: str | None = None,
    until: str | None = None,
    program_id: str | None = None,
) -> tuple[export.ExportQuery, datetime, datetime]:
    """The COPY query of every entry booked after `from_` up to and including `until`
    (default: from the first entry until now), with the range it covers. Checked here, before
    a response starts: a bad range is a problem, not a broken file."""
    now = datetime.now(UTC)
    end = moment("until", until, now)
    start = _EARLIEST if from_ is None else moment("from", from_, now, future=True)
    if start > end:
        raise InvalidInput("from must not be after until", code="invalid_range")
    program = await _program(conn, runtime, caller, program_id)
    batch_ids, batch_public_ids = await payouts.batch_public_ids(
        conn, ids=runtime.ids, merchant_id=caller.merchant_id, until=end
    )
    currencies = sorted(money.EXPONENTS)
    query = export.ExportQuery(
        repo.ENTRIES_CSV,
        (
            caller.merchant_id,
            start,
            end,
            program,
            batch_ids,
            batch_public_ids,
            currencies,
            [money.EXPONENTS[c] for c in currencies],
        ),
        header=True,
        rows=0,  # not counted up front: the range may hold millions of entries
    )
    return query, start, end
