"""Every integer a repo sends PostgreSQL travels as a bigint unless its SQL narrows it in
plain sight (`$n::int`).

PostgreSQL infers a parameter's type from where it stands: `greatest($6, 1)` makes `$6` an
int4, so a payout minimum of 2^31 failed in the driver (a 500) although money is bigint
everywhere. This prepares every statement of every repo against the migrated schema and
asks PostgreSQL which parameters it would read as int2/int4.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import referral

NARROW = {"int2", "int4", "_int2", "_int4"}
_STATEMENT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)
_TEMPLATE = re.compile(r"\{\w+\}")  # a fragment formatted into statements, not one itself


def repo_statements() -> dict[str, str]:
    found = {}
    for info in pkgutil.walk_packages(referral.__path__, "referral."):
        if not info.name.endswith(".repo"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                isinstance(value, str)
                and "$1" in value
                and _STATEMENT.match(value)
                and not _TEMPLATE.search(value)
            ):
                found[f"{info.name}.{name}"] = value
    return found


def test_the_walk_finds_the_statements():
    statements = repo_statements()
    assert len(statements) > 100
    assert "referral.payouts.repo.FILL_BATCH" in statements


async def test_no_integer_parameter_is_narrowed_by_inference(db):
    narrowed = {}
    for name, sql in repo_statements().items():
        statement = await db.prepare(sql)
        for position, kind in enumerate(statement.get_parameters(), start=1):
            explicit = re.search(rf"\${position}::(int|integer|int4|smallint|int2)\b", sql)
            if kind.name in NARROW and not explicit:
                narrowed.setdefault(name, []).append(f"${position} as {kind.name}")
    assert not narrowed, (
        "cast these parameters to ::bigint (or, for a value bounded before it gets here, "
        f"write the narrow cast out): {narrowed}"
    )
