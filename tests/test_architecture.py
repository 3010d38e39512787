"""The house rules of ARCHITECTURE.md, checked by reading the code: which room may import
what, where SQL lives, who writes the outbox, and how service functions take arguments."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "referral"

# Folders under referral/ that are not rooms of the domain.
PLUMBING = {"lib", "http", "web"}
# Pure decisions: no database, settings, runtime, web framework or logging.
RULE_MODULES = [
    "codes/codec.py",
    "fraud/rules.py",
    "fraud/policy.py",
    "fraud/signals.py",
    "referrals/rules.py",
    "rewards/rules.py",
    "lib/emails.py",
    "lib/money.py",
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


@pytest.mark.parametrize("path", [p for p in _modules() if _room(p) == "lib"], ids=_rel)
def test_lib_knows_no_room(path: Path):
    wrong = [
        name
        for name in _imports(path)
        if name.startswith("referral.") and not name.startswith("referral.lib")
    ]
    assert not wrong, f"{_rel(path)} imports {wrong}: lib/ must not depend on the rooms"


@pytest.mark.parametrize("path", _modules(), ids=_rel)
def test_no_module_imports_another_rooms_repo(path: Path):
    own = _room(path)
    wrong = sorted(
        {
            name
            for name in _imports(path)
            if name.startswith("referral.") and name.endswith(".repo") and name.split(".")[1] != own
        }
    )
    assert not wrong, f"{_rel(path)} imports {wrong}: ask that room's service instead"


@pytest.mark.parametrize("path", list(PACKAGE.glob("*/api.py")), ids=_rel)
def test_handlers_do_not_reach_the_database(path: Path):
    wrong = [n for n in _imports(path) if n.endswith(".repo") or n == "asyncpg"]
    assert not wrong, f"{_rel(path)} imports {wrong}: handlers call their room's service"


@pytest.mark.parametrize("rule", RULE_MODULES)
def test_rules_are_pure(rule: str):
    wrong = [
        name
        for name in _imports(PACKAGE / rule)
        if name.split(".")[0] in IO_MODULES or name.startswith(IO_REFERRAL)
    ]
    assert not wrong, f"{rule} imports {wrong}: rule modules take values and return values"


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


@pytest.mark.parametrize("path", _modules(), ids=_rel)
def test_sql_lives_in_repos(path: Path):
    if path.name == "repo.py" or _rel(path) in SQL_ALLOWED:
        return
    lines = _db_calls(path)
    assert not lines, f"{_rel(path)} runs SQL at lines {lines}: move it to a repo module"


@pytest.mark.parametrize("path", _modules(), ids=_rel)
def test_only_the_events_room_writes_the_outbox(path: Path):
    if _rel(path) == "events/repo.py":
        return
    text = " ".join(path.read_text(encoding="utf-8").split()).upper()
    assert "INSERT INTO EVENTS" not in text, f"{_rel(path)} writes the outbox itself"


def _service_modules() -> list[Path]:
    """Service-role modules: a room's service.py and the modules it is split into."""
    roles = {"api.py", "repo.py", "schemas.py", "__init__.py"}
    out = []
    for path in _modules():
        room = _room(path)
        if room is None or room in PLUMBING or path.name in roles:
            continue
        if _rel(path) in RULE_MODULES:
            continue
        out.append(path)
    return out


@pytest.mark.parametrize("path", _service_modules(), ids=_rel)
def test_service_functions_take_keywords_after_the_connection(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    wrong = []
    for node in tree.body:
        if not isinstance(node, ast.AsyncFunctionDef) or node.name.startswith("_"):
            continue
        positional = node.args.posonlyargs + node.args.args
        if positional and positional[0].arg in ("conn", "pool") and len(positional) > 1:
            wrong.append(f"{node.name}({', '.join(a.arg for a in positional)}, …)")
    assert not wrong, f"{_rel(path)}: after the connection, arguments are keyword-only: {wrong}"
