"""The README's walk-through, run as a new user would paste it: every `sh` block after the
two setup commands, in order, in one bash, with `referral serve` running.

The commands run in a folder of their own (its `.venv` links to the project's), so the
files they write (order.json, payouts.csv, …) land there. Every curl call's status is
recorded on stderr; the only errors the walk-through shows on purpose are the 401 of a key
it has just revoked and the 403 of a checkout-only key asking for programs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox import ROOT, Sandbox, sandbox_in

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the README uses curl")

# Blocks that are not the walk-through: installing, and the production template.
SKIPPED = ("make run    #", "pip install .")
# Each curl call appends "curl-status <code> <method> <url>" to stderr, beside its output.
CURL = (
    "curl() { command curl -sS "
    """-w '%{stderr}curl-status %{http_code} %{method} %{url}\\n' "$@"; }\n"""
)


def walk_through() -> str:
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    steps = [block for block in blocks if not block.startswith(SKIPPED)]
    assert len(steps) >= 5, "the README's walk-through blocks were not found"
    return "\n".join(steps)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with sandbox_in("test-readme") as box:
        yield box


def test_every_readme_command_works_as_written(sandbox: Sandbox, tmp_path: Path):
    sandbox.serve()
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    # The user's shell: no PUBLIC_BASE_URL; `dev env` finds the running server's address.
    env = {k: v for k, v in sandbox.env().items() if k != "PUBLIC_BASE_URL"}
    script = "set -eu -o pipefail\n" + CURL + walk_through()
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    tail = f"\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    assert result.returncode == 0, tail
    calls = re.findall(r"^curl-status (\d{3}) (\S+) (\S+)$", result.stderr, re.MULTILINE)
    assert len(calls) >= 30, tail
    failed = [(code, method, url) for code, method, url in calls if int(code) >= 400]
    assert [(code, method, url.rsplit("/", 1)[-1]) for code, method, url in failed] == [
        ("401", "GET", "merchant"),  # the revoked key, refused at once
        ("403", "GET", "programs"),  # the checkout-only key, outside its scope
    ], failed
    assert "referral:" not in result.stderr, tail  # no CLI command refused
    assert (tmp_path / "payouts.csv").stat().st_size > 0
    assert sandbox.postgres_pid() is not None, "the server's database is still up"
