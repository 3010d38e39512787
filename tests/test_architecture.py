"""The house rules of ARCHITECTURE.md, checked by reading the code: which room may import
what, where SQL lives, who writes the outbox, and how service functions take arguments."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "referral"

# Folders under referral/ that are not rooms of the domain.
PLUMBING = {"lib", "http", "web"}
# Pure decisions: no database, settings, runtime, web framework or logging.
RULE_MODULES = [
    "codes/codec.py",
    "experiments/rules.py",
    "fraud/rules.py",
    "fraud/policy.py",
    "fraud/signals.py",
    "programs/rules.py",
    "referrals/rules.py",
    "rewards/rules.py",
    "lib/emails.py",
    "lib/money.py",
    "console/charts.py",
    "console/figures.py",
    "console/words.py",
    "widget/rules.py",
    "points/rules.py",
    "preferences/rules.py",
]
IO_MODULES = ("asyncpg", "litestar", "httpx", "structlog", "jinja2", "granian")
IO_REFERRAL = ("referral.lib.db", "referral.settings", "referral.runtime", "referral.http")
# Modules besides repos that may talk to the database directly: the pool and migrations,
# and the embedded server's bootstrap.
SQL_ALLOWED = {"lib/db.py", "lib/embedded.py"}
DB_METHODS = {
    "fetch",
    "fetchrow",
    "fetchval",
    "execute",
    "executemany",
    "cursor",
    "copy_from_query",
    "copy_records_to_table",
    "copy_to_table",
}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _room(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def _imports(path: Path) -> list[str]:
    """Every module name the file imports (`from a.b import c` counts a.b and a.b.c)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _rooms() -> list[str]:
    return sorted(
        p.name
        for p in PACKAGE.iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and p.name not in PLUMBING
    )


def test_the_house_has_its_rooms():
    """The rooms ARCHITECTURE.md names are folders, each with its roles."""
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for room in _rooms() + sorted(PLUMBING):
        assert f"`{room}/`" in text, f"ARCHITECTURE.md does not describe referral/{room}/"
    for room in ("orders", "referrals", "rewards", "coupons", "fraud", "events"):
        for role in ("service.py", "repo.py"):
            assert (PACKAGE / room / role).exists(), f"referral/{room}/ has no {role}"


def test_lib_knows_no_room():
    wrong = {
        _rel(path): names
        for path in _modules()
        if _room(path) == "lib"
        and (
            names := [
                n
                for n in _imports(path)
                if n.startswith("referral.") and not n.startswith("referral.lib")
            ]
        )
    }
    assert not wrong, f"lib/ must not depend on the rooms: {wrong}"


def test_no_module_imports_another_rooms_repo():
    wrong = {}
    for path in _modules():
        names = sorted(
            {
                name
                for name in _imports(path)
                if name.startswith("referral.")
                and name.endswith(".repo")
                and name.split(".")[1] != _room(path)
            }
        )
        if names:
            wrong[_rel(path)] = names
    assert not wrong, f"ask that room's service instead: {wrong}"


def test_handlers_do_not_reach_the_database():
    wrong = {
        _rel(path): names
        for path in sorted(
            [*PACKAGE.glob("*/api.py"), *PACKAGE.glob("*/pages.py"), *_page_modules()]
        )
        if (names := [n for n in _imports(path) if n.endswith(".repo") or n == "asyncpg"])
    }
    assert not wrong, f"handlers call their room's service: {wrong}"


def test_rules_are_pure():
    wrong = {
        rule: names
        for rule in RULE_MODULES
        if (
            names := [
                n
                for n in _imports(PACKAGE / rule)
                if n.split(".")[0] in IO_MODULES or n.startswith(IO_REFERRAL)
            ]
        )
    }
    assert not wrong, f"rule modules take values and return values: {wrong}"


def _db_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in DB_METHODS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in ("conn", "connection", "pool")
    ]


def test_sql_lives_in_repos():
    wrong = {
        _rel(path): lines
        for path in _modules()
        if path.name != "repo.py" and _rel(path) not in SQL_ALLOWED and (lines := _db_calls(path))
    }
    assert not wrong, f"SQL runs outside repo modules (file: lines): {wrong}"


def test_only_the_events_room_writes_the_outbox():
    wrong = [
        _rel(path)
        for path in _modules()
        if _rel(path) != "events/repo.py"
        and "INSERT INTO EVENTS" in " ".join(path.read_text(encoding="utf-8").split()).upper()
    ]
    assert not wrong, f"these write the outbox themselves: {wrong}"


def _page_modules() -> list[Path]:
    """A room with many pages (the console) keeps them in a `pages/` package: handlers."""
    return sorted(PACKAGE.glob("*/pages/*.py"))


def _service_modules() -> list[Path]:
    """Service-role modules: a room's service.py and the modules it is split into."""
    roles = {"api.py", "pages.py", "repo.py", "schemas.py", "__init__.py"}
    out = []
    for path in _modules():
        room = _room(path)
        if room is None or room in PLUMBING or path.name in roles or path.parent.name == "pages":
            continue
        if _rel(path) in RULE_MODULES:
            continue
        out.append(path)
    return out


def test_service_functions_take_keywords_after_the_connection():
    wrong = []
    for path in _service_modules():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.AsyncFunctionDef) or node.name.startswith("_"):
                continue
            positional = node.args.posonlyargs + node.args.args
            if positional and positional[0].arg in ("conn", "pool") and len(positional) > 1:
                args = ", ".join(a.arg for a in positional)
                wrong.append(f"{_rel(path)}: {node.name}({args}, …)")
    assert not wrong, f"after the connection, arguments are keyword-only: {wrong}"


def test_services_know_no_request():
    """Services are called by handlers, workers and the CLI alike: no request plumbing."""
    wrong = {
        _rel(path): names
        for path in _service_modules() + [p for p in _modules() if p.name == "repo.py"]
        if (names := [n for n in _imports(path) if n.startswith("referral.http")])
    }
    assert not wrong, f"these reach into the request plumbing: {wrong}"
