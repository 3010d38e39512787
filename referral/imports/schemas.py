"""Request and response shapes of imports: the import job, its counts and its error report."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

Kind = Literal["advocates", "customers", "orders"]
Format = Literal["csv", "jsonl"]
Status = Literal["receiving", "queued", "running", "succeeded", "failed"]


class ImportedCustomer(msgspec.Struct, frozen=True):
    """A customer the shop had before it switched: never a new customer here."""

    customer_id: str | None
    email: str | None  # normalised


class ImportCounts(msgspec.Struct):
    """Lines read so far, and what each became: created (something new was recorded),
    unchanged (all of it was there already: an import of the same file again) or failed
    (refused; each is in the error report)."""

    read: int
    created: int
    unchanged: int
    failed: int


class Import(msgspec.Struct):
    id: str
    kind: Kind
    format: Format
    program_id: str | None
    status: Status
    lines: int  # lines in the file (blank ones aside)
    counts: ImportCounts
    failure: str | None  # why the whole file failed (a bad header)
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    livemode: bool
    object: str = "import"


class ImportLineError(msgspec.Struct):
    line: int  # the file's line number, the header being line 1 of a CSV file
    code: str
    message: str
    object: str = "import_error"


class ImportErrorPage(msgspec.Struct):
    data: list[ImportLineError]
    has_more: bool
    object: str = "list"
