"""The schema distributes on Citus by `merchant_id` (DECISIONS.md, "Schema rules"), read from
the catalog of the migrated database and from the repos' SQL: a new table, key or query that
breaks the rule fails here, on plain PostgreSQL, before anyone tries it on a cluster."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import asyncpg
import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTE = ROOT / "sql" / "citus" / "distribute.sql"

# Deployment-wide lookups, copied to every worker: found before the merchant is known.
REFERENCE_TABLES = {
    "merchants": "the tenants themselves",
    "api_keys": "found by the key's hash, which says the merchant",
    "codes": "found by code on the redirect, which says the merchant",
    "story_slugs": "found by slug on a story page, which says the merchant",
}
NOT_DISTRIBUTED = {"schema_migrations": "the migrator's own bookkeeping, on the coordinator"}
# Append-only logs nothing points at or updates: rows are counted, never found one by one.
WITHOUT_PRIMARY_KEY = {
    "story_views": "one row per counted view of a story page",
    "shares": "one row per share button followed",
}

# Statements that read across every merchant on purpose: deployment-wide background jobs
# (on Citus one query fanned out to every shard, taking work from all of them) and a CLI
# that knows a batch by its id alone.
ACROSS_MERCHANTS = {
    ("rewards", "DUE"): "the release worker takes due rewards of every merchant",
    ("coupons", "DUE_TO_EXPIRE"): "the expiry worker takes coupons of every merchant",
    ("analytics", "PICK_DIRTY"): "the rollup worker takes marked entities of every merchant",
    ("analytics", "PICK_DELTAS"): "the rollup worker folds deltas of every merchant",
    ("analytics", "PENDING"): "the rollup worker's backlog, deployment-wide",
    ("links", "PRUNE_UNIQUE_CLICKS"): "old unique-click keys are dropped for everyone",
    ("payouts", "MERCHANT_OF_BATCH"): "`referral payouts` knows a batch by its id only",
    ("rewards", "OLDEST_DUE"): "/metrics: the release worker's lag, deployment-wide",
    ("webhooks", "OLDEST_UNDELIVERED"): "/metrics: the outbox's lag, deployment-wide",
    ("imports", "NEXT_WAITING"): "the imports worker takes queued imports of every merchant",
    ("points", "DUE_ACCOUNTS"): "the expiry job finds due lots and accounts of every merchant",
    ("points", "BIRTHDAYS_DUE"): "the birthday job finds today's birthdays of every merchant",
}


async def _merchant_tables(db: asyncpg.Connection) -> dict[str, bool]:
    """Every table of the schema (partitions aside): {name: has a merchant_id column}."""
    rows = await db.fetch(
        """
        SELECT c.relname,
               EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                       AND a.attname = 'merchant_id' AND NOT a.attisdropped) AS has_merchant
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        """
    )
    return {r["relname"]: r["has_merchant"] for r in rows}


async def test_every_table_is_distributed_by_merchant_or_a_named_reference_table(db):
    tables = await _merchant_tables(db)
    unplaced = [
        name
        for name, has_merchant in tables.items()
        if not has_merchant and name not in REFERENCE_TABLES and name not in NOT_DISTRIBUTED
    ]
    assert not unplaced, f"tables with no merchant_id and no reason to be shared: {unplaced}"


async def test_keys_and_uniques_of_merchant_tables_contain_merchant_id(db):
    """Primary keys, unique constraints and unique indexes (partial ones too): Citus can only
    enforce a uniqueness that contains the distribution column."""
    rows = await db.fetch(
        """
        SELECT t.relname AS table_name, ci.relname AS index_name,
               pg_get_indexdef(i.indexrelid) AS definition,
               EXISTS (SELECT 1 FROM unnest(i.indkey) k
                       JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k
                       WHERE a.attname = 'merchant_id') AS keyed
        FROM pg_index i
        JOIN pg_class ci ON ci.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname = current_schema() AND i.indisunique AND NOT t.relispartition
        """
    )
    tables = await _merchant_tables(db)
    distributed = {t for t, has in tables.items() if has and t not in REFERENCE_TABLES}
    bad = [r["definition"] for r in rows if r["table_name"] in distributed and not r["keyed"]]
    assert not bad, "\n".join(bad)
    has_key = {r["table_name"] for r in rows if r["index_name"].endswith("_pkey")}
    keyless = distributed - has_key
    assert keyless == set(WITHOUT_PRIMARY_KEY), f"no primary key: {sorted(keyless)}"


async def test_foreign_keys_between_merchant_tables_carry_merchant_id_on_both_sides(db):
    rows = await db.fetch(
        """
        SELECT c.conrelid::regclass::text AS source, c.confrelid::regclass::text AS target,
               pg_get_constraintdef(c.oid) AS definition,
               (SELECT array_agg(a.attname::text ORDER BY k.n)
                FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS columns,
               (SELECT array_agg(a.attname::text ORDER BY k.n)
                FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, n)
                JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum)
                   AS referenced
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = current_schema() AND c.contype = 'f'
        """
    )
    tables = await _merchant_tables(db)
    distributed = {t for t, has in tables.items() if has and t not in REFERENCE_TABLES}
    bad = []
    for r in rows:
        if r["source"] in distributed and r["target"] in distributed:
            position = r["columns"].index("merchant_id") if "merchant_id" in r["columns"] else -1
            if position < 0 or r["referenced"][position] != "merchant_id":
                bad.append(f"{r['source']}: {r['definition']}")
        elif r["source"] in REFERENCE_TABLES and r["target"] in distributed:
            # Allowed on one PostgreSQL only if distribute.sql drops it before distributing.
            name = await db.fetchval(
                "SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass "
                "AND pg_get_constraintdef(oid) = $2",
                r["source"],
                r["definition"],
            )
            if f"DROP CONSTRAINT {name};" not in DISTRIBUTE.read_text():
                bad.append(f"reference table {r['source']} points at {r['target']}: {name}")
    assert not bad, "\n".join(bad)


async def test_distribute_sql_places_every_table(db):
    tables = await _merchant_tables(db)
    text = DISTRIBUTE.read_text()
    distributed = re.findall(r"create_distributed_table\('(\w+)', 'merchant_id'", text)
    reference = re.findall(r"create_reference_table\('(\w+)'\)", text)
    assert sorted(reference) == sorted(REFERENCE_TABLES)
    expected = sorted(t for t in tables if t not in REFERENCE_TABLES and t not in NOT_DISTRIBUTED)
    assert sorted(distributed) == expected
    assert len(set(distributed)) == len(distributed)
    # A table comes after every distributed table it points at.
    targets = await db.fetch(
        "SELECT conrelid::regclass::text AS source, confrelid::regclass::text AS target "
        "FROM pg_constraint WHERE contype = 'f' AND conrelid <> confrelid"
    )
    order = {name: i for i, name in enumerate(distributed)}
    late = [
        (r["source"], r["target"])
        for r in targets
        if r["source"] in order and r["target"] in order and order[r["target"]] > order[r["source"]]
    ]
    assert not late, f"distributed before what they point at: {late}"


# --- the repos' SQL ----------------------------------------------------------------------

_TABLE_REFERENCE = re.compile(
    r"\b(FROM|JOIN|UPDATE|INTO)\s+([a-z_][a-z0-9_]*)(?:\s+(?:AS\s+)?([a-z][a-z0-9_]*))?", re.I
)
_NOT_AN_ALIAS = {
    "where", "on", "set", "join", "left", "inner", "cross", "using", "group", "order", "limit",
    "select", "values", "returning", "as", "for", "natural", "full", "right", "lateral",
    "union", "default", "except", "overriding",
}  # fmt: skip
_SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b")


def _repo_statements():
    """(room, name, SQL) for every statement a repo module holds: its module-level strings
    (as built, concatenations and formats included) and the literals it passes to calls."""
    for path in sorted((ROOT / "referral").glob("*/repo.py")):
        room = path.parent.name
        module = importlib.import_module(f"referral.{room}.repo")
        for name, value in vars(module).items():
            if isinstance(value, str) and _SQL.search(value):
                yield room, name, value
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and _SQL.search(str(first.value)):
                    yield room, f"line {node.lineno}", first.value


def _unscoped(sql: str, distributed: set[str]) -> list[str]:
    """The merchant tables `sql` reads or writes without saying which merchant: each must be
    tied by `<alias>.merchant_id =` (a parameter, or a table already tied), and an INSERT
    must write merchant_id."""
    found = []
    for match in _TABLE_REFERENCE.finditer(sql):
        verb, table, alias = match.group(1).upper(), match.group(2), match.group(3)
        if table not in distributed:
            continue
        if alias and alias.lower() in _NOT_AN_ALIAS:
            alias = None
        if verb == "INTO":
            columns = re.search(rf"INTO\s+{table}\b[^(]*\(([^)]*)\)", sql)
            scoped = bool(columns) and "merchant_id" in columns.group(1)
        elif alias:
            scoped = bool(
                re.search(
                    rf"\b{alias}\.merchant_id\s*(=|IN\b)|(=|\bIN)\s*\(?{alias}\.merchant_id\b",
                    sql,
                    re.I,
                )
            )
        else:
            scoped = bool(
                re.search(rf"(?<![.\w])merchant_id\s*(=|IN\b)|\b{table}\.merchant_id\s*=", sql)
            )
        if not scoped:
            found.append(f"{verb} {table} {alias or ''}".strip())
    return found


async def test_every_repo_statement_on_merchant_data_says_which_merchant(db):
    """So the distributed planner routes it to one shard (and, on one PostgreSQL, every
    index it needs starts with merchant_id)."""
    tables = await _merchant_tables(db)
    distributed = {t for t, has in tables.items() if has and t not in REFERENCE_TABLES}
    statements = list(_repo_statements())
    assert len(statements) > 200, "the repos' SQL was not found"
    bad = []
    for room, name, sql in statements:
        if (room, name) in ACROSS_MERCHANTS:
            continue
        bad += [f"{room}/repo.py {name}: {what}" for what in _unscoped(sql, distributed)]
    assert not bad, "\n".join(sorted(set(bad)))
    known = {(room, name) for room, name, _ in statements}
    stale = set(ACROSS_MERCHANTS) - known
    assert not stale, f"exceptions for statements that no longer exist: {stale}"


def test_the_check_catches_a_statement_without_its_merchant():
    tables = {"rewards", "payout_items", "advocates"}
    assert _unscoped("SELECT id FROM rewards WHERE id = $1", tables) == ["FROM rewards"]
    assert _unscoped(
        "SELECT r.id FROM rewards r JOIN advocates a ON a.id = r.advocate_id "
        "WHERE r.merchant_id = $1",
        tables,
    ) == ["JOIN advocates a"]
    assert _unscoped("INSERT INTO payout_items (reward_id) VALUES ($1)", tables) == [
        "INTO payout_items"
    ]
    assert not _unscoped(
        "SELECT r.id FROM rewards r JOIN advocates a ON a.merchant_id = r.merchant_id "
        "AND a.id = r.advocate_id WHERE r.merchant_id = $1",
        tables,
    )


async def test_distribute_sql_runs_on_citus(database_url):
    """On a server with the citus extension: a fresh database, migrated, then distributed."""
    conn = await asyncpg.connect(database_url)
    try:
        available = await conn.fetchval(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'citus'"
        )
        if not available:
            pytest.skip(
                "the citus extension is not available on this PostgreSQL server; the "
                "catalog tests above check the rules distributing needs"
            )
        await conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
        from referral.lib.db import migrate

        await migrate(database_url)
        await conn.execute(DISTRIBUTE.read_text())
        placed = await conn.fetchval("SELECT count(*) FROM citus_tables")
        assert placed == len(await _merchant_tables(conn)) - len(NOT_DISTRIBUTED)
    finally:
        await conn.close()
